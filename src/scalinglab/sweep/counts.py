"""Shapes, parameter counts and FLOPs per token. Pure functions.

Counts follow the model in model/transformer.py exactly (tested against the real Flax tree):
- N, non-embedding parameters: per layer two LayerNorms (scale + bias), the fused q/k/v and
  output projections (no biases), the MLP (no biases); plus the final LayerNorm.
- N_total adds the token embedding (tied with the output layer) and the learned positions.
- FLOPs per token, PaLM convention (Chowdhery et al. 2022, App. B): 6 per matmul weight per
  token (N plus the d_model x vocab_size unembedding) plus 12 * n_layers * seq_len * d_model
  for the attention scores and values (the full seq_len x seq_len matrix). C = that * D.
- FLOPs per token computed (computed_flops_per_token, for MFU): the same with the attention
  scores the model computes; a causal kernel skips the score blocks above the diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SpecError
from .spec import ModelSpec, Point, SweepSpec


@dataclass(frozen=True)
class Shape:
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int

    @property
    def N(self) -> int:
        return count_N(self.n_layers, self.d_model, self.d_ff)


def count_N(n_layers: int, d_model: int, d_ff: int) -> int:
    per_layer = 4 * d_model * d_model + 2 * d_model * d_ff + 4 * d_model
    return n_layers * per_layer + 2 * d_model


def count_N_total(N: int, d_model: int, seq_len: int, vocab_size: int) -> int:
    return N + vocab_size * d_model + seq_len * d_model


def flops_per_token(N: int, n_layers: int, d_model: int, seq_len: int, vocab_size: int) -> int:
    return 6 * (N + d_model * vocab_size) + 12 * n_layers * seq_len * d_model


def attention_keys_per_query(seq_len: int, causal: bool, block: int | None) -> float:
    """Keys per query, on average, whose attention scores (and values) are computed. Bidirectional,
    or causal with block None (the whole matrix computed, then masked): all seq_len. Causal in
    blocks of `block` query rows: block [s, e) against keys [0, e), the diagonal block whole (then
    masked), the blocks above it skipped; (n + 1) / 2n of the matrix for n blocks, so 3/4 at
    seq_len 128 in 64-row blocks; block 1 is the triangle, (seq_len + 1) / 2 keys."""
    if not causal or block is None:
        return float(seq_len)
    starts = range(0, seq_len, block)
    return sum((min(s + block, seq_len) - s) * min(s + block, seq_len) for s in starts) / seq_len


def computed_flops_per_token(
    N: int, n_layers: int, d_model: int, seq_len: int, vocab_size: int, causal: bool, block: int | None
) -> float:
    """FLOPs per token a training step computes, forward and backward: flops_per_token with the
    attention scores and values over attention_keys_per_query(seq_len, causal, block) keys instead
    of all seq_len. What is recomputed in the backward (a kernel's scores, remat) is not counted:
    model FLOPs, not hardware FLOPs. Bidirectional attention (the masked objective) computes all:
    flops_per_token."""
    return 6 * (N + d_model * vocab_size) + 12 * n_layers * d_model * attention_keys_per_query(seq_len, causal, block)


def shape_for(N_target: float, model: ModelSpec) -> Shape:
    """Target non-embedding N -> a shape with d_model ~ aspect_ratio * n_layers.

    Depth comes from the rule N ~ (4 + 2 mlp_ratio) n_layers d_model^2 with d_model =
    aspect_ratio * n_layers; the width is then the multiple of d_head whose N is nearest the
    target in log space, so N lands within a few percent of the target.
    """
    k = 4 + 2 * model.mlp_ratio
    n_layers = max(1, round((N_target / (k * model.aspect_ratio**2)) ** (1 / 3)))
    ideal = (N_target / (k * n_layers)) ** 0.5

    def shape(heads: int) -> Shape:
        d_model = heads * model.d_head
        return Shape(n_layers, d_model, heads, round(model.mlp_ratio * d_model))

    lo = max(1, int(ideal // model.d_head))
    return min((shape(lo), shape(lo + 1)), key=lambda s: abs(math.log(s.N / N_target)))


def point_shape(point: Point, model: ModelSpec) -> Shape:
    """A grid point's shape: as given, or the shape rule's for its N."""
    if point.N is not None:
        return shape_for(point.N, model)
    s = point.shape
    return Shape(s.n_layers, s.d_model, s.n_heads, s.d_ff or round(model.mlp_ratio * s.d_model))


def shapes(spec: SweepSpec) -> list[Shape]:
    """The sweep's model shapes, as given or by the shape rule; the same shape twice is refused,
    except from grid.points, where several points may share a size."""
    g, m = spec.grid, spec.model
    if g.points is not None:
        return list(dict.fromkeys(point_shape(p, m) for p in g.points))
    if g.shapes is not None:
        out = [Shape(s.n_layers, s.d_model, s.n_heads, s.d_ff or round(m.mlp_ratio * s.d_model)) for s in g.shapes]
        where = "grid.shapes"
    else:
        out = [shape_for(n, m) for n in g.N]
        where = "grid.N"
    seen: dict[Shape, int] = {}
    for i, s in enumerate(out):
        if s in seen:
            raise SpecError(
                f"{where}[{i}]: gives the same shape as {where}[{seen[s]}] "
                f"(n_layers={s.n_layers}, d_model={s.d_model}); space the sizes further apart"
            )
        seen[s] = i
    return out
