"""A tiny sweep end to end: YAML -> plan -> submitit -> training -> results/ -> fit -> figures."""

import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from scalinglab import results
from scalinglab.cli import main
from scalinglab.launch.dispatch import launch
from scalinglab.store.layout import SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

FIGURES = {"loss_vs_N.png", "loss_vs_D.png", "loss_vs_C.png", "training_curves.png"}
LAW_FIGURES = {"frontier.png", "contours.png", "residuals.png", "extrapolation.png"}  # with enough runs for L(N,D)


def check_sweep(sweep_dir, n_runs=4, figures=FIGURES):
    df = results.load(sweep_dir)
    assert len(df) == n_runs and (df["status"] == "done").all()
    assert {"run_id", "N", "N_total", "D", "C", "L", "bpb", "tokens_per_s", "n_layers", "d_model"} <= set(df.columns)
    evals = results.load(sweep_dir, per_eval=True)
    assert len(evals) == 2 * n_runs and {"step", "tokens", "L", "train_loss"} <= set(evals.columns)
    for run_dir in (sweep_dir / "runs").iterdir():
        assert {p.name for p in run_dir.iterdir()} == {"run.json", "metrics.jsonl", "summary.json"}
    fit = json.loads((sweep_dir / "fit.json").read_text())
    assert fit["power_laws"]
    assert {p.name for p in (sweep_dir / "figures").iterdir()} == figures
    return df


@pytest.mark.parametrize("executor", ["debug", "local"])
def test_tiny_sweep_end_to_end(executor, sweep_file, tmp_path, capsys):
    path = sweep_file(executor=executor)
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 0
    sweep_dir = tmp_path / "res" / "tiny"
    df = check_sweep(sweep_dir)
    out = capsys.readouterr().out
    assert "4 trained, 0 already done, 0 failed" in out
    if executor == "debug":  # in this process
        assert set(df["pid"]) == {os.getpid()}
    else:  # one subprocess per run, one core each, both cores in use
        assert len(set(df["pid"])) == 4 and os.getpid() not in set(df["pid"])
        assert sorted({tuple(c) for c in df["cpu_cores"]}) == [(0,), (1,)]

    # Re-running skips every completed run and trains nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("runs/*/summary.json")}
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 0
    assert "0 trained, 4 already done, 0 failed" in capsys.readouterr().out
    assert mtimes == {p: p.stat().st_mtime_ns for p in sweep_dir.glob("runs/*/summary.json")}
    assert len(results.load(sweep_dir)) == len(df)


@pytest.mark.parametrize("executor", ["debug", "local"])
def test_a_failing_run_is_recorded_and_the_rest_go_on(executor, sweep_file, tmp_path):
    sweep = load(sweep_file(executor=executor))
    good = planner.plan(sweep)[:2]
    # A corpus that disappears between planning and training: the job itself fails.
    broken = dataclasses.replace(good[0], data=dataclasses.replace(good[0].data, source="text", path=str(tmp_path / "gone")))
    outcome = launch([broken, *good], sweep.launch, SweepDir(tmp_path / "res"), Console(file=io.StringIO()))
    assert (outcome.done, outcome.failed) == (2, 1)
    df = results.load(tmp_path / "res").set_index("run_id")
    assert df.loc[broken.run_id, "status"] == "failed"
    assert "gone does not exist" in df.loc[broken.run_id, "error"]
    assert (df.loc[[r.run_id for r in good], "status"] == "done").all()
    # A re-run retries the failed run only.
    again = launch([broken, *good], sweep.launch, SweepDir(tmp_path / "res"), Console(file=io.StringIO()))
    assert (again.skipped, again.failed, again.done) == (2, 1, 0)


def test_plot_regenerates_figures_from_disk_alone(trained_copy):
    sweep_dir = trained_copy
    for png in (sweep_dir / "figures").iterdir():
        png.unlink()
    (sweep_dir / "fit.json").unlink()
    code = "import sys; from scalinglab.cli import main; rc = main(sys.argv[1:]); assert 'jax' not in sys.modules; sys.exit(rc)"
    proc = subprocess.run([sys.executable, "-c", code, "plot", str(sweep_dir), "--bootstrap", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    check_sweep(sweep_dir, n_runs=10, figures=FIGURES | LAW_FIGURES)
    assert all(p.stat().st_size > 10_000 for p in (sweep_dir / "figures").iterdir())


def test_fit_command_prints_json_from_results_and_csv(trained_copy, tmp_path, capsys):
    assert main(["fit", str(trained_copy), "--json", "--bootstrap", "0"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert {"E", "A", "B", "alpha", "beta", "power_laws"} <= set(fit) and fit["n_points"] == 10
    csv = tmp_path / "runs.csv"
    results.load(trained_copy).rename(columns={"N": "params", "L": "val"})[["params", "D", "val"]].to_csv(csv)
    assert main(["fit", "--csv", str(csv), "--map", "N=params", "--map", "L=val", "--json", "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["alpha"] == pytest.approx(fit["alpha"], rel=1e-3)
