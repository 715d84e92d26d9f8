"""Curve-law points (fit.curve_points, analysis/curvepoints.py): on a synthetic sweep whose runs'
validation-loss curves are drawn from a known multi-power law per size, the points each size's
fitted law predicts lie within 1% of the truth; auto reports both backtest errors and keeps the
lower; the points are never a backtest's targets; off leaves fit.json as it was."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.analyze import analyze
from scalinglab.analysis.choose import backtest, candidates
from scalinglab.analysis.curvepoints import CURVE, SOURCE, CurveSource, between, derived_points, rates
from scalinglab.analysis.curves.fit import law_of, predict
from scalinglab.analysis.select import FitInputs
from scalinglab.analysis.sweepfit import CurvePointsFit, SweepFit
from scalinglab.cli import main
from scalinglab.sweep.spec import FitSpec

ROOT = Path(__file__).resolve().parents[1]
PEAK, WARMUP, TOKENS_PER_STEP, COOL = 3e-3, 100, 512, 0.2
SIZES = (1e5, 3e5, 1e6, 3e6, 1e7)
STEPS = (2000, 3200, 5000, 8000)
CURVE_LAW = {"A": 0.8, "alpha": 0.45, "B": 0.5, "C": 0.5, "beta": 0.6, "gamma": 0.5}
SCHEDULE = {"schedule": "wsd", "lr": PEAK, "warmup_steps": WARMUP, "min_lr_ratio": 0.1, "cooldown_shape": "linear"}


def L0(N: float) -> float:
    """Each size's irreducible term: E + A/N^alpha of the sweep's L(N,D)."""
    return 1.8 + 400 / N**0.34


def record(N: float, steps: int) -> dict:
    return {**SCHEDULE, "N": N, "steps": steps, "decay_start": steps - round(COOL * steps)}


def truth(N: float, steps: int, at=None) -> np.ndarray:
    """The size's multi-power law under the sweep's schedule for a run `steps` long."""
    law = law_of("multi_power")
    lr = rates(record(N, steps), steps, COOL)
    at = [steps] if at is None else at
    return predict(law, law.theta({"L0": L0(N), **CURVE_LAW}), PEAK, lr, at)


def synthetic(noise: float = 0.001, seed: int = 0) -> FitInputs:
    """Runs at SIZES x STEPS, 12 evaluations each, the loss drawn from truth with relative noise."""
    rng = np.random.default_rng(seed)
    runs, evals = [], []
    for N in SIZES:
        for steps in STEPS:
            run = {**record(N, steps), "run_id": f"{N:g}-{steps}", "D": steps * TOKENS_PER_STEP, "C": 6 * N * steps * TOKENS_PER_STEP}
            at = np.unique(np.linspace(WARMUP + 50, steps, 12).astype(int))
            loss = truth(N, steps, at) * (1 + noise * rng.standard_normal(len(at)))
            evals += [{**run, "step": int(s), "L": float(v)} for s, v in zip(at, loss, strict=True)]
            runs.append({**run, "L": float(loss[-1])})
    return FitInputs(pd.DataFrame(runs), None, None, CurveSource(pd.DataFrame(evals), COOL))


SPEC = {"bootstrap": 0, "holdout_by": "N", "law": ["chinchilla", "kaplan"]}


@pytest.fixture(scope="module")
def inputs() -> FitInputs:
    return synthetic()


def test_the_grid_lies_between_the_trained_lengths():
    d = between(np.array([2.0, 8.0, 2.0, 32.0]))
    assert d == pytest.approx([2 * 4 ** (1 / 3), 2 * 4 ** (2 / 3), 8 * 4 ** (1 / 3), 8 * 4 ** (2 / 3)])
    assert len(between(np.array([5.0]))) == 0


def test_the_derived_points_lie_within_1_percent_of_the_true_loss(inputs):
    assert inputs.curves is not None
    derived = derived_points(inputs.runs, inputs.curves)
    points = derived.points
    assert derived.sizes == len(SIZES) and not derived.left_out
    assert len(points) == len(SIZES) * (len(STEPS) - 1) * 2 and (points[SOURCE] == CURVE).all()
    for p in points.itertuples():
        assert pytest.approx(float(truth(p.N, round(p.D / TOKENS_PER_STEP))[0]), rel=0.01) == p.L
        assert pytest.approx(6 * p.N * p.D) == p.C


def test_on_fits_the_law_with_the_points_and_says_so(inputs):
    fit = analyze(inputs, FitSpec(**SPEC, curve_points="on"))
    points = fit.curve_points
    assert isinstance(points, CurvePointsFit) and points.used and points.n_points == 30 and points.sizes == 5
    assert fit.n_runs == 20 and fit.law.n_points == 50  # the trained runs, and the law over them and the points
    assert fit.laws is not None and points.error_with == next(c.score for c in fit.laws.candidates if c.name == fit.laws.chosen)


@pytest.mark.parametrize("seed", [0, 1])
def test_auto_reports_both_errors_and_keeps_the_lower(seed):
    fit = analyze(synthetic(noise=0.01, seed=seed), FitSpec(**SPEC, curve_points="auto"))
    points = fit.curve_points
    assert isinstance(points, CurvePointsFit) and points.error_with is not None and points.error_without is not None
    assert points.used == (points.error_with < points.error_without)
    kept = points.error_with if points.used else points.error_without
    assert fit.laws is not None and kept == next(c.score for c in fit.laws.candidates if c.name == fit.laws.chosen)
    assert fit.law.n_points == 20 + 30 * points.used
    assert f"{points.error_with:.2%}" in points.why and f"{points.error_without:.2%}" in points.why
    again = SweepFit.model_validate_json(fit.json_text())  # fit.json keeps it, typed
    assert again.curve_points == points


def test_the_points_are_never_targets_and_never_leak_a_size_beyond_the_origin(inputs):
    runs, spec = inputs.runs, FitSpec(**SPEC)
    assert inputs.curves is not None
    points = derived_points(runs, inputs.curves).points
    law = candidates(spec)[0]
    cuts = [3e5, 1e6]
    inside = points[points["N"] <= 3e5]
    # Points of sizes beyond each origin, made absurd: no origin reads them, so nothing changes.
    spoiled = pd.concat([inside, points[points["N"] > 3e5].assign(L=99.0)], ignore_index=True)
    assert backtest(law, runs, "N", cuts[:1], spec, spoiled) == backtest(law, runs, "N", cuts[:1], spec, inside)
    # By D, a size's points come from a law fitted on its longest run: none joins an origin below it.
    by_D = backtest(law, runs, "D", [STEPS[2] * TOKENS_PER_STEP], spec, points.assign(L=99.0))
    assert by_D == backtest(law, runs, "D", [STEPS[2] * TOKENS_PER_STEP], spec)


def test_off_leaves_the_study_fit_json_byte_identical(tmp_path):
    """tests/data/cpu_study_fit_bootstrap0.json: `fit --bootstrap 0` on results/cpu-study before
    curve points existed (commit adcc99a)."""
    study = tmp_path / "cpu-study"
    shutil.copytree(ROOT / "results" / "cpu-study", study)
    assert main(["fit", str(study), "--bootstrap", "0", "--curve-points", "off"]) == 0
    assert (study / "fit.json").read_bytes() == (ROOT / "tests" / "data" / "cpu_study_fit_bootstrap0.json").read_bytes()
    assert "curve_points" not in json.loads((study / "fit.json").read_text())


def test_bad_settings_exit_2_in_one_line(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("N,D,L\n1e6,1e8,3.0\n")
    assert main(["fit", "--csv", str(table), "--curve-points", "on"]) == 2
    assert "--curve-points on: needs a results/<sweep> folder's loss curves" in capsys.readouterr().err
    assert main(["fit", str(tmp_path), "--curve-points", "sometimes"]) == 2
    assert "argument --curve-points: invalid choice: 'sometimes'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="curve_points"):
        FitSpec(curve_points="sometimes")
