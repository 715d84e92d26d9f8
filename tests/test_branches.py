"""WSD cooldown branches: one stable-phase trunk per model size, a cooldown branched from it for
each data size; each branch is its own (N, D) run and equals an independently trained WSD run."""

import json

import pytest

from conftest import tiny_runs
from scalinglab import results
from scalinglab.cli import main
from scalinglab.store import runs as run_files
from scalinglab.store.layout import RunDir
from scalinglab.sweep import planner

STEPS = (40, 80, 120, 160)
TPS = 4 * 32  # tokens per step of tiny_runs
WSD = {"schedule": "wsd", "warmup_steps": 8, "cooldown_fraction": 0.25}


def test_the_planner_counts_the_shared_stable_phase_once():
    runs = tiny_runs(D=[s * TPS for s in STEPS], train={**WSD, "cooldown_branches": True})
    trunk, *branches = runs
    assert trunk.role == "trunk" and trunk.steps == 120 and trunk.branch_steps == (30, 60, 90, 120)
    assert [b.steps for b in branches] == list(STEPS) and all(b.trunk_id == trunk.run_id for b in branches)
    assert [b.start_step for b in branches] == [30, 60, 90, 120]
    assert planner.grid_points(runs) == branches
    independent = sum(b.C for b in branches)
    spent = sum(r.job_flops for r in runs)
    # The trunk's 120 steps plus four cooldowns of 10, 20, 30, 40 steps, against 400 steps.
    assert spent / independent == pytest.approx((120 + 100) / 400)


def test_branches_train_and_match_independent_runs(sweep_file, tmp_path, capsys):
    grid = {"shapes": [{"n_layers": 1, "d_model": 32, "n_heads": 2}], "D": [s * TPS for s in STEPS[:2]]}  # a mid-trunk and a last branch point
    kw = dict(executor="local", grid=grid, data={"val_tokens": 1024})
    branched = sweep_file(name="branched", train={**WSD, "n_evals": 2, "cooldown_branches": True}, **kw)
    assert main(["plan", str(branched)]) == 0
    assert "runs 2 · total C 1.57e+09 FLOPs (independent runs: 2.09e+09, 25% saved by cooldown branches)" in capsys.readouterr().out
    assert main(["run", str(branched), "--results", str(tmp_path / "res")]) == 0

    independent = sweep_file(name="independent", train={**WSD, "n_evals": 2}, **kw)
    assert main(["run", str(independent), "--results", str(tmp_path / "res")]) == 0

    a = results.load(tmp_path / "res" / "branched").set_index("D")
    b = results.load(tmp_path / "res" / "independent").set_index("D")
    assert len(a) == len(b) == 2 and (a["status"] == "done").all()  # the trunk is not a grid point
    for D in b.index:
        assert a.loc[D, "L"] == pytest.approx(b.loc[D, "L"], rel=1e-5)
    # A branch's history before its branch point is its trunk's.
    run_dirs = [RunDir(p) for p in (tmp_path / "res" / "branched" / "runs").iterdir()]
    trunk = next(d for d in run_dirs if json.loads(d.spec.read_text())["role"] == "trunk")
    trunk_evals = run_files.read_metrics(trunk)
    for run_dir in run_dirs:
        spec = json.loads(run_dir.spec.read_text())
        if spec["trunk_id"]:
            before = [m for m in run_files.read_metrics(run_dir) if m["step"] <= spec["decay_start"]]
            assert before == [m for m in trunk_evals if m["step"] <= spec["decay_start"]]
            assert [m["step"] for m in run_files.read_metrics(run_dir)] == spec["eval_steps"]
