"""scalinglab suggest: the rule picks the runs where the bootstrap laws disagree about the target,
per FLOP, within the budget; the command writes a sweep YAML that `plan` plans exactly, into the
same results folder; bad input is one line, exit 2, and writes nothing."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from scalinglab.analysis.laws import Chinchilla
from scalinglab.analysis.suggest import suggest
from scalinglab.cli import main
from scalinglab.sweep.counts import count_N

ROOT = Path(__file__).resolve().parents[1]
LAW = Chinchilla(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37, objective=0.0, n_points=0)
RUNS = pd.DataFrame({"N": [1e7, 1e7, 1e8, 1e8, 3e7], "D": [1e9, 1e10, 1e9, 1e10, 3e9]})
RUNS["L"] = LAW(RUNS["N"], RUNS["D"]) * (1 + np.array([0.01, -0.01, 0.01, -0.01, 0.0]))


def laws_differing_in_B(k: int = 30) -> list[Chinchilla]:
    B = np.random.default_rng(0).lognormal(np.log(2100), 0.3, k)
    return [Chinchilla(1.8, 480.0, b, 0.35, 0.37, 0.0, 0) for b in B]


def test_the_run_where_the_laws_disagree_is_picked_and_the_rest_is_left():
    # Same cost; only the data term is uncertain, so only the run short of data says anything.
    N, D = np.array([1e12, 1e6]), np.array([1e6, 1e12])
    s = suggest(LAW, laws_differing_in_B(), RUNS, 1e21, 6e18, N, D)
    assert [(p.N, p.D) for p in s.picks] == [(1e12, 1e6)]
    assert s.picks[0].share > 0.9 and s.left == pytest.approx(1 - s.picks[0].share)
    both = suggest(LAW, laws_differing_in_B(), RUNS, 1e21, 1.2e19, N, D)
    assert len(both.picks) == 2 and both.picks[1].share < 1e-3  # the first told all there was to learn


def test_a_cheaper_run_as_informative_wins_and_the_budget_holds():
    N, D = np.array([1e12, 1e11]), np.array([1e6, 1e6])  # both short of data; the second costs a tenth
    s = suggest(LAW, laws_differing_in_B(), RUNS, 1e21, 6e18, N, D)
    assert (s.picks[0].N, s.picks[0].D) == (1e11, 1e6)
    assert sum(p.cost for p in s.picks) <= 6e18


def test_a_run_already_done_is_not_suggested_again():
    N, D = RUNS["N"].to_numpy()[:2], RUNS["D"].to_numpy()[:2]
    assert suggest(LAW, laws_differing_in_B(), RUNS, 1e21, 1e30, N, D).picks == []


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return Path(shutil.copytree(ROOT / "results" / "cpu-study", tmp_path_factory.mktemp("suggest") / "cpu-study"))


def test_suggest_writes_a_sweep_that_plan_plans_exactly(study, tmp_path, capsys):
    out = tmp_path / "next.yaml"
    assert main(["suggest", str(study), "--target", "C=1e16", "--budget", "2e13", "--bootstrap", "12", "--out", str(out)]) == 0
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


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("scalinglab: error: ")
    return err


@pytest.mark.parametrize("flags,message", [
    (["--target", "N=1e9"], r"--target N=1e9: expected C=FLOPS"),
    (["--target", "C=-3"], r"--target C=-3: expected C=FLOPS"),
    (["--target", "C=1e16", "--budget", "0"], r"--budget 0: give the FLOPs"),
    (["--target", "C=1e16", "--bootstrap", "3"], r"--bootstrap 3: .* at least 10"),
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
    err = _one_line_exit_2(["suggest", str(small), "--target", "C=1e16", "--out", str(out)], capsys)
    assert str(small) in err and "L(N,D): need at least" in err and "train more runs" in err and not out.exists()
    (small / "sweep.json").unlink()
    assert "sweep.json: no such file" in _one_line_exit_2(["suggest", str(small), "--target", "C=1e16", "--out", str(out)], capsys)


def test_a_sweep_that_tuned_lr_and_batch_gets_each_run_at_the_fitted_optimum(tmp_path, capsys):
    """results/lr-study tried 4 learning rates x 3 batch sizes at every (N, D): each suggested run
    carries lr*(N, D) and B*(C) from the study's fit, and plan trains it with exactly those."""
    study = Path(shutil.copytree(ROOT / "results" / "lr-study", tmp_path / "lr-study"))
    out = tmp_path / "next.yaml"
    assert main(["suggest", str(study), "--target", "C=1e15", "--bootstrap", "12", "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    points = doc["grid"]["points"]
    laws = json.loads((study / "fit.json").read_text())["hyperparameters"]["laws"]
    for p in points:
        N = count_N(4, p["shape"]["d_model"], 4 * p["shape"]["d_model"])
        lr = laws["lr_ND"]["a"] * N ** laws["lr_ND"]["exponents"]["N"] * p["D"] ** laws["lr_ND"]["exponents"]["D"]
        assert p["lr"] == pytest.approx(lr, rel=0.02) and 1 <= p["batch_size"] <= 64
    capsys.readouterr()
    assert main(["plan", str(out), "--json", str(tmp_path / "plan.json")]) == 0
    planned = [r for r in json.loads((tmp_path / "plan.json").read_text()) if r["role"] != "trunk"]
    assert sorted((r["lr"], r["batch_size"]) for r in planned) == sorted((p["lr"], p["batch_size"]) for p in points)
