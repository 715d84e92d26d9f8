"""A Transformer LM in Flax NNX: pre-LN blocks, self-attention (causal, or bidirectional for the
masked objective), GELU MLP; init scales and multipliers from the run's parametrization.

Linear layers have no biases and the output layer is tied to the token embedding, so the
non-embedding parameter count is exactly sweep.counts.count_N (tested).

The forward pass is written for XLA on CPU (experiments/bench_throughput.py measures it): weight
gradients put the transposed copy XLA needs on the smaller operand (`dense`), attention runs as a
C++ kernel on all cores (cpu_attention) or else works in a heads-major layout and skips the score
blocks a causal mask removes entirely, layer norm does its reductions as matrix-vector products,
and the loss takes the target logit with a one-hot product, whose gradient needs no scatter.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx

from . import cpu_attention
from .parametrization import Rules

EMBEDDING_PARAMS = ("embed", "pos")  # top-level attributes excluded from N
ATTENTION_BLOCK = 64  # query/key block of causal attention: blocks above the diagonal are skipped
MASKED = -1e30  # score of a masked key: exp underflows to 0 without inf - inf = nan


@jax.custom_vjp
def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x @ kernel, as nnx.Linear without bias."""
    return x @ kernel


def _dense_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _dense_bwd(res, g):
    x, kernel = res
    d_in, d_out = kernel.shape
    x2, g2 = x.reshape(-1, d_in), g.reshape(-1, d_out)
    # XLA's CPU dot wants the right operand of x^T g transposed in memory, and otherwise puts
    # that copy on g: the MLP's up projection then copies its 4x wider gradient, fused into the
    # GELU backward and slow. Computing (g^T x)^T copies the narrower operand instead.
    d_kernel = (g2.T @ x2).T if d_out > d_in else x2.T @ g2
    return g @ kernel.T, d_kernel


dense.defvjp(_dense_fwd, _dense_bwd)


def _row_mean(x: jax.Array) -> jax.Array:
    """Mean over the last axis, as a matrix-vector product (XLA's CPU row reduction is slower)."""
    d = x.shape[-1]
    return (x.reshape(-1, d) @ jnp.full((d, 1), 1 / d, x.dtype)).reshape(*x.shape[:-1], 1)


def _column_sum(x: jax.Array) -> jax.Array:
    """Sum over all but the last axis, as a vector-matrix product (3.7x XLA's CPU reduction)."""
    d = x.shape[-1]
    return (jnp.ones((1, x.size // d), x.dtype) @ x.reshape(-1, d))[0]


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """nnx.LayerNorm's function, statistics in float32, with every reduction a matrix product."""
    return _layer_norm_fwd(x, scale, bias, eps)[0]


def _layer_norm_fwd(x, scale, bias, eps):
    x32 = x.astype(jnp.float32)
    centred = x32 - _row_mean(x32)
    rstd = jax.lax.rsqrt(_row_mean(centred * centred) + eps)
    x_hat = centred * rstd
    return (x_hat * scale + bias).astype(x.dtype), (x_hat, rstd, scale)


def _layer_norm_bwd(eps, res, g):
    x_hat, rstd, scale = res
    g32 = g.astype(jnp.float32)  # g has x's dtype, as y does
    g_hat = g32 * scale
    dx = rstd * (g_hat - _row_mean(g_hat) - x_hat * _row_mean(g_hat * x_hat))
    return dx.astype(g.dtype), _column_sum(g32 * x_hat).astype(scale.dtype), _column_sum(g32).astype(scale.dtype)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(nnx.LayerNorm):
    """nnx.LayerNorm (same parameters) computed by layer_norm."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.scale[...], self.bias[...], self.epsilon)


def attention(q_BHLK: jax.Array, k_BHLK: jax.Array, v_BHLK: jax.Array, scale: float, causal: bool) -> jax.Array:
    """Softmax attention in the heads-major layout (batch and head dimensions lead, as XLA's
    batched dot wants them). Causal: query block i attends to key blocks 0..i only. On a CPU,
    cpu_attention's kernel computes it where it can."""
    if cpu_attention.usable(q_BHLK):
        return cpu_attention.attention(q_BHLK, k_BHLK, v_BHLK, scale, causal)
    L = q_BHLK.shape[2]
    q_BHLK = q_BHLK * scale  # on q: fewer elements than the scores
    if not causal or L <= ATTENTION_BLOCK:
        return _attend(q_BHLK, k_BHLK, v_BHLK, 0 if causal else None)
    outs = []
    for start in range(0, L, ATTENTION_BLOCK):
        end = min(start + ATTENTION_BLOCK, L)
        outs.append(_attend(q_BHLK[:, :, start:end], k_BHLK[:, :, :end], v_BHLK[:, :, :end], start))
    return jnp.concatenate(outs, axis=2)


def _attend(q_BHQK, k_BHSK, v_BHSK, offset: int | None):
    """Attention of queries at positions offset.. to keys 0..; offset None: no mask."""
    s_BHQS = jnp.einsum("bhqk,bhsk->bhqs", q_BHQK, k_BHSK)
    if offset is not None:
        Q, S = s_BHQS.shape[-2:]
        visible = jnp.arange(S)[None, :] <= offset + jnp.arange(Q)[:, None]
        s_BHQS = jnp.where(visible, s_BHQS, MASKED)
    return jnp.einsum("bhqs,bhsk->bhqk", jax.nn.softmax(s_BHQS, axis=-1), v_BHSK)


class Block(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, r: Rules, causal: bool, *, rngs: nnx.Rngs):
        def linear(kind: str, d_in: int, d_out: int) -> nnx.Linear:
            init = nnx.initializers.normal(r.hidden_std[kind])
            return nnx.Linear(d_in, d_out, use_bias=False, kernel_init=init, rngs=rngs)

        self.n_heads, self.r, self.causal = n_heads, r, causal
        self.ln1 = LayerNorm(d_model, rngs=rngs)
        self.qkv = linear("qkv", d_model, 3 * d_model)
        self.out = linear("out", d_model, d_model)
        self.ln2 = LayerNorm(d_model, rngs=rngs)
        self.up = linear("up", d_model, d_ff)
        self.down = linear("down", d_ff, d_model)

    def __call__(self, x_BLD: jax.Array, index: int) -> jax.Array:
        B, L, D = x_BLD.shape
        m, H = self.r.hidden_mult, self.n_heads
        qkv_BLD3 = m["qkv"] * dense(self.ln1(x_BLD), self.qkv.kernel[...])
        q_BHLK, k_BHLK, v_BHLK = qkv_BLD3.reshape(B, L, 3, H, D // H).transpose(2, 0, 3, 1, 4)
        att_BHLK = attention(q_BHLK, k_BHLK, v_BHLK, self.r.attn_scale, self.causal)
        att_BLD = att_BHLK.transpose(0, 2, 1, 3).reshape(B, L, D)
        x_BLD = self.residual(x_BLD, m["out"] * dense(att_BLD, self.out.kernel[...]), 2 * index)
        h_BLF = self.r.gelu_mult * jax.nn.gelu(m["up"] * dense(self.ln2(x_BLD), self.up.kernel[...]))
        return self.residual(x_BLD, m["down"] * dense(h_BLF, self.down.kernel[...]), 2 * index + 1)

    def residual(self, x_BLD: jax.Array, f_BLD: jax.Array, k: int) -> jax.Array:
        if not self.r.unit_residual:
            return x_BLD + f_BLD
        # x_k holds the embedding and k branches with equal weight at unit variance; add branch k+1.
        return (math.sqrt(k + 1) * x_BLD + f_BLD) / math.sqrt(k + 2)


class TransformerLM(nnx.Module):
    def __init__(self, config, *, rngs: nnx.Rngs):
        """config: the run's model section (sweep.runspec.ModelConfig)."""
        c = config
        r = c.parametrization.rules(c.d_model, c.d_ff, c.n_layers, c.d_head)
        self.r = r
        self.embed = nnx.Embed(c.vocab_size, c.d_model, embedding_init=nnx.initializers.normal(r.embed_std), rngs=rngs)
        self.pos = nnx.Param(nnx.initializers.normal(r.pos_std)(rngs.params(), (c.seq_len, c.d_model)))
        causal = c.objective.causal
        self.blocks = nnx.List([Block(c.d_model, c.n_heads, c.d_ff, r, causal, rngs=rngs) for _ in range(c.n_layers)])
        self.ln_f = LayerNorm(c.d_model, rngs=rngs)

    def __call__(self, tokens_BL: jax.Array) -> jax.Array:
        return self.logits(self.residual_stream(tokens_BL)[-1])

    def residual_stream(self, tokens_BL: jax.Array) -> list[jax.Array]:
        """The stream after the embedding and after each block (the coordinate check reads them all)."""
        x_BLD = self.r.embed_mult * (self.embed(tokens_BL) + self.pos[: tokens_BL.shape[1]])
        stream = [x_BLD]
        for i, block in enumerate(self.blocks):
            stream.append(block(stream[-1], i))
        return stream

    def logits(self, x_BLD: jax.Array) -> jax.Array:
        return self.r.readout_mult * self.embed.attend(self.ln_f(x_BLD))  # logits_BLV, tied output layer


def build_model(config, seed: int) -> TransformerLM:
    """The model of a run's model section, its parameters drawn from `seed`."""
    return TransformerLM(config, rngs=nnx.Rngs(seed))


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
    logits_BLV = logits_BLV.astype(jnp.float32)
    target_BL = jnp.sum(logits_BLV * jax.nn.one_hot(targets_BL, logits_BLV.shape[-1], dtype=jnp.float32), axis=-1)
    return jax.nn.logsumexp(logits_BLV, axis=-1) - target_BL
