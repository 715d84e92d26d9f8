"""A decoder-only Transformer LM in Flax NNX: pre-LN blocks, causal self-attention, GELU MLP.

Linear layers have no biases and the output layer is tied to the token embedding, so the
non-embedding parameter count is exactly planner.count_N (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

EMBEDDING_PARAMS = ("embed", "pos")  # top-level attributes excluded from N


class Block(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        # GPT-2: residual-branch outputs scaled down with depth so the residual stream stays O(1).
        out_init = nnx.initializers.normal(0.02 / (2 * n_layers) ** 0.5)
        self.n_heads = n_heads
        self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.qkv = nnx.Linear(d_model, 3 * d_model, use_bias=False, kernel_init=init, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, use_bias=False, kernel_init=out_init, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.up = nnx.Linear(d_model, d_ff, use_bias=False, kernel_init=init, rngs=rngs)
        self.down = nnx.Linear(d_ff, d_model, use_bias=False, kernel_init=out_init, rngs=rngs)

    def __call__(self, x_BLD: jax.Array) -> jax.Array:
        B, L, D = x_BLD.shape
        qkv_BL3HK = self.qkv(self.ln1(x_BLD)).reshape(B, L, 3, self.n_heads, D // self.n_heads)
        q_BLHK, k_BLHK, v_BLHK = (qkv_BL3HK[:, :, i] for i in range(3))
        att_BLHK = jax.nn.dot_product_attention(q_BLHK, k_BLHK, v_BLHK, is_causal=True)
        x_BLD = x_BLD + self.out(att_BLHK.reshape(B, L, D))
        return x_BLD + self.down(jax.nn.gelu(self.up(self.ln2(x_BLD))))


class TransformerLM(nnx.Module):
    def __init__(
        self, n_layers: int, d_model: int, n_heads: int, d_ff: int, seq_len: int, vocab_size: int, *, rngs: nnx.Rngs
    ):
        self.embed = nnx.Embed(vocab_size, d_model, embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
        self.pos = nnx.Param(nnx.initializers.normal(0.01)(rngs.params(), (seq_len, d_model)))
        self.blocks = nnx.List([Block(d_model, n_heads, d_ff, n_layers, rngs=rngs) for _ in range(n_layers)])
        self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)

    def __call__(self, tokens_BL: jax.Array) -> jax.Array:
        x_BLD = self.embed(tokens_BL) + self.pos[: tokens_BL.shape[1]]
        for block in self.blocks:
            x_BLD = block(x_BLD)
        return self.embed.attend(self.ln_f(x_BLD))  # logits_BLV, tied output layer


def count_params(model: nnx.Module, non_embedding: bool = True) -> int:
    """Parameters in the real tree; with non_embedding, without the token and position tables."""
    total = 0
    for path, leaf in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if non_embedding and path[0] in EMBEDDING_PARAMS:
            continue
        total += leaf.size
    return total


def cross_entropy(logits_BLV: jax.Array, targets_BL: jax.Array) -> jax.Array:
    """Per-token loss in nats, computed in float32."""
    logp_BLV = jax.nn.log_softmax(logits_BLV.astype(jnp.float32))
    return -jnp.take_along_axis(logp_BLV, targets_BL[..., None], axis=-1)[..., 0]
