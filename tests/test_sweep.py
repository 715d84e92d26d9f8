"""A tiny sweep end to end: YAML -> plan -> submitit -> training -> results/ -> fit -> figures."""

import dataclasses
import io
import json
import os

import pytest
from conftest import check_sweep
from rich.console import Console

from scalinglab import results
from scalinglab.cli import main
from scalinglab.launch.dispatch import launch
from scalinglab.store.layout import SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

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


def test_a_sweep_over_U_trains_each_cap_and_records_it(sweep_file, tmp_path, capsys):
    shape = [{"n_layers": 1, "d_model": 16, "n_heads": 2}]
    path = sweep_file(grid={"shapes": shape, "D": [2560], "U": [1000, 3000]})
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 0
    df = results.load(tmp_path / "res" / "tiny")
    assert sorted(df["U"]) == [1000, 3000] and (df["status"] == "done").all()
    assert sorted(json.loads(p.read_text())["U"] for p in (tmp_path / "res" / "tiny").glob("runs/*/run.json")) == [1000, 3000]
    # A cap beyond the training split is refused before anything is written.
    too_many = sweep_file(name="big", grid={"shapes": shape, "D": [2560], "U": [1000, 10**9]})
    assert main(["run", str(too_many), "--results", str(tmp_path / "res")]) == 2
    assert "grid.U[1]: 1,000,000,000 tokens, more than the corpus's training split holds" in capsys.readouterr().err
    assert not (tmp_path / "res" / "big").exists()
