"""Coordinate check (Yang et al. 2022): after a few Adam steps at one learning rate, per-layer
activation scales stay put across widths 64 -> 1024 under mup and u-mup, and grow under sp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import data_config, tiny_runs
from flax import nnx

from scalinglab.data.batches import batch
from scalinglab.data.corpus import load_corpus
from scalinglab.model.transformer import build_model
from scalinglab.training.steps import make_loss_fn, make_train_step
from scalinglab.training.optimizer import build_optimizer, state_keys

WIDTHS = (64, 256, 1024)
LR = {"sp": 1e-2, "mup": 1e-2, "u-mup": 1.0}


def _run(parametrization: str, width: int, lr: float):
    return tiny_runs(
        shapes=((2, width, width // 32),),
        model={"parametrization": parametrization, "base_width": 64},
        train={"lr": lr, "batch_size": 8, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0},
    )[0]


def rms(x) -> float:
    return float(jnp.sqrt(jnp.mean(x**2)))


def coordinates(parametrization: str, steps: int = 4) -> np.ndarray:
    """(width, layer) RMS of the residual stream after each block, and of the logits, after
    `steps` training steps of the real model, optimizer and train step."""
    corpus = load_corpus(data_config())
    rows = []
    for width in WIDTHS:
        run = _run(parametrization, width, LR[parametrization])
        model = build_model(run.model, run.seed)
        graphdef, params = nnx.split(model)
        tx = build_optimizer(run.optim, params, model.r)
        train_step = make_train_step(make_loss_fn(run.precision, graphdef), tx)
        state = (params, tx.init(params))
        for s in range(1, steps + 1):
            examples = run.model.objective.examples(batch(corpus.train, 32, 8, 0, s), run.data.vocab_size, 0, s)
            state, _ = train_step(state, *examples)
        trained = nnx.merge(graphdef, state[0])
        stream = trained.residual_stream(jnp.asarray(batch(corpus.train, 32, 8, 0, 10_000)[:, :-1]))
        rows.append([rms(x) for x in stream[1:]] + [rms(trained.logits(stream[-1]))])
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
    model = build_model(run.model, run.seed)
    params = nnx.split(model)[1]
    tx = build_optimizer(run.optim, params, model.r)
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
        keys = state_keys(path)
        kind = "embedding" if keys[0] in ("embed", "pos") else "vector" if keys[-1] in ("scale", "bias") else keys[-2]
        seen[kind] = float(jnp.abs(u).max()) / 1e-3
    for kind, scale in expected.items():
        assert seen[kind] == pytest.approx(scale, rel=1e-3), kind
