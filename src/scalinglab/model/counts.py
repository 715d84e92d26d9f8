"""Parameter counts and FLOPs per token of the model in model/transformer.py. Pure arithmetic, no
JAX: the planner counts with it, and the training loop's MFU (training/throughput.py) too.

Counts follow the model exactly (tested against the real Flax tree and XLA's cost analysis):
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


def count_N(n_layers: int, d_model: int, d_ff: int) -> int:
    per_layer = 4 * d_model * d_model + 2 * d_model * d_ff + 4 * d_model
    return n_layers * per_layer + 2 * d_model


def param_shapes(n_layers: int, d_model: int, d_ff: int, seq_len: int, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape by its name in a run's kept weights (training/weights.py): the
    layers' stacked along the first axis, as the model scans them."""
    L, d = n_layers, d_model
    layer = {"ln1.scale": (d,), "ln1.bias": (d,), "qkv.kernel": (d, 3 * d), "out.kernel": (d, d), "ln2.scale": (d,),
             "ln2.bias": (d,), "up.kernel": (d, d_ff), "down.kernel": (d_ff, d)}  # fmt: skip
    return {
        "embed.embedding": (vocab_size, d),
        "pos": (seq_len, d),
        "ln_f.scale": (d,),
        "ln_f.bias": (d,),
        **{f"blocks.{name}": (L, *shape) for name, shape in layer.items()},
    }


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


def computed_flops_per_token(N: int, n_layers: int, d_model: int, seq_len: int, vocab_size: int, causal: bool, block: int | None) -> float:
    """FLOPs per token a training step computes, forward and backward: flops_per_token with the
    attention scores and values over attention_keys_per_query(seq_len, causal, block) keys instead
    of all seq_len. What is recomputed in the backward (a kernel's scores, remat) is not counted:
    model FLOPs, not hardware FLOPs. Bidirectional attention (the masked objective) computes all:
    flops_per_token."""
    return 6 * (N + d_model * vocab_size) + 12 * n_layers * d_model * attention_keys_per_query(seq_len, causal, block)
