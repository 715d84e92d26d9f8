"""The step loop's batches: each step's batch built on the host (data.batches' windows, the
objective's examples) and put on the devices (sharding.global_arrays)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding

from ..data.batches import batch
from . import sharding


def device_batch(run, train: np.ndarray, by_row: NamedSharding, step: int) -> tuple[jax.Array, ...]:
    """The (inputs, targets, weights) of `step` of `run` (a RunSpec) on the devices, drawn from the
    training tokens `train`: this process builds and sends the rows of its own devices only."""

    def rows(start: int, stop: int) -> tuple:
        part = slice(start, stop)
        windows = batch(train, run.model.seq_len, run.batch_size, run.seed, step, part)
        return run.model.objective.examples(windows, run.data.vocab_size, run.seed, step, part, run.batch_size)

    return sharding.global_arrays((run.batch_size, run.model.seq_len), by_row, rows, 3)
