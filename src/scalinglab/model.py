"""A Transformer LM in Flax NNX: pre-LN blocks, self-attention (causal, or bidirectional for the
masked objective), GELU MLP; init scales and multipliers from parametrization.rules.

Linear layers have no biases and the output layer is tied to the token embedding, so the
non-embedding parameter count is exactly planner.count_N (tested).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from .parametrization import Rules, rules

EMBEDDING_PARAMS = ("embed", "pos")  # top-level attributes excluded from N


class Block(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, r: Rules, causal: bool, *, rngs: nnx.Rngs):
        def linear(kind: str, d_in: int, d_out: int) -> nnx.Linear:
            init = nnx.initializers.normal(r.hidden_std[kind])
            return nnx.Linear(d_in, d_out, use_bias=False, kernel_init=init, rngs=rngs)

        self.n_heads, self.r, self.causal = n_heads, r, causal
        self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.qkv = linear("qkv", d_model, 3 * d_model)
        self.out = linear("out", d_model, d_model)
        self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.up = linear("up", d_model, d_ff)
        self.down = linear("down", d_ff, d_model)

    def __call__(self, x_BLD: jax.Array, index: int) -> jax.Array:
        B, L, D = x_BLD.shape
        m = self.r.hidden_mult
        qkv_BL3HK = (m["qkv"] * self.qkv(self.ln1(x_BLD))).reshape(B, L, 3, self.n_heads, D // self.n_heads)
        q_BLHK, k_BLHK, v_BLHK = (qkv_BL3HK[:, :, i] for i in range(3))
        att_BLHK = jax.nn.dot_product_attention(q_BLHK, k_BLHK, v_BLHK, scale=self.r.attn_scale, is_causal=self.causal)
        x_BLD = self.residual(x_BLD, m["out"] * self.out(att_BLHK.reshape(B, L, D)), 2 * index)
        h_BLF = self.r.gelu_mult * jax.nn.gelu(m["up"] * self.up(self.ln2(x_BLD)))
        return self.residual(x_BLD, m["down"] * self.down(h_BLF), 2 * index + 1)

    def residual(self, x_BLD: jax.Array, f_BLD: jax.Array, k: int) -> jax.Array:
        if not self.r.unit_residual:
            return x_BLD + f_BLD
        # x_k holds the embedding and k branches with equal weight at unit variance; add branch k+1.
        return (math.sqrt(k + 1) * x_BLD + f_BLD) / math.sqrt(k + 2)


class TransformerLM(nnx.Module):
    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        seq_len: int,
        vocab_size: int,
        *,
        parametrization: str = "sp",
        base_width: int = 64,
        causal: bool = True,
        rngs: nnx.Rngs,
    ):
        r = rules(parametrization, d_model, d_ff, n_layers, d_model // n_heads, base_width)
        self.r = r
        self.embed = nnx.Embed(vocab_size, d_model, embedding_init=nnx.initializers.normal(r.embed_std), rngs=rngs)
        self.pos = nnx.Param(nnx.initializers.normal(r.pos_std)(rngs.params(), (seq_len, d_model)))
        self.blocks = nnx.List([Block(d_model, n_heads, d_ff, r, causal, rngs=rngs) for _ in range(n_layers)])
        self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)

    def __call__(self, tokens_BL: jax.Array) -> jax.Array:
        x_BLD = self.r.embed_mult * (self.embed(tokens_BL) + self.pos[: tokens_BL.shape[1]])
        for i, block in enumerate(self.blocks):
            x_BLD = block(x_BLD, i)
        return self.r.readout_mult * self.embed.attend(self.ln_f(x_BLD))  # logits_BLV, tied output layer


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
