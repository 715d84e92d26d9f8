"""scalinglab suggest: the rule's linearised uncertainty matches refits of noisy runs, its picks
remove what it says they remove, within the budget; the command writes a sweep YAML that `plan`
plans exactly, into the same results folder; bad input is one line, exit 2, and writes nothing."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from scalinglab.analysis.laws import Fitted, Loss
from scalinglab.analysis.laws.chinchilla import CHINCHILLA, compute_optimal
from scalinglab.analysis.laws.solve import fit
from scalinglab.analysis.suggest import _greedy, candidate_grid, log_loss_gradient, suggest
from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.cli import main
from scalinglab.errors import FitError
from scalinglab.model.counts import count_N

ROOT = Path(__file__).resolve().parents[1]
LAW = Fitted.of(CHINCHILLA, {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37})


def fit_chinchilla(N, D, L) -> Fitted:
    return fit(CHINCHILLA, (N, D), L, Loss(1e-3))
GRID_N, GRID_D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e8, 4), np.geomspace(1e9, 1e10, 4)))
NOISE = 5e-4  # log-loss sd: small, where a refit moves as its linearisation says
C_6ND = 1e20  # ~17x the largest run's 6ND


def runs_with_noise(sd: float) -> pd.DataFrame:
    """The 4 x 4 grid with residuals of exactly variance sd^2 per degree of freedom left, orthogonal
    to the law's gradients: below the Huber fit's delta (1e-3), where it is least squares, fitted
    they give back LAW with noise estimated as sd."""
    J = log_loss_gradient(LAW, GRID_N, GRID_D)
    e = np.random.default_rng(0).normal(size=len(GRID_N))
    e -= J @ np.linalg.lstsq(J, e, rcond=None)[0]
    e *= sd * np.sqrt((len(e) - J.shape[1]) / (e @ e))
    return pd.DataFrame({"N": GRID_N, "D": GRID_D, "L": LAW(GRID_N, GRID_D) * np.exp(e)})


def target_log_loss(N, D, rng) -> float:
    L = LAW(N, D) * np.exp(rng.normal(0, NOISE, len(N)))
    law = fit_chinchilla(N, D, L)
    return float(np.log(law(*compute_optimal(law, C_6ND))))


def test_log_loss_gradient_is_the_derivative():
    N, D, eps = np.array([3e7, 2e9]), np.array([5e8, 4e10]), 1e-6
    p = LAW.theta  # log E, log A, log B, alpha, beta

    def log_L(q):
        return np.log(Fitted(CHINCHILLA, q)(N, D))
    numeric = np.column_stack([(log_L(np.add(p, h)) - log_L(np.subtract(p, h))) / (2 * eps) for h in np.eye(5) * eps])
    assert log_loss_gradient(LAW, N, D) == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_spread_and_share_match_refits_of_noisy_runs():
    """The spread it reports is the refits' spread of the target's log loss, and training its pick
    removes the share of that variance it says (150 noise draws, paired before and after)."""
    runs = runs_with_noise(NOISE)
    law = fit_chinchilla(runs["N"], runs["D"], runs["L"])
    N_x, D_x = (np.atleast_1d(v) for v in compute_optimal(law, C_6ND / 10))  # one run near the target
    s = suggest(law, runs, C_6ND, 1e30, N_x, D_x)
    before = [target_log_loss(GRID_N, GRID_D, np.random.default_rng(k)) for k in range(150)]
    after = [target_log_loss(np.append(GRID_N, N_x), np.append(GRID_D, D_x), np.random.default_rng(k)) for k in range(150)]
    assert np.std(before) == pytest.approx(s.spread, rel=0.2)
    assert s.picks[0].share > 0.3  # a run where the question is: worth testing
    assert np.var(after) / np.var(before) == pytest.approx(1 - s.picks[0].share, abs=0.1)


def test_picks_keep_to_the_budget_and_skip_runs_already_done():
    runs = runs_with_noise(0.01)
    law = fit_chinchilla(runs["N"], runs["D"], runs["L"])
    N, D = candidate_grid(runs, law, C_6ND, 1e19)
    s = suggest(law, runs, C_6ND, 1e19, N, D)
    assert s.picks and sum(p.cost for p in s.picks) <= 1e19
    assert 0 < s.left < 1 and sum(p.share for p in s.picks) == pytest.approx(1 - s.left)  # each given the picks before it
    assert suggest(law, runs, C_6ND, 1e30, GRID_N[:3], GRID_D[:3]).picks == []


def test_a_vanished_term_is_left_out_and_too_few_runs_are_refused():
    runs = runs_with_noise(0.01)
    law = Fitted.of(CHINCHILLA, {**fit_chinchilla(runs["N"], runs["D"], runs["L"]).values, "E": 1e-12})
    N, D = candidate_grid(runs, law, C_6ND, 1e19)
    s = suggest(law, runs, C_6ND, 1e19, N, D)
    assert s.unseen == ["E"]
    assert s.picks  # the other four still say where to look
    with pytest.raises(FitError, match="5 runs leave no degrees of freedom"):
        suggest(law, runs.iloc[:5], C_6ND, 1e19, N, D)


def test_runs_that_fix_the_target_leave_nothing_to_suggest():
    runs = pd.DataFrame({"N": GRID_N, "D": GRID_D, "L": LAW(GRID_N, GRID_D)})  # on the law: no noise at all
    s = suggest(LAW, runs, C_6ND, 1e19, *candidate_grid(runs, LAW, C_6ND, 1e19))
    assert s.picks == [] and s.spread == 0 and s.left == 1 and s.unseen == []


def test_of_two_runs_that_tell_the_same_the_cheaper_wins():
    """Per FLOP: candidates 0 and 1 tell the same about the target, 1 costs a tenth: 1 is picked,
    and the rest of the budget (10) goes to candidate 2, which tells something else."""
    S = np.array([[1.0, 0.8, 0.8, 0.3], [0.8, 1.0, 1.0, 0.0], [0.8, 1.0, 1.0, 0.0], [0.3, 0.0, 0.0, 1.0]])
    picked, cuts, left = _greedy(S, np.array([10.0, 1.0, 1.0]), 11.0, 0.1, per_flop=True)
    assert picked == [1, 2]  # after 1, its costly twin would tell little (noise apart) and no longer fits
    assert cuts == pytest.approx([0.8**2 / 1.1, 0.3**2 / 1.1]) and left == pytest.approx(1 - sum(cuts))
    assert _greedy(S, np.array([10.0, 1.0, 1.0]), 11.0, 0.1, per_flop=False)[0] == [0, 2]  # the plain greedy does not care


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return Path(shutil.copytree(ROOT / "results" / "cpu-study", tmp_path_factory.mktemp("suggest") / "cpu-study"))


def test_suggest_writes_a_sweep_that_plan_plans_exactly(study, tmp_path, capsys):
    out = tmp_path / "next.yaml"
    assert main(["suggest", str(study), "--target", "C_6ND=1e16", "--budget", "2e13", "--bootstrap", "12", "--out", str(out)]) == 0
    text = out.read_text()
    doc = yaml.safe_load(text)
    assert doc["name"] == "cpu-study" and json.loads((study / "sweep.json").read_text())["train"].items() <= doc["train"].items()
    points = doc["grid"]["points"]
    assert points and all(p["shape"]["n_layers"] == 4 for p in points)  # the study's family of shapes, not the shape rule's
    assert text.count("% of the target's variance") == len(points)  # a line per run saying why
    capsys.readouterr()
    assert main(["plan", str(out), "--json", str(tmp_path / "plan.json")]) == 0
    planned = [r for r in json.loads((tmp_path / "plan.json").read_text()) if r["role"] != "trunk"]
    assert sorted((r["d_model"], r["D"]) for r in planned) == sorted((p["shape"]["d_model"], p["D"]) for p in points)
    assert sum(6 * r["N"] * r["D"] for r in planned) <= 2e13
    assert not {r["run_id"] for r in planned} & {d.name for d in (study / "runs").iterdir()}  # new runs, same folder


def test_without_a_bootstrap_it_still_suggests(study, tmp_path, capsys):
    """The rule needs only the fit; the bootstrap gives the interval it prints, and may be skipped."""
    out = tmp_path / "next.yaml"
    assert main(["suggest", str(study), "--target", "C_6ND=1e16", "--budget", "2e13", "--bootstrap", "0", "--out", str(out)]) == 0
    assert re.search(r"loss at C_6ND = 1e\+16: [0-9.]+ today", capsys.readouterr().out)
    assert yaml.safe_load(out.read_text())["grid"]["points"]


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("scalinglab: error: ")
    return err


@pytest.mark.parametrize("flags,message", [
    (["--target", "N=1e9"], r"--target N=1e9: expected C_6ND=FLOPS"),
    (["--target", "C_6ND=-3"], r"--target C_6ND=-3: expected C_6ND=FLOPS"),
    (["--target", "C=1e16"], r"--target C=1e16: the law's compute is C_6ND = 6ND, not C .*write --target C_6ND=1e16"),
    (["--target", "C_6ND=1e16", "--budget", "0"], r"--budget 0: give the FLOPs"),
])
def test_bad_flags_exit_2_with_one_line_and_write_nothing(flags, message, study, tmp_path, capsys):
    out = tmp_path / "next.yaml"
    err = _one_line_exit_2(["suggest", str(study), "--out", str(out), *flags], capsys)
    assert re.search(message, err) and not out.exists()


def test_a_sweep_too_small_to_fit_is_refused(study, tmp_path, capsys):
    small = tmp_path / "cpu-study"
    (small / "runs").mkdir(parents=True)
    shutil.copy2(study / "sweep.json", small / "sweep.json")
    for run in sorted((study / "runs").iterdir())[:3]:
        shutil.copytree(run, small / "runs" / run.name)
    out = tmp_path / "next.yaml"
    err = _one_line_exit_2(["suggest", str(small), "--target", "C_6ND=1e16", "--out", str(out)], capsys)
    assert str(small) in err and "L(N,D): need at least" in err and "train more runs" in err and not out.exists()
    (small / "sweep.json").unlink()
    assert "sweep.json: none readable" in _one_line_exit_2(["suggest", str(small), "--target", "C_6ND=1e16", "--out", str(out)], capsys)


def test_a_sweep_that_tuned_lr_and_batch_gets_each_run_at_the_fitted_optimum(tmp_path, capsys):
    """results/lr-study tried 4 learning rates x 3 batch sizes at every (N, D): each suggested run
    carries lr*(N, D) and B*(C) from the study's fit, and plan trains it with exactly those."""
    study = Path(shutil.copytree(ROOT / "results" / "lr-study", tmp_path / "lr-study"))
    out = tmp_path / "next.yaml"
    assert main(["suggest", str(study), "--target", "C_6ND=1e15", "--bootstrap", "12", "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    points = doc["grid"]["points"]
    law = SweepFit.read(study / "fit.json").hyperparameters.laws["lr_ND"].params
    for p in points:
        N = count_N(4, p["shape"]["d_model"], 4 * p["shape"]["d_model"])
        lr = law["a"] * N ** law["b_N"] * p["D"] ** law["b_D"]
        assert p["lr"] == pytest.approx(lr, rel=0.02) and 1 <= p["batch_size"] <= 64
    capsys.readouterr()
    assert main(["plan", str(out), "--json", str(tmp_path / "plan.json")]) == 0
    planned = [r for r in json.loads((tmp_path / "plan.json").read_text()) if r["role"] != "trunk"]
    assert sorted((r["lr"], r["batch_size"]) for r in planned) == sorted((p["lr"], p["batch_size"]) for p in points)
