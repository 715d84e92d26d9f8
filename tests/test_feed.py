"""The batches built ahead by a thread (training.feed): each step's batch, in step order, the same as
built inline whatever the thread's timing; from a resumed run's and a cooldown branch's first
step to the last, and no further; the thread ends however the loop ends, and an error building a
batch is raised at the step that needed it. No outcome here depends on a clock: the threads are
ordered by events."""

import threading

import numpy as np
import pytest

from conftest import tiny_runs
from scalinglab.data.batches import batch
from scalinglab.store.layout import RunDir
from scalinglab.training import checkpoint, distributed, feed
from scalinglab.training.loop import Counters, Hook, Trainer


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


class Recorder:
    """build(step) = ("batch", step), recording the steps built: started[step] is set when its
    build starts, built[step] when it is built; a build with a gate waits for it to open."""

    def __init__(self, steps: range, fail_at: int | None = None, gates: dict | None = None):
        self.calls: list[int] = []
        self.started, self.built = ({s: threading.Event() for s in steps} for _ in range(2))
        self.fail_at, self.gates = fail_at, gates or {}

    def __call__(self, step: int):
        self.started[step].set()
        if step in self.gates:
            self.gates[step].wait()
        self.calls.append(step)
        self.built[step].set()
        if step == self.fail_at:
            raise OSError(f"no batch {step}")
        return ("batch", step)


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_the_thread_builds_ahead_at_most_ahead_steps_and_never_past_the_last(ahead):
    steps = range(7, 13)  # a resumed run's: from the middle
    build = Recorder(steps)
    with feed.Prefetcher(build, steps, ahead) as batches:
        for step in steps:
            build.built[min(step + ahead, steps[-1])].wait()  # the thread ran ahead as far as it may...
            assert max(build.calls) <= step + ahead  # ...and no further: `ahead` in the queue, one being built
            assert batches.take(step) == ("batch", step)
    assert build.calls == list(steps) and prefetch_threads() == []


def test_a_take_that_waits_for_the_thread_gets_its_step():
    steps = range(1, 6)
    gates = {s: threading.Event() for s in steps}
    build = Recorder(steps, gates=gates)
    with feed.Prefetcher(build, steps) as batches:
        for step in steps:
            gates[step].set()  # the thread builds a step only now: every take finds the queue empty
            assert batches.take(step) == ("batch", step)


def test_takes_out_of_order_or_past_the_last_step_are_refused():
    with feed.Prefetcher(Recorder(range(1, 3)), range(1, 3)) as batches:
        with pytest.raises(ValueError, match="step 2 taken from a prefetcher whose next step is 1"):
            batches.take(2)
        assert [batches.take(1), batches.take(2)] == [("batch", 1), ("batch", 2)]
        with pytest.raises(ValueError, match="step 3 taken"):
            batches.take(3)  # would otherwise wait forever


def test_an_error_building_a_batch_is_raised_by_the_take_of_its_step():
    steps = range(1, 11)
    build = Recorder(steps, fail_at=5)
    with feed.Prefetcher(build, steps) as batches:
        assert [batches.take(s) for s in range(1, 5)] == [("batch", s) for s in range(1, 5)]
        with pytest.raises(OSError, match="no batch 5"):
            batches.take(5)
        with pytest.raises(ValueError, match="step 6 taken"):
            batches.take(6)
    assert build.calls == [1, 2, 3, 4, 5] and prefetch_threads() == []


@pytest.mark.parametrize("when", ["before any take", "with a full queue", "mid-build"])
def test_close_stops_the_thread(when):
    steps = range(1, 100)
    gates = {3: threading.Event()} if when == "mid-build" else {}
    build = Recorder(steps, gates=gates)
    batches = feed.Prefetcher(build, steps, ahead=2)
    if when == "with a full queue":
        batches.take(1)
        build.built[4].wait()  # 2 and 3 queued, 4 built: the thread waits for room
    elif when == "mid-build":
        build.started[3].wait()  # 1 and 2 queued, 3 under way
        threading.Timer(0.05, gates[3].set).start()  # ends, most likely once close waits for it
    batches.close()
    assert prefetch_threads() == [] and max(build.calls, default=0) <= 4


# ---- the step loop's batches ---------------------------------------------------------------------


def host_batch(run, train: np.ndarray, step: int) -> list[np.ndarray]:
    """The batch of `step` as built before the prefetcher: all its rows, on the host."""
    windows = batch(train, run.model.seq_len, run.batch_size, run.seed, step)
    return list(run.model.objective.examples(windows, run.data.vocab_size, run.seed, step, slice(None), run.batch_size))


def recording(trainer: Trainer) -> tuple[list, list]:
    """The batches and losses of each step the trainer takes (neither waits on the step)."""
    batches, losses, step = [], [], trainer.train_step

    def train_step(state, *arrays):
        batches.append(arrays)
        state, loss = step(state, *arrays)
        losses.append(loss)
        return state, loss

    trainer.train_step = train_step
    return batches, losses


@pytest.mark.parametrize("start", ["resumed", "branch"])
def test_the_loop_takes_the_batches_built_inline_from_its_first_step_to_its_last(start, tmp_path):
    if start == "resumed":  # the masked objective's examples depend on the step too
        run = tiny_runs(D=(4 * 32 * 20,), train={"objective": "masked", "n_evals": 2})[0]
        first = 8
    else:
        trunk, run, _ = tiny_runs(D=(4 * 32 * 40, 4 * 32 * 80), train={"schedule": "wsd", "cooldown_branches": True})
        first = run.start_step
    trainer = Trainer(run, RunDir(tmp_path / "runs" / run.run_id), log=lambda _: None)
    saved = trainer.dir.resume if start == "resumed" else trainer.dir.sweep.run(trunk.run_id).branch_points
    checkpoint.save(saved, first, trainer.state, Counters({"step": first}).meta(0.0))  # a fresh state, saved mid-run
    batches, _ = recording(trainer)
    summary = trainer.train()
    assert summary["status"] == "done" and 0 < first < run.steps and len(batches) == run.steps - first
    for step, arrays in zip(range(first + 1, run.steps + 1), batches, strict=True):
        for got, want in zip(arrays, host_batch(run, trainer.corpus.train, step), strict=True):
            assert np.array_equal(np.asarray(got), want)
    assert prefetch_threads() == []


class Inline:
    """The batches as they were built before the prefetcher: on the loop's thread, one at a time."""

    def __init__(self, build, steps):
        self.build = build

    def take(self, step):
        return self.build(step)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_training_losses_are_identical_with_the_batches_built_ahead_or_inline(tmp_path, monkeypatch):
    run = tiny_runs(D=(4 * 32 * 20,), train={"n_evals": 2})[0]
    out = {}
    for how in ("ahead", "inline"):
        if how == "inline":
            monkeypatch.setattr(feed, "Prefetcher", Inline)
        trainer = Trainer(run, RunDir(tmp_path / how), log=lambda _: None)
        _, losses = recording(trainer)
        summary = trainer.train()
        out[how] = np.asarray(losses).tobytes(), summary["L"], summary["train_loss"]
        assert len(losses) == run.steps
    assert out["ahead"] == out["inline"]


def raising(step: int) -> None:
    raise RuntimeError(f"hook at step {step}")


def failing_at(step: int, device_batch):
    """feed.device_batch, but for `step`: an error reading the corpus."""

    def build(*args):
        if args[-1] == step:
            raise OSError(f"no batch {step}")
        return device_batch(*args)

    return build


@pytest.mark.parametrize("ending", ["diverged", "preempted", "a hook raised", "a batch failed"])
def test_the_thread_ends_however_the_loop_ends(ending, tmp_path, monkeypatch):
    train = {"lr": 1e12, "grad_clip": 1e9, "weight_decay": 0.0} if ending == "diverged" else {}
    run = tiny_runs(D=(4 * 32 * 20,), train={"n_evals": 2, **train})[0]
    if ending == "preempted":  # as JAX's preemption service says on every process of a run
        monkeypatch.setattr(distributed, "reached_preemption_step", lambda step: step == 6)
    if ending == "a batch failed":
        monkeypatch.setattr(feed, "device_batch", failing_at(6, feed.device_batch))
    trainer = Trainer(run, RunDir(tmp_path), log=lambda _: None)
    if ending == "a hook raised":
        trainer.hooks.append(Hook("raise", lambda step: step == 4, raising))
    if ending in ("diverged", "preempted"):
        assert trainer.train()["status"] == ending
    else:
        error, message, last = (RuntimeError, "hook at step 4", 4) if ending == "a hook raised" else (OSError, "no batch 6", 5)
        with pytest.raises(error, match=message):
            trainer.train()
        assert trainer.counters.step == last  # a batch's error: raised at the step that needed it, after step 5
    assert prefetch_threads() == []
