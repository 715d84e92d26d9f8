import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import model_config

from scalinglab.model import cpu_attention, kernels
from scalinglab.model.transformer import LayerNorm, TransformerLM, attention, attention_kind, cross_entropy, dense


def test_changing_a_later_token_never_changes_earlier_logits():
    model = TransformerLM(model_config(2, 32, 4, 64, 16, 256), rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 256)
    base = model(tokens)
    for t in (3, 9, 15):
        changed = tokens.at[:, t].set((tokens[:, t] + 7) % 256)
        out = model(changed)
        np.testing.assert_allclose(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t])  # the changed position itself does see it


def test_no_gradient_flows_from_a_position_to_earlier_inputs():
    """Through the real forward pass: the position embedding of slot s enters only at position s,
    so the gradient of position t's logits reaches pos[s] for s <= t and never for s > t."""
    model = TransformerLM(model_config(2, 16, 2, 32, 8, 256), rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    tokens = jnp.arange(8)[None]

    def logit_at(params, t):
        return nnx.merge(graphdef, params)(tokens)[0, t].sum()

    grad = jax.jit(jax.grad(logit_at))  # t traced: one compilation for all positions
    for t in range(8):
        g = np.asarray(grad(params, t)["pos"][...])
        assert np.all(g[t + 1 :] == 0)
        assert np.all(np.any(g[: t + 1] != 0, axis=1))


def naive_attention(q_BLHK, k_BLHK, v_BLHK, scale, causal):
    """softmax(scale q k^T + causal mask) v, written out."""
    s_BHLS = scale * jnp.einsum("blhk,bshk->bhls", q_BLHK, k_BLHK)
    if causal:
        L = s_BHLS.shape[-1]
        s_BHLS = jnp.where(jnp.tril(jnp.ones((L, L), bool)), s_BHLS, -jnp.inf)
    return jnp.einsum("bhls,bshk->blhk", jax.nn.softmax(s_BHLS, axis=-1), v_BLHK)


@pytest.mark.parametrize("kind", ["cpu", "xla"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("L", [256, 100, 32])
def test_attention_and_its_gradients_equal_the_written_out_formula(causal, L, kind):
    """Both attentions of a CPU: cpu_attention's kernel (which CI's toolchain must build) and XLA's."""
    if kind == "cpu":
        assert cpu_attention.available(), "the CPU attention kernel did not build: see the warning logged"
    q, k, v, w = (jax.random.normal(key, (2, L, 3, 16)) for key in jax.random.split(jax.random.key(0), 4))
    ours = lambda q, k, v: attention(jnp.stack([q, k, v], axis=2), 0.25, causal, kind)  # noqa: E731
    reference = lambda q, k, v: naive_attention(q, k, v, 0.25, causal)  # noqa: E731
    np.testing.assert_allclose(ours(q, k, v), reference(q, k, v), rtol=1e-5, atol=1e-5)
    if L != 100:  # gradients once, on several blocks and a partial one: each check compiles for seconds
        return
    grads = [jax.grad(lambda *qkv, f=f: jnp.sum(f(*qkv) * w), argnums=(0, 1, 2))(q, k, v) for f in (ours, reference)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_kernel_runs_under_vmap():
    assert cpu_attention.available()  # registers the kernel
    qkv = jax.random.normal(jax.random.key(0), (3, 2, 70, 3, 2, 16))  # vmapped over 3: batch 2, L 70, 2 heads
    one = lambda qkv: cpu_attention.attention(qkv, 0.25, True)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(one)(qkv), jnp.stack([one(x) for x in qkv]), rtol=1e-6, atol=1e-6)


def test_the_kernel_is_built_per_cpu_feature_set(monkeypatch):
    """A cache shared by cluster nodes of one CPU model that differ in AVX-512 holds one build each."""
    here = cpu_attention.library_path()
    info = dict(cpu_attention.cpu_info())
    monkeypatch.setattr(cpu_attention, "cpu_info", lambda: {**info, "flags": info["flags"].replace("avx2", "")})
    assert cpu_attention.library_path() != here


def test_without_a_compiler_attention_falls_back_to_xla_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(cpu_attention, "available", functools.cache(cpu_attention.available.__wrapped__))
    assert attention_kind("fp32") == "xla"
    assert "no C++ compiler (no-such-compiler)" in caplog.text


@pytest.mark.parametrize("d_in, d_out", [(8, 32), (32, 8)])
def test_dense_gradients_equal_autodiff_of_matmul(d_in, d_out):
    x, w, g = (jax.random.normal(key, shape) for key, shape in zip(jax.random.split(jax.random.key(0), 3), [(2, 5, d_in), (d_in, d_out), (2, 5, d_out)]))
    got = jax.vjp(dense, x, w)[1](g)
    expected = jax.vjp(lambda x, w: x @ w, x, w)[1](g)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_layer_norm_and_its_gradients_equal_flax():
    ours, flax_ln = LayerNorm(48, rngs=nnx.Rngs(0)), nnx.LayerNorm(48, rngs=nnx.Rngs(0))
    k = jax.random.split(jax.random.key(0), 4)
    for m in (ours, flax_ln):
        m.scale[...], m.bias[...] = 1 + jax.random.normal(k[0], (48,)), jax.random.normal(k[1], (48,))
    x, w = 3 * jax.random.normal(k[2], (2, 5, 48)) + 1, jax.random.normal(k[3], (2, 5, 48))
    loss = lambda m, x: jnp.sum(m(x) * w)  # noqa: E731
    np.testing.assert_allclose(ours(x), flax_ln(x), rtol=1e-5, atol=1e-5)
    (g_ours, gx_ours), (g_flax, gx_flax) = (nnx.grad(loss, argnums=(0, 1))(m, x) for m in (ours, flax_ln))
    np.testing.assert_allclose(gx_ours, gx_flax, rtol=1e-5, atol=1e-5)
    for name in ("scale", "bias"):
        np.testing.assert_allclose(getattr(g_ours, name)[...], getattr(g_flax, name)[...], rtol=1e-5, atol=1e-5)


def test_cross_entropy_is_minus_the_target_log_probability():
    logits = 3 * jax.random.normal(jax.random.key(0), (2, 7, 11))
    targets = jax.random.randint(jax.random.key(1), (2, 7), 0, 11)
    expected = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(cross_entropy(logits, targets), expected, rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda z: cross_entropy(z, targets).sum())(logits)
    np.testing.assert_allclose(grad, jax.nn.softmax(logits) - jax.nn.one_hot(targets, 11), atol=1e-6)


class Device:
    """What attention_kind reads of a jax.Device."""

    def __init__(self, platform, device_kind, compute_capability=None):
        self.platform, self.device_kind = platform, device_kind
        if compute_capability is not None:  # a GPU's; JAX's CPU and TPU devices have none
            self.compute_capability = compute_capability


@pytest.mark.parametrize("devices, precision, kind", [
    ([Device("cpu", "cpu")], "fp32", "cpu"),
    ([Device("cpu", "cpu")], "bf16", "xla"),  # the kernel is float32
    ([Device("cpu", "cpu")] * 2, "fp32", "xla"),  # XLA cannot partition a custom call
    ([Device("gpu", "NVIDIA H100 80GB HBM3")], "bf16", "cudnn"),
    ([Device("gpu", "NVIDIA A100-SXM4-80GB")] * 8, "bf16", "cudnn"),
    ([Device("gpu", "NVIDIA H100 80GB HBM3")], "fp32", "xla"),  # cuDNN's fused attention is 16-bit
    ([Device("gpu", "AMD Instinct MI300X")], "bf16", "xla"),
    ([Device("tpu", "TPU v5 lite")], "bf16", "xla"),
])  # fmt: skip
def test_attention_is_chosen_by_platform_and_precision(devices, precision, kind):
    assert attention_kind(precision, devices) == kind


def test_the_models_attention_reads_the_gpus_capability_and_head_width_and_logs_why_once(caplog):
    turing = [Device("gpu", "NVIDIA GeForce RTX 2080 Ti", "7.5")]
    with caplog.at_level(logging.INFO, logger="scalinglab.model.transformer"):
        assert attention_kind("bf16", turing, d_head=64) == attention_kind("bf16", turing, d_head=64) == "xla"
        assert attention_kind("bf16", [Device("gpu", "NVIDIA A100-SXM4-80GB", "8.0")], d_head=100) == "xla"
        assert attention_kind("bf16", [Device("gpu", "NVIDIA H100 80GB HBM3", "9.0")], d_head=256) == "cudnn"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "7.5" in warnings[0] and "d_head 100" in warnings[1], warnings


@pytest.mark.parametrize("parametrization", ["sp", "mup", "u-mup"])
def test_the_model_is_the_same_with_every_attention_a_cpu_has(parametrization):
    """The parametrization's attention scale (mup: 1/d_head) is each kernel's own scale."""
    from conftest import tiny_runs  # noqa: PLC0415

    run = tiny_runs(shapes=((2, 64, 2),), model={"parametrization": parametrization, "seq_len": 100})[0]
    tokens = jax.random.randint(jax.random.key(1), (2, 100), 0, 256)
    cpu, xla = (TransformerLM(run.model, rngs=nnx.Rngs(0), attention=kind)(tokens) for kind in ("cpu", "xla"))
    np.testing.assert_allclose(cpu, xla, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("platform, n_layers, remat, layers", [
    ("cpu", 2, False, "unrolled"),
    ("cpu", 32, False, "unrolled"),
    ("cpu", 33, False, "scan"),  # compile time would grow past UNROLL_MAX_LAYERS's 8 s
    ("cpu", 4, True, "scan"),  # remat asks for memory
    ("gpu", 2, False, "scan"),
    ("tpu", 12, False, "scan"),
])  # fmt: skip
def test_layers_are_unrolled_on_a_cpu_and_scanned_elsewhere(platform, n_layers, remat, layers, monkeypatch):
    monkeypatch.delenv("SCALINGLAB_LAYERS", raising=False)
    assert kernels.layer_loop(platform, n_layers, remat) == layers
    monkeypatch.setenv("SCALINGLAB_LAYERS", "scan")
    assert kernels.layer_loop(platform, n_layers, remat) == "scan"
    monkeypatch.setenv("SCALINGLAB_LAYERS", "loop")
    with pytest.raises(ValueError, match="SCALINGLAB_LAYERS is 'loop': set it to scan or unrolled"):
        kernels.layer_loop(platform, n_layers, remat)


def test_unrolled_and_scanned_layers_give_the_same_logits_and_gradients():
    from conftest import tiny_runs  # noqa: PLC0415

    run = tiny_runs(shapes=((3, 32, 2),), model={"parametrization": "u-mup"})[0]  # u-mup: the residual reads k
    tokens = jax.random.randint(jax.random.key(1), (2, 32), 0, 256)
    outs = []
    for layers in kernels.Layers:
        graphdef, params = nnx.split(TransformerLM(run.model, rngs=nnx.Rngs(0), layers=layers))
        outs.append(jax.value_and_grad(lambda p, g=graphdef: jnp.sum(nnx.merge(g, p)(tokens) ** 2))(params))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(outs[0][1]), jax.tree.leaves(outs[1][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # float32 summed in another order


def test_the_compiled_step_does_not_grow_with_depth():
    """Scanned layers: the train step's program is the same size at 2 and 16 layers."""
    from conftest import tiny_runs  # noqa: PLC0415

    from scalinglab.training.steps import make_loss_fn, make_train_step  # noqa: PLC0415
    from scalinglab.training.optimizer import build_optimizer  # noqa: PLC0415

    sizes = {}
    for n_layers in (2, 16):
        run = tiny_runs(shapes=((n_layers, 32, 2),))[0]
        model = TransformerLM(run.model, rngs=nnx.Rngs(run.seed), layers=kernels.Layers.SCAN)
        graphdef, params = nnx.split(model)
        tx = build_optimizer(run.optim, params, model.r)
        tokens = jax.ShapeDtypeStruct((run.batch_size, run.model.seq_len), jnp.int32)
        weights = jax.ShapeDtypeStruct(tokens.shape, jnp.float32)
        step = make_train_step(make_loss_fn(run.precision, graphdef), tx)
        hlo = step.lower((params, tx.init(params)), tokens, tokens, weights).compile().as_text()
        sizes[n_layers] = len(hlo.splitlines())
    assert sizes[16] < 1.05 * sizes[2], sizes
