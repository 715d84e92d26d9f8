import json
import math

import numpy as np
import pytest
from conftest import tiny_runs

from scalinglab.train import lr_schedule, train


def test_a_few_training_steps_lower_the_validation_loss(tmp_path):
    run = tiny_runs()[0]
    summary = train(run, tmp_path, log=lambda _: None)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [20, 40, 60]
    assert summary["status"] == "done"
    assert summary["L"] == metrics[-1]["L"] < metrics[0]["L"] < math.log(256)  # below uniform guessing
    assert summary["bpb"] == summary["L"] / math.log(2)
    assert summary["tokens_per_s"] > 0
    assert 0 < summary["mfu"] < 1 and summary["peak_flops"] > 1e9
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.jsonl", "summary.json"}  # no checkpoint left


def _lrs(run):
    f = lr_schedule(run)
    return np.array([float(f(t)) for t in range(run.steps)])  # index i: the lr of step i + 1


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant", "wsd"])
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
    else:  # wsd: stable to step 80 (cooldown_fraction 0.2), then 1-sqrt down to the end value
        assert run.decay_start == 80
        np.testing.assert_allclose(lr[10:80], 1.0)
        frac = (np.arange(81, 101) - 80) / 20
        np.testing.assert_allclose(lr[80:], 0.1 + 0.9 * (1 - np.sqrt(frac)), rtol=1e-5)


def test_wsd_linear_cooldown():
    run = tiny_runs(D=(4 * 32 * 100,), train={"schedule": "wsd", "lr": 1.0, "cooldown_shape": "linear", "cooldown_fraction": 0.5, "min_lr_ratio": 0})[0]
    lr = _lrs(run)
    assert run.decay_start == 50
    np.testing.assert_allclose(lr[50:], 1 - (np.arange(51, 101) - 50) / 50, atol=1e-6)


def test_a_diverging_run_stops_and_is_marked_diverged(tmp_path):
    run = tiny_runs(train={"lr": 1e6, "grad_clip": 1e9, "weight_decay": 0.0})[0]
    summary = train(run, tmp_path, log=lambda _: None)
    assert summary["status"] == "diverged" and summary["L"] is None
