import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import model_config

from scalinglab.model import cpu_attention
from scalinglab.model.transformer import LayerNorm, TransformerLM, attention, cross_entropy, dense


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

    for t in range(8):
        g = np.asarray(jax.grad(logit_at)(params, t)["pos"][...])
        assert np.all(g[t + 1 :] == 0)
        assert np.all(np.any(g[: t + 1] != 0, axis=1))


@pytest.fixture(params=["kernel", "xla"])
def attention_path(request, monkeypatch):
    """model.attention by cpu_attention's kernel (which CI's toolchain must build), or by XLA's dots."""
    if request.param == "kernel":
        assert cpu_attention.available(), "the CPU attention kernel did not build: see the warning logged"
    else:
        monkeypatch.setattr(cpu_attention, "usable", lambda x: False)
    return request.param


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("L", [256, 100, 32])  # whole blocks, a partial last block, a single block
def test_attention_and_its_gradients_equal_jax_dot_product_attention(causal, L, attention_path):
    q, k, v, w = (jax.random.normal(key, (2, 3, L, 16)) for key in jax.random.split(jax.random.key(0), 4))
    t = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731  (B, H, L, K) <-> (B, L, H, K)
    ours = lambda q, k, v: attention(q, k, v, 0.25, causal)  # noqa: E731
    reference = lambda q, k, v: t(jax.nn.dot_product_attention(t(q), t(k), t(v), scale=0.25, is_causal=causal))  # noqa: E731
    np.testing.assert_allclose(ours(q, k, v), reference(q, k, v), rtol=1e-5, atol=1e-5)
    if L != 100:  # gradients once, on several blocks and a partial one: each check compiles for seconds
        return
    grads = [jax.grad(lambda *qkv, f=f: jnp.sum(f(*qkv) * w), argnums=(0, 1, 2))(q, k, v) for f in (ours, reference)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_kernel_runs_under_vmap():
    assert cpu_attention.available()  # registers the kernel
    q, k, v = (jax.random.normal(key, (3, 2, 70, 16)) for key in jax.random.split(jax.random.key(0), 3))
    one = lambda q, k, v: cpu_attention.attention(q, k, v, 0.25, True)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(one)(q, k, v), jnp.stack([one(*x) for x in zip(q, k, v)]), rtol=1e-6, atol=1e-6)


def test_the_kernel_is_built_per_cpu_feature_set(monkeypatch):
    """A cache shared by cluster nodes of one CPU model that differ in AVX-512 holds one build each."""
    here = cpu_attention.library_path()
    info = dict(cpu_attention.cpu_info())
    monkeypatch.setattr(cpu_attention, "cpu_info", lambda: {**info, "flags": info["flags"].replace("avx2", "")})
    assert cpu_attention.library_path() != here


def test_without_a_compiler_attention_falls_back_to_xla_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(cpu_attention, "available", functools.cache(cpu_attention.available.__wrapped__))
    q = jax.random.normal(jax.random.key(0), (1, 2, 8, 16))
    assert not cpu_attention.usable(q)
    assert "no C++ compiler (no-such-compiler)" in caplog.text
    reference = jnp.swapaxes(jax.nn.dot_product_attention(*(jnp.swapaxes(q, 1, 2),) * 3, scale=0.25, is_causal=True), 1, 2)
    np.testing.assert_allclose(attention(q, q, q, 0.25, True), reference, rtol=1e-5, atol=1e-5)


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
