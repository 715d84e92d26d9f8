"""Windows of token ids: the fixed held-out windows every evaluation scores, and each step's
training batch, a pure function of (seed, step). No JAX."""

from __future__ import annotations

import numpy as np

from ..errors import SpecError

EVAL_CHUNK = 32  # validation windows per forward pass: bounds memory for large val_tokens


def n_val_windows(seq_len: int, val_tokens: int) -> int:
    """How many validation windows val_windows makes."""
    return max(1, val_tokens // seq_len)


def eval_chunks(n_windows: int) -> tuple[int, int]:
    """How evaluation splits n_windows validation windows: (chunks, windows per chunk), at least
    EVAL_CHUNK each (up to 2 x EVAL_CHUNK - 1); the windows past chunks x per chunk are left out."""
    n_chunks = max(1, n_windows // EVAL_CHUNK)
    return n_chunks, n_windows // n_chunks


def val_windows(val: np.ndarray, seq_len: int, val_tokens: int) -> np.ndarray:
    """The first val_tokens held-out tokens as (n, seq_len + 1) windows: inputs and shifted targets."""
    n = n_val_windows(seq_len, val_tokens)
    if len(val) < n * seq_len + 1:
        raise SpecError(
            f"data.val_tokens: {val_tokens} needs {n * seq_len + 1} held-out tokens but the corpus holds out "
            f"{len(val)}; lower data.val_tokens or raise data.val_fraction"
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    return np.asarray(val[idx], dtype=np.int32)


def batch(train: np.ndarray, seq_len: int, batch_size: int, seed: int, step: int, rows: slice = slice(None)) -> np.ndarray:
    """Random windows (batch_size, seq_len + 1) for one step, a pure function of (seed, step); or
    only `rows` of them (a process builds the rows of its own devices)."""
    if len(train) <= seq_len + 1:
        raise SpecError(f"data: {len(train)} training tokens are too few for model.seq_len {seq_len}")
    starts = np.random.default_rng([seed, step]).integers(0, len(train) - seq_len - 1, batch_size)[rows]
    return np.asarray(train[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)
