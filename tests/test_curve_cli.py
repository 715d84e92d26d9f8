"""`scalinglab fit --curves` (analysis/curve_pipeline.py): a table of curves drawn from a known
multi-power law fitted back through the command line, a held-out schedule predicted, its JSON and
CSV; bad input refused with one line and nothing written; a trained sweep's training curves and
results/cpu-study's evaluations fitted into curves.json and a figure per size."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.curves import lr_per_step_from_table
from scalinglab.analysis.curves.fit import law_of, predict
from scalinglab.analysis.curves.sweep import sweep_curves
from scalinglab.cli import main
from scalinglab.results import load
from scalinglab.store.layout import SweepDir

ROOT = Path(__file__).resolve().parents[1]
T, PEAK, EVERY, WARMUP = 4000, 3e-3, 40, 200
TRUE = {1e6: {"L0": 2.8, "A": 1.5, "alpha": 0.4, "B": 0.6, "C": 0.02, "beta": 0.6, "gamma": 0.5},
        4e6: {"L0": 2.4, "A": 1.2, "alpha": 0.45, "B": 0.5, "C": 0.02, "beta": 0.6, "gamma": 0.5}}  # fmt: skip
LISTED = np.arange(EVERY, T + 1, EVERY)  # rates and losses logged every 40 steps: sparse


def rates(kind: str) -> np.ndarray:
    """A schedule's rate at the listed steps, after a 200-step warmup."""
    f = np.clip((LISTED - WARMUP) / (T - WARMUP), 0, 1)
    shape = {
        "cosine": 0.1 + 0.45 * (1 + np.cos(np.pi * f)),
        "wsd": np.where(LISTED <= 3200, 1.0, 1 - 0.9 * (LISTED - 3200) / 800),
        "step": np.where(LISTED < 2000, 1.0, np.where(LISTED < 3200, 0.3, 0.1)),
        "linear": 1 - 0.9 * f,  # held out
    }[kind]
    return PEAK * np.where(LISTED <= WARMUP, LISTED / WARMUP, shape)


def truth(N: float, kind: str) -> np.ndarray:
    law = law_of("multi_power")
    lr, _ = lr_per_step_from_table(LISTED, rates(kind))
    return predict(law, law.theta(TRUE[N]), PEAK, lr, LISTED)


@pytest.fixture
def tables(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    rows = [
        pd.DataFrame(
            {
                "Run": f"{kind}-{N:g}",
                "Step": LISTED,
                "LR": rates(kind),
                "Loss": truth(N, kind) * (1 + 1e-3 * rng.standard_normal(len(LISTED))),
                "Params": N,
            }
        )
        for N in TRUE
        for kind in ("cosine", "wsd", "step")
    ]
    pd.concat(rows).to_csv(tmp_path / "curves.csv", index=False)
    pd.DataFrame({"step": LISTED, "lr": rates("linear")}).to_csv(tmp_path / "linear.csv", index=False)
    return tmp_path


MAPS = ["--map", "run=Run", "--map", "step=Step", "--map", "lr=LR", "--map", "loss=Loss", "--map", "N=Params"]


def test_a_table_of_curves_fits_per_size_and_predicts_a_held_out_schedule(tables, capsys, monkeypatch):
    monkeypatch.chdir(tables)
    assert main(["fit", "--curves", "--csv", "curves.csv", *MAPS, "--schedule", "linear.csv", "--out", "pred.csv", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == 1 and report["law"] == "multi_power" and report["loss"] == "Loss"
    assert [s["N"] for s in report["sizes"]] == [1e6, 4e6] and report["skipped"] == []
    for size in report["sizes"]:
        assert set(size["params"]) == set(TRUE[1e6]) and len(size["runs"]) == 3
        assert all(r["r2"] > 0.99 and r["max_rel_error"] < 0.01 for r in size["runs"])
        assert {"run", "schedule", "points", "r2", "max_rel_error", "final_step", "final_loss", "final_fitted"} == set(size["runs"][0])
    for N in TRUE:
        final = next(p for p in report["predictions"] if p["N"] == N and p["step"] == T)
        assert final["loss"] == pytest.approx(truth(N, "linear")[-1], rel=0.005)
    written = pd.read_csv("pred.csv")
    assert list(written.columns) == ["N", "step", "lr", "loss", "loss_low", "loss_high"] and len(written) == 2 * len(LISTED)
    assert written["loss"].tolist() == pytest.approx([p["loss"] for p in report["predictions"]])


def test_without_N_every_run_is_one_group_and_the_bootstrap_gives_intervals(tables, capsys, monkeypatch):
    monkeypatch.chdir(tables)
    table = pd.read_csv("curves.csv")
    table[table.Params == 1e6].to_csv("one.csv", index=False)
    args = [
        "fit",
        "--curves",
        "--csv",
        "one.csv",
        *MAPS[:8],
        "--law",
        "annealing",
        "--bootstrap",
        "20",
        "--schedule",
        "linear.csv",
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    (size,) = report["sizes"]
    assert size["N"] is None and size["law"] == "annealing" and size["n_bootstrap"] == 20
    assert all(lo <= size["params"][k] <= hi for k, (lo, hi) in size["params_ci"].items())
    assert all(p["loss_low"] <= p["loss_high"] for p in report["predictions"])


def cell(tables: Path, row: int, column: str, value) -> None:
    table = pd.read_csv(tables / "curves.csv", dtype=object)
    table.loc[row - 1, column] = value
    table.to_csv(tables / "curves.csv", index=False)


BAD = {
    "missing map": (None, [*MAPS[:6]], "the table has no column for loss; columns are"),
    "text in a cell": (("Loss", 7, "abc"), MAPS, "row 7, column 'Loss' (loss): 'abc' is not a number"),
    "lr below 0": (("LR", 12, "-1e-3"), MAPS, "row 12, column 'LR' (lr): '-0.001' is not a rate of 0 or more"),
    "step twice": (("Step", 3, "80"), MAPS, "rows 2 and 3: run 'cosine-1e+06' lists step 80 twice"),
    "a step of 0.5": (("Step", 1, "0.5"), MAPS, "row 1, column 'Step' (step): '0.5' is not a whole step from 1 on"),
    "unknown law": (None, [*MAPS, "--law", "cosine"], "--law cosine: with --curves, give one of multi_power, annealing"),
    "schedule without curves": (None, ["--map", "N=Params", "--schedule", "linear.csv"], "--schedule: applies only with --curves"),
    "curve map without curves": (None, ["--map", "step=Step"], "--map step=Step: a column of a table of loss curves; add --curves"),
    "out without schedule": (None, [*MAPS, "--out", "p.csv"], "--out p.csv: writes the losses predicted along --schedule"),
    "out exists": (None, [*MAPS, "--schedule", "linear.csv", "--out", "linear.csv"], "--out linear.csv: exists; add --force"),
    "schedule missing": (None, [*MAPS, "--schedule", "nosuch.csv"], "--schedule nosuch.csv: no such file"),
    "predict with curves": (None, [*MAPS, "--predict", "C_6ND=1e20"], "--predict: applies to the fit of L(N,D), not to --curves"),
    "skip all": (None, [*MAPS, "--skip-early", "1"], "--skip-early 1: give a share of each run's steps, from 0 up to"),
    "skip without curves": (None, ["--map", "N=Params", "--skip-early", "0.2"], "--skip-early: applies only with --curves"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(case, tables, capsys, monkeypatch):
    damage, flags, message = BAD[case]
    monkeypatch.chdir(tables)
    if damage:
        cell(tables, damage[1], damage[0], damage[2])
    curves = [] if "without curves" in case else ["--curves"]
    before = sorted(p.name for p in tables.iterdir())
    assert main(["fit", *curves, "--csv", "curves.csv", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tables.iterdir()) == before


def test_a_bad_schedule_cell_is_named_by_row_and_column(tables, capsys, monkeypatch):
    monkeypatch.chdir(tables)
    (tables / "bad.csv").write_text("step,lr\n100,1e-3\n100,5e-4\n")
    assert main(["fit", "--curves", "--csv", "curves.csv", *MAPS, "--schedule", "bad.csv"]) == 2
    assert "--schedule bad.csv: row 2, column 'step': 100 does not come after 100" in capsys.readouterr().err


def fitted_sweep(path: Path, *flags: str) -> dict:
    sweep = SweepDir(path)
    assert main(["fit", str(path), "--curves", *flags]) == 0
    report = json.loads(sweep.curves_json.read_text())
    assert report["sizes"] and all(sweep.curve_figure(s["N"]).stat().st_size > 10_000 for s in report["sizes"])
    return report


def test_a_trained_sweep_fits_its_training_curves_per_size(trained_copy, capsys):
    runs = load(trained_copy, trunks=True).set_index("run_id")
    for curve in sweep_curves(trained_copy).curves:  # the peak rate is run.json's lr, not a curve point's own lr
        assert curve.lr.max() == pytest.approx(runs.loc[curve.run, "lr"], rel=1e-6)
        assert len(curve.lr) == runs.loc[curve.run, "steps"]
    report = fitted_sweep(trained_copy)
    assert report["loss"] == "train" and len(report["sizes"]) + len(report["skipped"]) == 2 and report["skip_early"] == 0.1
    curves = sweep_curves(trained_copy).curves  # a point, the mean of its n_steps, sits at their middle
    points = load(trained_copy, curves=True, trunks=True)
    first = points[points["run_id"] == curves[0].run].iloc[0]
    assert curves[0].steps[0] == first["step"] - (first["n_steps"] - 1) // 2
    assert all(r["points"] > 5 for s in report["sizes"] for r in s["runs"])
    val = fitted_sweep(trained_copy, "--curve-loss", "val", "--law", "annealing")
    assert val["loss"] == "val" and val["law"] == "annealing"


def test_cpu_study_fits_its_evaluations_per_size(tmp_path, capsys):
    study = Path(shutil.copytree(ROOT / "results" / "cpu-study", tmp_path / "cpu-study"))
    report = fitted_sweep(study, "--curve-loss", "val")
    assert report["loss"] == "val" and len(report["sizes"]) == 6
    assert all(r["r2"] > 0.9 and r["max_rel_error"] < 0.03 for s in report["sizes"] for r in s["runs"])
    assert main(["fit", str(study), "--curves", "--curve-loss", "train"]) == 2
    assert "no run has curve points; use --curve-loss val" in capsys.readouterr().err
