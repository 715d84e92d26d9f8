"""Windows of token ids: the fixed held-out windows every evaluation scores, and each step's
training batch, a pure function of (seed, step). No JAX."""

from __future__ import annotations

import numpy as np

from ..errors import SpecError


def val_windows(val: np.ndarray, seq_len: int, val_tokens: int) -> np.ndarray:
    """The first val_tokens held-out tokens as (n, seq_len + 1) windows: inputs and shifted targets."""
    n = max(1, val_tokens // seq_len)
    if len(val) < n * seq_len + 1:
        raise SpecError(
            f"data.val_tokens: {val_tokens} needs {n * seq_len + 1} held-out tokens but the corpus holds out "
            f"{len(val)}; lower data.val_tokens or raise data.val_fraction"
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    return np.asarray(val[idx], dtype=np.int32)


def batch(train: np.ndarray, seq_len: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Random windows (batch_size, seq_len + 1) for one step; a pure function of (seed, step)."""
    if len(train) <= seq_len + 1:
        raise SpecError(f"data: {len(train)} training tokens are too few for model.seq_len {seq_len}")
    starts = np.random.default_rng([seed, step]).integers(0, len(train) - seq_len - 1, batch_size)
    return np.asarray(train[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)

