"""The step loop's batches: each step's batch built on the host (data.batches' windows, the
objective's examples) and put on the devices (sharding.global_arrays), by a background thread
a few steps before the loop takes it, so that a step never waits for numpy. A batch is a pure
function of (seed, step), and one thread builds the steps in order into a queue the loop takes
them from in order: the batches are the same as built inline, however the two threads are timed."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import jax
import numpy as np
from jax.sharding import NamedSharding

from ..data.batches import batch
from . import sharding

# Batches built ahead. One hides the build (milliseconds at GPT-2-small's shape) behind a step
# (tens of milliseconds on a GPU); the second absorbs a slow build (a cold page of the memory-mapped
# corpus, a garbage collection). Not a setting: it changes nothing a run computes, and a batch on
# the device is small (0.4 MB at 32 x 1024).
AHEAD = 2

T = TypeVar("T")


def device_batch(run, train: np.ndarray, by_row: NamedSharding, step: int) -> tuple[jax.Array, ...]:
    """The (inputs, targets, weights) of `step` of `run` (a RunSpec) on the devices, drawn from the
    training tokens `train`: this process builds and sends the rows of its own devices only."""

    def rows(start: int, stop: int) -> tuple:
        part = slice(start, stop)
        windows = batch(train, run.model.seq_len, run.batch_size, run.seed, step, part)
        return run.model.objective.examples(windows, run.data.vocab_size, run.seed, step, part, run.batch_size)

    return sharding.global_arrays((run.batch_size, run.model.seq_len), by_row, rows, 3)


@dataclass(frozen=True)
class _Failed:
    """What the thread puts in place of a batch whose build raised."""

    error: BaseException


class Prefetcher(Generic[T]):
    """build(step) for each step of `steps`, built in order by a daemon thread up to `ahead`
    steps before take(step) asks for it. An exception of build(step) is raised by take(step), on
    the taking thread. close(), or leaving a `with` block, stops the thread and waits for it (for
    at most the build under way)."""

    def __init__(self, build: Callable[[int], T], steps: range, ahead: int = AHEAD):
        if ahead < 1 or steps.step != 1:  # close() needs room in the queue; take() counts by one
            raise ValueError(f"a prefetcher takes consecutive steps, built at least one ahead: not {steps}, {ahead} ahead")
        self._next, self._end = steps.start, steps.stop
        self._queue: queue.Queue[T | _Failed] = queue.Queue(maxsize=ahead)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(build, steps), name="prefetch", daemon=True)
        self._thread.start()

    def _produce(self, build: Callable[[int], T], steps: range) -> None:
        for step in steps:
            if self._stopping.is_set():
                return
            try:
                item: T | _Failed = build(step)
            except BaseException as e:  # any: the taker must never wait for a batch that will not come
                item = _Failed(e)
            self._queue.put(item)
            if isinstance(item, _Failed):
                return

    def take(self, step: int) -> T:
        """The value of `step`, which must be the next step of the prefetcher's range."""
        if step != self._next or step >= self._end:
            raise ValueError(f"step {step} taken from a prefetcher whose next step is {self._next} (of steps < {self._end})")
        item = self._queue.get()
        if isinstance(item, _Failed):
            self._end = step  # nothing comes after it
            raise item.error
        self._next += 1
        return item

    def close(self) -> None:
        # Drained after the stop is set, the queue has room for the one put the thread may still
        # make; the thread then sees the stop and ends.
        self._stopping.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
