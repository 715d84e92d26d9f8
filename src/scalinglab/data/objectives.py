"""Training objectives as registered types that turn token windows into (inputs, targets, weights);
the loss is the weighted mean cross-entropy.

- causal: predict token t+1 from tokens <= t; every position counts.
- masked (BERT, Devlin et al. 2019): a fixed share of positions is chosen; of those 80% become
  [MASK], 10% a random token, 10% stay; only the chosen positions count. Attention sees both ways.

Masks are a pure function of (seed, step), like the batches, so a resumed run sees the same ones.
No JAX here: examples are built on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..choices import Choice, Registry

OBJECTIVES: Registry[Objective] = Registry("objective")
VAL_SEED = 2**31 - 1  # the held-out masks: the same for every run of every sweep


@dataclass(frozen=True)
class Objective(Choice):
    registry: ClassVar[Registry[Objective]] = OBJECTIVES
    causal: ClassVar[bool]
    """Whether a position may attend only to itself and earlier ones."""

    def examples(
        self, windows: np.ndarray, tokenizer_vocab: int, seed: int, step: int, rows: slice = slice(None), batch_size: int | None = None
    ):
        """windows (B, seq_len + 1) -> inputs, targets (B, seq_len) int32 and weights (B, seq_len) float32.
        windows may be only `rows` (start, stop) of a batch of batch_size: their rows of its examples."""
        raise NotImplementedError

    def model_vocab(self, tokenizer_vocab: int) -> int:
        """Ids the model embeds."""
        return tokenizer_vocab


@OBJECTIVES.register("causal")
@dataclass(frozen=True)
class Causal(Objective):
    causal: ClassVar[bool] = True

    def examples(self, windows, tokenizer_vocab, seed, step, rows=slice(None), batch_size=None):
        return windows[:, :-1], windows[:, 1:], np.ones(windows[:, 1:].shape, np.float32)


@OBJECTIVES.register("masked")
@dataclass(frozen=True)
class Masked(Objective):
    causal: ClassVar[bool] = False
    mask_fraction: float

    def examples(self, windows, tokenizer_vocab, seed, step, rows=slice(None), batch_size=None):
        tokens = windows[:, :-1]
        L = tokens.shape[1]
        # The whole batch's draws (cheap), of which these rows take theirs: the same masks however
        # the batch is split between processes.
        rng = np.random.default_rng([seed, step, 1])  # 1: a stream apart from the batch's own
        n_masked = max(1, round(self.mask_fraction * L))
        chosen = np.zeros((batch_size or len(tokens), L), bool)
        np.put_along_axis(chosen, rng.random(chosen.shape).argsort(axis=1)[:, :n_masked], True, axis=1)
        fate = rng.random(chosen.shape)
        swap = chosen & (fate >= 0.8) & (fate < 0.9)
        swapped = rng.integers(0, tokenizer_vocab, swap.sum())
        first, _, _ = rows.indices(len(chosen))
        swapped = swapped[swap[:first].sum() :][: swap[rows].sum()]
        chosen, fate, swap = chosen[rows], fate[rows], swap[rows]
        inputs = tokens.copy()
        inputs[chosen & (fate < 0.8)] = tokenizer_vocab  # the [MASK] id: one past the tokenizer's
        inputs[swap] = swapped
        return inputs, tokens, chosen.astype(np.float32)

    def model_vocab(self, tokenizer_vocab):
        return tokenizer_vocab + 1  # and [MASK]
