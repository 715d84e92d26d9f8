"""The committed reference study: results/cpu-study is exactly sweeps/cpu-study.yaml, and fit and
plot work on it straight after a clone, reproducing the committed law and extrapolation errors."""

import json
import shutil
from pathlib import Path

import pytest

from scalinglab import results
from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.cli import main
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "cpu-study"


@pytest.fixture
def study(tmp_path):
    """A copy, so that fit and plot do not rewrite the committed files."""
    return Path(shutil.copytree(STUDY, tmp_path / "cpu-study"))


def test_committed_results_are_every_run_of_the_sweep_file():
    planned = planner.plan(load(ROOT / "sweeps" / "cpu-study.yaml"))
    df = results.load(STUDY, trunks=True)
    assert sorted(df["run_id"]) == sorted(r.run_id for r in planned)
    assert (df["status"] == "done").all()
    grid = df[df["role"] != "trunk"]
    assert grid["N"].nunique() == 6 and grid["D"].nunique() == 4
    fit_N = sorted(grid["N"].unique())[:-1]
    assert fit_N[-1] / fit_N[0] >= 30 and grid["N"].max() >= 3 * fit_N[-1]


def test_fit_reproduces_the_committed_law_and_the_held_out_errors(study, capsys):
    assert main(["fit", str(study), "--json", "--bootstrap", "0"]) == 0
    fit = json.loads(capsys.readouterr().out)
    committed = json.loads((STUDY / "fit.json").read_text())
    for k in ("E", "A", "B", "alpha", "beta"):
        assert fit["law"]["params"][k] == pytest.approx(committed["law"]["params"][k], rel=1e-4)
    ext = fit["extrapolation"]
    held = ext["held_out"]
    assert ext["n_fit"] == 20 and len(held) == 4
    assert {h["N"] for h in held} == {max(h["N"] for h in held)}  # the largest model, at every D
    # The study's measured errors (docs/studies.md): chosen on the 20 smaller runs, Chinchilla's form
    # predicts the held-out model within 2% (issue 8), from 1.3% too low at 2M bytes to 2.0% too
    # high at 8M; Kaplan's, the runner-up, within 3.9%.
    errors = [h["rel_error"] for h in sorted(held, key=lambda h: h["D"])]
    assert errors == pytest.approx([h["rel_error"] for h in sorted(committed["extrapolation"]["held_out"], key=lambda h: h["D"])], abs=1e-4)
    assert ext["law"]["law"] == {"law": "chinchilla"} and max(abs(e) for e in errors) < 0.02 and errors == sorted(errors)
    runner_up = SweepFit.model_validate(fit).extrapolation.runner_up.fitted()
    second = [runner_up(h["N"], h["D"]) / h["L"] - 1 for h in sorted(held, key=lambda h: h["D"])]
    assert ext["runner_up"]["law"] == {"law": "kaplan"} and max(abs(e) for e in second) < 0.04
    assert all(len(h["L_pred_ci"]) == 2 for h in committed["extrapolation"]["held_out"])  # from the bootstrap


def test_fit_says_which_parameters_the_study_leaves_open(study, capsys):
    """The study's E and B intervals reach 0 or span decades (README); fit says so, the rest is pinned."""
    assert main(["fit", str(study), "--bootstrap", "40"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "not pinned" in x)
    assert line.split("not pinned: ")[1].startswith("E, B (")
    assert json.loads((study / "fit.json").read_text())["law"]["loose"] == ["E", "B"]


def test_plot_regenerates_the_figures_from_the_committed_files(study):
    for png in (study / "figures").iterdir():
        png.unlink()
    assert main(["plot", str(study), "--bootstrap", "0"]) == 0
    assert {p.name for p in (study / "figures").iterdir()} >= {"loss_vs_N.png", "loss_vs_D.png", "extrapolation.png"}
