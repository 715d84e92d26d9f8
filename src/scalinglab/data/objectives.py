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

OBJECTIVES = Registry("objective")
VAL_SEED = 2**31 - 1  # the held-out masks: the same for every run of every sweep


@dataclass(frozen=True)
class Objective(Choice):
    registry: ClassVar[Registry] = OBJECTIVES
    causal: ClassVar[bool]
    """Whether a position may attend only to itself and earlier ones."""

    def examples(self, windows: np.ndarray, tokenizer_vocab: int, seed: int, step: int):
        """windows (B, seq_len + 1) -> inputs, targets (B, seq_len) int32 and weights (B, seq_len) float32."""
        raise NotImplementedError

    def model_vocab(self, tokenizer_vocab: int) -> int:
        """Ids the model embeds."""
        return tokenizer_vocab


@OBJECTIVES.register("causal")
@dataclass(frozen=True)
class Causal(Objective):
    causal: ClassVar[bool] = True

    def examples(self, windows, tokenizer_vocab, seed, step):
        return windows[:, :-1], windows[:, 1:], np.ones(windows[:, 1:].shape, np.float32)


@OBJECTIVES.register("masked")
@dataclass(frozen=True)
class Masked(Objective):
    causal: ClassVar[bool] = False
    mask_fraction: float

    def examples(self, windows, tokenizer_vocab, seed, step):
        tokens = windows[:, :-1]
        B, L = tokens.shape
        rng = np.random.default_rng([seed, step, 1])  # 1: a stream apart from the batch's own
        n_masked = max(1, round(self.mask_fraction * L))
        chosen = np.zeros((B, L), bool)
        np.put_along_axis(chosen, rng.random((B, L)).argsort(axis=1)[:, :n_masked], True, axis=1)
        fate = rng.random((B, L))
        inputs = tokens.copy()
        inputs[chosen & (fate < 0.8)] = tokenizer_vocab  # the [MASK] id: one past the tokenizer's
        swap = chosen & (fate >= 0.8) & (fate < 0.9)
        inputs[swap] = rng.integers(0, tokenizer_vocab, swap.sum())
        return inputs, tokens, chosen.astype(np.float32)

    def model_vocab(self, tokenizer_vocab):
        return tokenizer_vocab + 1  # and [MASK]
