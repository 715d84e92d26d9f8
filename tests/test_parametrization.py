"""Coordinate check (Yang et al. 2022): after a few Adam steps at one learning rate, per-layer
activation scales stay put across widths 64 -> 1024 under mup and u-mup, and grow under sp."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import tiny_runs
from flax import nnx

from scalinglab import data
from scalinglab.model import cross_entropy
from scalinglab.train import _keys, build, optimizer

WIDTHS = (64, 256, 1024)
LR = {"sp": 1e-2, "mup": 1e-2, "u-mup": 1.0}


def _run(parametrization: str, width: int, lr: float):
    return tiny_runs(
        shapes=((2, width, width // 32),),
        model={"parametrization": parametrization, "base_width": 64},
        train={"lr": lr, "batch_size": 8, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0},
    )[0]


def activation_rms(model, tokens) -> list[float]:
    """RMS of the residual stream after each block, and of the logits."""
    x = model.r.embed_mult * (model.embed(tokens) + model.pos[: tokens.shape[1]])
    out = []
    for i, block in enumerate(model.blocks):
        x = block(x, i)
        out.append(float(jnp.sqrt(jnp.mean(x**2))))
    logits = model.r.readout_mult * model.embed.attend(model.ln_f(x))
    return out + [float(jnp.sqrt(jnp.mean(logits**2)))]


def coordinates(parametrization: str, steps: int = 4) -> np.ndarray:
    """(width, layer) activation RMS after `steps` steps."""
    corpus = data.load_corpus("stdlib", None, "text", "byte", 0, 0.05)
    rows = []
    for width in WIDTHS:
        run = _run(parametrization, width, LR[parametrization])
        graphdef, params = nnx.split(build(run))
        tx = optimizer(run, params)
        opt_state = tx.init(params)

        @jax.jit
        def step(params, opt_state, batch):
            loss_fn = lambda p: cross_entropy(nnx.merge(graphdef, p)(batch[:, :-1]), batch[:, 1:]).mean()  # noqa: E731
            grads = jax.grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        for s in range(1, steps + 1):
            params, opt_state = step(params, opt_state, data.batch(corpus.train, 32, 8, 0, s))
        probe = jnp.asarray(data.batch(corpus.train, 32, 8, 0, 10_000)[:, :-1])
        rows.append(activation_rms(nnx.merge(graphdef, params), probe))
    return np.array(rows)


@pytest.mark.parametrize("parametrization", ["mup", "u-mup"])
def test_activations_keep_their_scale_across_width(parametrization):
    rms = coordinates(parametrization)
    spread = rms.max(axis=0) / rms.min(axis=0)  # per layer, across a 16x range of widths
    assert np.all(spread < 1.6), (rms, spread)


def test_standard_parametrization_blows_up_with_width():
    rms = coordinates("sp")
    assert np.all(rms[-1, :-1] / rms[0, :-1] > 20), rms  # residual stream: ~100x from 64 to 1024


@pytest.mark.parametrize("parametrization", ["sp", "mup", "u-mup"])
def test_hidden_matrices_get_their_learning_rate_multiplier(parametrization):
    """Adam's first update of a weight is lr x its multiplier (x sign of its gradient), so the
    multipliers can be read off one step."""
    run = _run(parametrization, 128, 1e-3)
    graphdef, params = nnx.split(build(run))
    tx = optimizer(run, params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    m = 128 / 64
    expected = {
        "sp": {"qkv": 1, "down": 1, "embedding": 1, "vector": 1},
        "mup": {"qkv": 1 / m, "down": 1 / m, "embedding": 1, "vector": 1},
        "u-mup": {"qkv": 128**-0.5, "down": 512**-0.5, "embedding": 1, "vector": 1},
    }[parametrization]
    seen = {}
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        keys = _keys(path)
        kind = "embedding" if keys[0] in ("embed", "pos") else "vector" if keys[-1] in ("scale", "bias") else keys[-2]
        seen[kind] = float(jnp.abs(u).max()) / 1e-3
    for kind, scale in expected.items():
        assert seen[kind] == pytest.approx(scale, rel=1e-3), kind
