import json
import math
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from conftest import tiny_runs
from flax import nnx

from scalinglab.model.parametrization import param_kind
from scalinglab.model.transformer import build_model
from scalinglab.store.layout import RunDir
from scalinglab.training.counters import Counters
from scalinglab.training.loop import Hook, Trainer, train
from scalinglab.training.steps import accumulated, enable_compile_cache, make_loss_fn, make_train_step
from scalinglab.training.optimizer import build_optimizer, state_keys


def test_a_few_training_steps_lower_the_validation_loss(tmp_path):
    run = tiny_runs(train={"log_every": 4})[0]
    trainer = Trainer(run, RunDir(tmp_path), log=lambda _: None)
    # A preemption signal while hooks run (here: at an evaluation) saves nothing: counters,
    # metrics and checkpoints are changing; the requeued run resumes from its last checkpoint.
    during_hooks = []
    trainer.hooks.append(Hook("probe", lambda step: step == 40, lambda step: during_hooks.append(trainer.save_for_requeue())))
    summary = trainer.train()
    assert during_hooks == [None]
    assert trainer.save_for_requeue() is None  # nor once the run has ended: no checkpoint reappears
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    metrics, curve = [m for m in lines if "L" in m], [m for m in lines if "L" not in m]
    assert [m["step"] for m in metrics] == [20, 40, 60]
    # The training curve: a point every 4 steps with the step's rate and the mean loss of the 4
    # steps up to it; an evaluation's training loss is the mean of the points since the last one.
    assert [p["step"] for p in curve] == list(range(4, 61, 4)) and {p["n_steps"] for p in curve} == {4}
    np.testing.assert_allclose([p["step_lr"] for p in curve], _lrs(run)[3::4], rtol=1e-6)
    np.testing.assert_allclose([m["step_lr"] for m in metrics], _lrs(run)[[19, 39, 59]], rtol=1e-6)
    since_20 = [p["train_loss"] for p in curve if 20 < p["step"] <= 40]
    assert metrics[1]["train_loss"] == pytest.approx(np.mean(since_20), rel=1e-9)
    means = [p["train_loss"] for p in curve]
    assert all(min(means) <= p["train_loss_ema"] <= max(means) for p in curve)
    assert summary["status"] == "done"
    assert summary["L"] == metrics[-1]["L"] < metrics[0]["L"] < math.log(256)  # below uniform guessing
    assert summary["bpb"] == summary["L"] / math.log(2)
    assert summary["tokens_per_s"] > 0
    assert 0 < summary["mfu"] <= summary["mfu_palm"] < 1 and summary["peak_flops"] > 1e9
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.jsonl", "summary.json", "weights.safetensors"}  # no checkpoint left


def test_curve_points_are_counted_back_from_the_last_step():
    run = tiny_runs(train={"log_every": 7})[0]  # 60 steps
    assert [s for s in range(1, run.steps + 1) if run.is_curve_step(s)] == list(range(4, 61, 7))
    assert tiny_runs(D=(4 * 32 * 1000,))[0].curve_every == 10  # about 1% of the steps by default


def test_the_smoothed_training_loss_is_a_bias_corrected_exponential_average():
    counters = Counters()
    counters.absorb(np.array([4.0, 2.0]), decay=0.5)
    counters.absorb(np.array([1.0]), decay=0.5)  # the losses of a later point continue the same average
    # (0.25 * 4 + 0.5 * 2 + 1 * 1) * 0.5, over the weights' sum 1 - 0.5^3
    assert counters.ema / counters.ema_weight == pytest.approx(1.5 / 0.875)
    assert (counters.curve_sum, counters.curve_count, counters.loss_sum, counters.loss_count) == (7.0, 3, 7.0, 3)
    assert Counters(counters.meta(0.0)).ema == counters.ema  # saved with checkpoints


def test_a_branch_without_its_trunk_checkpoint_fails_and_keeps_its_evaluations(tmp_path):
    trunk, branch, _ = tiny_runs(D=(4 * 32 * 40, 4 * 32 * 80), train={"schedule": "wsd", "cooldown_branches": True})
    run_dir = RunDir(tmp_path / "runs" / branch.run_id)
    run_dir.path.mkdir(parents=True)
    run_dir.metrics.write_text('{"L": 3.0, "step": 1, "tokens": 128}\n')
    with pytest.raises(RuntimeError, match=f"trunk run {trunk.run_id} has no checkpoint at step 32; train the trunk first"):
        train(branch, run_dir, log=lambda _: None)
    assert run_dir.metrics.read_text() == '{"L": 3.0, "step": 1, "tokens": 128}\n'


def _lrs(run):
    return np.array(run.optim.schedule.lr(run.optim.lr, np.arange(run.steps), np))  # index i: the lr of step i + 1


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant", "wsd", "step"])
def test_schedules_warm_up_then_follow_their_shape(schedule):
    run = tiny_runs(D=(4 * 32 * 100,), train={"schedule": schedule, "lr": 1.0, "warmup_steps": 10, "min_lr_ratio": 0.1})[0]
    lr = _lrs(run)
    np.testing.assert_allclose(lr[:10], np.arange(1, 11) / 10, rtol=1e-6)  # linear warmup to the peak
    if schedule == "constant":
        np.testing.assert_allclose(lr[10:], 1.0)
    elif schedule in ("cosine", "linear"):
        assert np.all(np.diff(lr[9:]) < 0) and lr[-1] == pytest.approx(0.1)
        mid = lr[9 + 45]  # halfway through the decay
        assert mid == pytest.approx(0.55, abs=0.02)  # both pass the mean of peak and end there
    elif schedule == "step":  # the peak to step 80 (cooldown_fraction 0.2), then the end value at once
        assert run.optim.schedule.decay_start == 80
        np.testing.assert_allclose(lr[10:80], 1.0)
        np.testing.assert_allclose(lr[80:], 0.1, rtol=1e-6)
    else:  # wsd: stable to step 80 (cooldown_fraction 0.2), then 1-sqrt down to the end value
        assert run.optim.schedule.decay_start == 80
        np.testing.assert_allclose(lr[10:80], 1.0)
        frac = (np.arange(81, 101) - 80) / 20
        np.testing.assert_allclose(lr[80:], 0.1 + 0.9 * (1 - np.sqrt(frac)), rtol=1e-5)


def test_wsd_linear_cooldown():
    run = tiny_runs(D=(4 * 32 * 100,), train={"schedule": "wsd", "lr": 1.0, "cooldown_shape": "linear", "cooldown_fraction": 0.5, "min_lr_ratio": 0})[0]
    lr = _lrs(run)
    assert run.optim.schedule.decay_start == 50
    np.testing.assert_allclose(lr[50:], 1 - (np.arange(51, 101) - 50) / 50, atol=1e-6)


def test_a_diverging_run_stops_and_is_marked_diverged(tmp_path):
    # At lr 1e6 the loss climbs to ~1e13 and stays finite (LayerNorm's two-pass variance does not
    # cancel to NaN), which is not divergence by our definition; at 1e12 the activations overflow.
    run = tiny_runs(train={"lr": 1e12, "grad_clip": 1e9, "weight_decay": 0.0})[0]
    summary = train(run, tmp_path, log=lambda _: None)
    assert summary["status"] == "diverged" and summary["L"] is None


def _adamw_per_kind(run, params, rules):
    """The reference: one optax.adamw per parameter kind, each with its learning-rate multiplier."""
    o = run.optim
    per_kind = {
        kind: optax.adamw(lambda t, s=scale: s * o.schedule.lr(o.lr, t, jax.numpy), b1=o.b1, b2=o.b2,
                          weight_decay=0.0 if kind == "vector" else o.weight_decay)
        for kind, scale in rules.lr_scale.items()
    }
    kinds = jax.tree_util.tree_map_with_path(lambda path, _: param_kind(state_keys(path)), params)
    return optax.chain(optax.clip_by_global_norm(o.grad_clip), optax.multi_transform(per_kind, kinds))


@pytest.mark.parametrize("parametrization", ["sp", "u-mup"])
def test_optimizer_is_adamw_with_a_learning_rate_multiplier_per_kind(parametrization):
    run = tiny_runs(shapes=((2, 64, 2),), model={"parametrization": parametrization}, train={"weight_decay": 0.1, "warmup_steps": 2})[0]
    model = build_model(run.model, run.seed)
    params = nnx.split(model)[1]
    results = []
    for tx in (build_optimizer(run.optim, params, model.r), _adamw_per_kind(run, params, model.r)):
        p, state = params, tx.init(params)
        for i in range(4):
            grads = jax.tree.map(lambda x, i=i: jax.random.normal(jax.random.key(i), x.shape), params)
            updates, state = tx.update(grads, state, p)
            p = optax.apply_updates(p, updates)
        results.append(p)
    for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_the_train_step_updates_its_state_in_place():
    run = tiny_runs()[0]
    model = build_model(run.model, run.seed)
    graphdef, params = nnx.split(model)
    tx = build_optimizer(run.optim, params, model.r)
    state = (params, tx.init(params))
    tokens = np.zeros((run.batch_size, run.model.seq_len), np.int32)
    _, loss = make_train_step(make_loss_fn(run.precision, graphdef), tx)(state, tokens, tokens, np.ones(tokens.shape, np.float32))
    assert np.isfinite(loss)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state))  # donated: no copy of the state


def _batch(run, seed: int):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 256, (run.batch_size, run.model.seq_len + 1)).astype(np.int32)
    weights = rng.uniform(0.5, 1.5, (run.batch_size, run.model.seq_len)).astype(np.float32)  # unequal: a weighted mean
    return tokens[:, :-1], tokens[:, 1:], weights


@pytest.mark.parametrize("n_micro, remat", [(4, False), (2, True)])
def test_gradient_accumulation_and_remat_take_the_full_batch_step(n_micro, remat):
    run = tiny_runs(shapes=((2, 32, 2),), train={"batch_size": 8})[0]
    full, steps = {}, {}
    for n, r in ((1, False), (n_micro, remat)):
        model = build_model(run.model, run.seed, remat=r)
        graphdef, params = nnx.split(model)
        loss_fn = make_loss_fn(run.precision, graphdef)
        full[n] = jax.jit(accumulated(loss_fn, n))(params, *_batch(run, 0))
        tx = build_optimizer(run.optim, params, model.r)
        step, state = make_train_step(loss_fn, tx, n), (params, tx.init(params))
        for seed in (1, 2):
            state, _ = step(state, *_batch(run, seed))
        steps[n] = state[0]
    (loss, grads), (loss_n, grads_n) = full[1], full[n_micro]
    assert float(loss_n) == pytest.approx(float(loss), rel=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_n)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    for a, b in zip(jax.tree.leaves(steps[1]), jax.tree.leaves(steps[n_micro])):  # Adam: g / sqrt(v) magnifies rounding
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * run.optim.lr)


def test_a_microbatched_run_trains_and_records_its_devices(tmp_path):
    run = tiny_runs(train={"microbatch_size": 2, "remat": True})[0]
    assert run.microbatch_size == 2 and run.remat and run.run_id == tiny_runs()[0].run_id  # how, not what: same run
    summary = train(run, tmp_path, log=lambda _: None)
    assert summary["status"] == "done"
    assert (summary["platform"], summary["device_kind"], summary["n_devices"], summary["attention"]) == ("cpu", "cpu", 1, "cpu")


def test_a_checkpoint_of_another_layout_is_set_aside_and_the_run_trains_from_the_start(tmp_path):
    """A run preempted under an older scalinglab (here: a checkpoint of another shape) must not
    fail on every retry."""
    from scalinglab.training import checkpoint  # noqa: PLC0415

    other = nnx.split(build_model(tiny_runs(shapes=((2, 32, 2),))[0].model, 0))[1]
    checkpoint.save(RunDir(tmp_path).resume, 20, other, {"step": 20})
    logged = []
    summary = train(tiny_runs()[0], tmp_path, log=logged.append)
    assert summary["status"] == "done" and summary["resumed_from"] == 0
    assert any("does not fit this run's state" in line and "training from the start" in line for line in logged), logged


def test_the_compile_cache_folder_is_made_absolute(tmp_path, monkeypatch):
    """A sweep run in process under a relative results folder, then a chdir (as tests and notebooks
    do): the cache setting, which outlives the run, still names the folder the run used."""
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.chdir(tmp_path)
    try:
        enable_compile_cache(Path("res") / "jax_cache")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "res" / "jax_cache")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
