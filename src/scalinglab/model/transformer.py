"""A Transformer LM in Flax NNX: pre-LN blocks, self-attention (causal, or bidirectional for the
masked objective), GELU MLP; init scales and multipliers from the run's parametrization.

Linear layers have no biases and the output layer is tied to the token embedding, so the
non-embedding parameter count is exactly model.counts.count_N (tested).

Layers run as one lax.scan over stacked parameters, unrolled or not (kernels.layer_loop: the
scanned program does not grow with depth; XLA's CPU backend runs the unrolled one faster),
optionally rematerialised. Attention is chosen once per build by platform, precision and head
width (attention_kind): a C++ kernel on all cores of a CPU (cpu_attention), cuDNN's fused kernel
on NVIDIA GPUs in bf16 where it runs (Ampere or later, the head widths it takes), XLA's
otherwise. Under bf16, attention scores, softmax, the loss (the logits are bf16, its softmax
float32) and LayerNorm statistics are float32. Traced under a mesh (a training step's),
activations keep the batch's rows on their devices (rows): under fsdp XLA gathers the parameters
where they are used, not the activations.

On the CPU the forward pass is tuned for XLA (experiments/bench_throughput.py measures it): weight
gradients put the transposed copy XLA needs on the smaller operand (`dense`), layer norm does its
reductions as matrix-vector products, and the loss takes the target logit with a one-hot product,
whose gradient needs no scatter.
"""

from __future__ import annotations

import logging
from functools import cache, partial
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec

from . import cpu_attention, kernels
from .parametrization import Rules

log = logging.getLogger(__name__)

EMBEDDING_PARAMS = ("embed", "pos")  # top-level attributes excluded from N


def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x @ kernel, as nnx.Linear without bias, in the kernel's (compute) dtype: the residual
    stream stays float32 under bf16. Its input and output keep their rows on their devices (rows):
    under fsdp the kernel is gathered, not the activations."""
    return rows(_dense(rows(x.astype(kernel.dtype)), kernel))


@jax.custom_vjp
def _dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
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


_dense.defvjp(_dense_fwd, _dense_bwd)


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


def plain_layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """layer_norm with XLA's own reductions, in float32 (accelerators run a matmul's reduction in
    TF32 or bf16)."""
    x32 = x.astype(jnp.float32)
    centred = x32 - jnp.mean(x32, axis=-1, keepdims=True)
    x_hat = centred * jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + eps)
    return (x_hat * scale + bias).astype(x.dtype)


class LayerNorm(nnx.LayerNorm):
    """nnx.LayerNorm (same parameters), statistics in float32: layer_norm's matrix-product
    reductions on the CPU; plain reductions elsewhere."""

    plain: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:  # type: ignore[override]  # no mask: every LayerNorm here normalises all its features
        assert self.scale is not None and self.bias is not None  # use_scale, use_bias: nnx's defaults, kept here
        return (plain_layer_norm if self.plain else layer_norm)(x, self.scale[...], self.bias[...], self.epsilon)


def rows(x: jax.Array) -> jax.Array:
    """x with its leading (batch) axis split over the mesh in context (a training step's); as it
    is without one. Left to XLA, the stream of an fsdp step takes the parameters' sharding, along
    d_model, and every layer gathers the whole batch's activations."""
    axes = jax.sharding.get_abstract_mesh().auto_axes  # a shard_map's manual axes hold their rows already
    return jax.lax.with_sharding_constraint(x, PartitionSpec(axes)) if axes else x


def whole(x: jax.Array) -> jax.Array:
    """x on every device of the mesh in context: a parameter fsdp shards, gathered where it is used
    (a lookup in a table sharded by token would all-reduce the whole batch's embeddings)."""
    return jax.lax.with_sharding_constraint(x, PartitionSpec()) if jax.sharding.get_abstract_mesh().auto_axes else x


def attention_kind(precision: kernels.Precision, devices=None, d_head: int | None = None) -> kernels.Attention:
    """The attention (kernels.choose_attention) of a model built for these devices (default: the
    run's, over all its processes) in `precision`, with heads of d_head; its reason is logged once
    (a warning where cuDNN is ruled out or pays little)."""
    devices = devices or jax.devices()
    first = devices[0]
    capability = getattr(first, "compute_capability", None)  # GPUs only: "9.0"
    choice = kernels.choose_attention(
        first.platform, first.device_kind, len(devices), precision, cpu_attention.available, d_head=d_head, compute_capability=capability
    )
    _say(choice.why, choice.warn)
    return choice.kind


@cache
def _say(why: str, warn: bool) -> None:
    """Logs a reason once a process (one process may build many models: gpu_check, the tests)."""
    (log.warning if warn else log.info)("attention: %s", why)


def attention(qkv_BL3HK: jax.Array, scale: float, causal: bool, kind: kernels.Attention = kernels.Attention.XLA) -> jax.Array:
    """Softmax attention of `kind` (attention_kind) over the fused projection's q, k and v (axis
    2), as [B, L, H, K]. μP's 1/d_head (or the standard 1/sqrt(d_head)) is the kernel's own scale."""
    if kind == kernels.Attention.CPU:  # token-major in and out: no transposing copies
        return cpu_attention.attention(qkv_BL3HK, scale, causal)
    implementation: Literal["xla", "cudnn"] = "cudnn" if kind == kernels.Attention.CUDNN else "xla"  # CPU returned above
    q_BLHK, k_BLHK, v_BLHK = jnp.unstack(qkv_BL3HK, axis=2)
    return jax.nn.dot_product_attention(q_BLHK, k_BLHK, v_BLHK, scale=scale, is_causal=causal, implementation=implementation)


class Block(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, r: Rules, causal: bool, kind: kernels.Attention, *, rngs: nnx.Rngs):
        def linear(name: str, d_in: int, d_out: int) -> nnx.Linear:
            init = nnx.initializers.normal(r.hidden_std[name])
            return nnx.Linear(d_in, d_out, use_bias=False, kernel_init=init, rngs=rngs)

        self.n_heads, self.r, self.causal, self.kind = n_heads, r, causal, kind
        self.ln1 = LayerNorm(d_model, rngs=rngs)
        self.qkv = linear("qkv", d_model, 3 * d_model)
        self.out = linear("out", d_model, d_model)
        self.ln2 = LayerNorm(d_model, rngs=rngs)
        self.up = linear("up", d_model, d_ff)
        self.down = linear("down", d_ff, d_model)
        self.ln1.plain = self.ln2.plain = kind != kernels.Attention.CPU

    def __call__(self, x_BLD: jax.Array, k: jax.Array) -> jax.Array:
        """x_BLD: the stream holding the embedding and k residual branches (k = 2 x the block's index)."""
        B, L, D = x_BLD.shape
        m, H = self.r.hidden_mult, self.n_heads
        qkv_BLD3 = m["qkv"] * dense(self.ln1(x_BLD), self.qkv.kernel[...])
        att_BLD = attention(qkv_BLD3.reshape(B, L, 3, H, D // H), self.r.attn_scale, self.causal, self.kind).reshape(B, L, D)
        x_BLD = self.residual(x_BLD, m["out"] * dense(att_BLD, self.out.kernel[...]), k)
        h_BLF = self.r.gelu_mult * jax.nn.gelu(m["up"] * dense(self.ln2(x_BLD), self.up.kernel[...]))
        return self.residual(x_BLD, m["down"] * dense(h_BLF, self.down.kernel[...]), k + 1)

    def residual(self, x_BLD: jax.Array, f_BLD: jax.Array, k: jax.Array) -> jax.Array:
        if not self.r.unit_residual:
            return x_BLD + f_BLD
        # x_k holds the embedding and k branches with equal weight at unit variance; add branch k+1.
        k = k.astype(jnp.float32)
        return ((jnp.sqrt(k + 1) * x_BLD + f_BLD) / jnp.sqrt(k + 2)).astype(x_BLD.dtype)


def _stacked(blocks: list[Block]) -> Block:
    """One Block whose parameters hold every layer's along a leading axis, for the scan."""
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *(nnx.state(b) for b in blocks))
    nnx.update(blocks[0], stacked)
    return blocks[0]


class TransformerLM(nnx.Module):
    def __init__(
        self,
        config,
        *,
        rngs: nnx.Rngs,
        attention: kernels.Attention = kernels.Attention.XLA,
        remat: bool = False,
        layers: kernels.Layers = kernels.Layers.SCAN,
    ):
        """config: the run's model section (sweep.runspec.ModelConfig); attention: its kind
        (attention_kind); remat: recompute each block's activations in the backward pass; layers:
        scanned or unrolled (kernels.layer_loop)."""
        if attention == kernels.Attention.CPU and not cpu_attention.available():  # registers the kernel with XLA
            raise RuntimeError("the CPU attention kernel did not build (see the warning logged); use attention='xla'")
        c = config
        r = c.parametrization.rules(c.d_model, c.d_ff, c.n_layers, c.d_head)
        self.r, self.n_layers, self.remat, self.layers = r, c.n_layers, remat, layers
        self.embed = nnx.Embed(c.vocab_size, c.d_model, embedding_init=nnx.initializers.normal(r.embed_std), rngs=rngs)
        self.pos = nnx.Param(nnx.initializers.normal(r.pos_std)(rngs.params(), (c.seq_len, c.d_model)))
        causal = c.objective.causal
        # Built one by one (the parameters each layer draws are those of an unrolled stack), run as one scan.
        self.blocks = _stacked([Block(c.d_model, c.n_heads, c.d_ff, r, causal, attention, rngs=rngs) for _ in range(c.n_layers)])
        self.ln_f = LayerNorm(c.d_model, rngs=rngs)
        self.ln_f.plain = attention != kernels.Attention.CPU

    def __call__(self, tokens_BL: jax.Array) -> jax.Array:
        return self.logits(self.final_stream(tokens_BL))

    def final_stream(self, tokens_BL: jax.Array) -> jax.Array:
        """The residual stream after the last block (task scoring reads it as the model's features)."""
        return self._stack(self.embedding(tokens_BL), keep_stream=False)[0]

    def embedding(self, tokens_BL: jax.Array) -> jax.Array:
        x_BLD = jnp.take(whole(self.embed.embedding[...]), tokens_BL, axis=0) + self.pos[: tokens_BL.shape[1]]  # nnx.Embed's lookup
        return rows(self.r.embed_mult * x_BLD.astype(jnp.float32))  # the residual stream: float32 in any precision

    def residual_stream(self, tokens_BL: jax.Array) -> list[jax.Array]:
        """The stream after the embedding and after each block (the coordinate check reads them all)."""
        x_BLD = self.embedding(tokens_BL)
        return [x_BLD, *self._stack(x_BLD, keep_stream=True)[1]]

    def _stack(self, x_BLD: jax.Array, keep_stream: bool):
        """The blocks as one lax.scan over their stacked parameters: one block's program, whatever
        the depth, or unrolled (self.layers). Returns the output and, with keep_stream, the stream
        after each block."""
        graphdef, params = nnx.split(self.blocks)

        def layer(x_BLD, p_k):
            p, k = p_k
            y_BLD = rows(nnx.merge(graphdef, p)(x_BLD, k))
            return y_BLD, y_BLD if keep_stream else None

        unrolled = self.layers == kernels.Layers.UNROLLED
        # prevent_cse guards a rematerialised forward against XLA merging it back into the first;
        # inside a scan's loop it cannot be merged, and its barriers only cost speed.
        body = jax.checkpoint(layer, prevent_cse=unrolled) if self.remat else layer
        return jax.lax.scan(body, x_BLD, (params, 2 * jnp.arange(self.n_layers)), unroll=self.n_layers if unrolled else 1)

    def logits(self, x_BLD: jax.Array) -> jax.Array:
        """Tied output layer, in the compute dtype (cross_entropy takes them to float32): float32
        logits from bf16 inputs would make both of the readout's gradient matmuls float32 ones,
        and the logits and their gradient, vocab_size wide, twice the bytes."""
        embedding_VD = self.embed.embedding[...]
        h_BLD = self.ln_f(x_BLD).astype(embedding_VD.dtype)
        logits_BLV = jnp.einsum("bld,vd->blv", h_BLD, embedding_VD)
        return rows(self.r.readout_mult * logits_BLV)


def build_model(config, seed: int, *, precision: kernels.Precision = kernels.Precision.FP32, remat: bool = False) -> TransformerLM:
    """The model of a run's model section, its parameters drawn from `seed`, its attention and layer
    loop chosen for this process's devices and `precision`."""
    layers = kernels.layer_loop(jax.devices()[0].platform, config.n_layers, remat)
    attention = attention_kind(precision, d_head=config.d_head)
    return TransformerLM(config, rngs=nnx.Rngs(seed), attention=attention, remat=remat, layers=layers)


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
