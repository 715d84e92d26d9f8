"""Faults during a local sweep, done for real: kill -9 of `scalinglab run` and of a job in the
middle of a sweep, and two `scalinglab run` of one sweep at once. Nothing is lost, no run is
trained twice at the same time, no file is left half-written."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import finish, start_job, tiny_sweep
from scalinglab import results
from scalinglab.launch import jobs
from scalinglab.store import runs
from scalinglab.store.layout import RunDir, SweepDir

D = [4 * 32 * 300, 4 * 32 * 400]  # 300 and 400 steps: a few seconds each


def start_run(path, res) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scalinglab.cli", "run", str(path), "--results", str(res)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check_every_file(sweep_dir, n_runs):
    """Every run done once: whole JSON files, each evaluation exactly once, no checkpoint left."""
    for run_dir in (sweep_dir / "runs").iterdir():
        run = json.loads((run_dir / "run.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "done"
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in lines if "L" in m] == run["eval_steps"]
        curve = [m["step"] for m in lines if "L" not in m]  # the training curve's points, each once
        assert curve == sorted(set(curve)) and curve[-1] == run["steps"]
        assert not RunDir(run_dir).resume.exists()
    assert len(results.load(sweep_dir)) == n_runs


def saved_steps(run_dir: RunDir) -> list[int]:
    """Steps of the run's finished checkpoints (orbax renames a step's folder when it is complete)."""
    ckpt = run_dir.resume
    return [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def trained(out: str) -> set[str]:
    """Run ids a `scalinglab run` reports as trained by its own jobs."""
    return set(re.findall(r"^done (\w{12})  N=", out, re.M))


def test_two_runs_of_one_sweep_at_once_train_each_run_once(tmp_path):
    path = tiny_sweep(tmp_path, executor="local", grid={"D": D})
    res = tmp_path / "res"
    first, second = start_run(path, res), start_run(path, res)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    run_ids = {d.name for d in (res / "tiny" / "runs").iterdir()}
    assert len(run_ids) == 4
    assert trained(outs[0]).isdisjoint(trained(outs[1]))  # no run trained by both
    assert trained(outs[0]) | trained(outs[1]) == run_ids
    check_every_file(res / "tiny", 4)


def test_kill_9_of_the_sweep_and_a_job_then_run_again(tmp_path):
    path = tiny_sweep(tmp_path, executor="local", grid={"D": D}, train={"checkpoint_interval_s": 0.2})
    res = tmp_path / "res"
    sweep = SweepDir(res / "tiny")
    proc = start_run(path, res)

    def checkpointed():
        return [r for r in jobs.read_jobs(sweep) if saved_steps(sweep.run(r)) and runs.is_locked(sweep.run(r))]

    deadline = time.time() + 300
    while not checkpointed():
        assert proc.poll() is None and time.time() < deadline, "no run reached a checkpoint"
        time.sleep(0.05)
    victim = checkpointed()[0]
    os.kill(proc.pid, signal.SIGKILL)  # the sweep's own process; its other job keeps training
    job = int(jobs.read_jobs(sweep)[victim]["job_id"])  # submitit's controller; it trains in a child
    for pid in [job, *children(job)]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    victim_dir = sweep.run(victim)
    deadline = time.time() + 30
    while runs.is_locked(victim_dir):  # the kernel frees the lock of the dead job
        assert time.time() < deadline
        time.sleep(0.05)
    assert runs.status(victim_dir) == "pending"

    again = start_run(path, res)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    check_every_file(sweep.path, 4)
    summary = json.loads(victim_dir.summary.read_text())
    assert summary["resumed_from"] > 0

    # The resumed run ends where an uninterrupted job of the same spec ends.
    reference = finish(start_job(json.loads(victim_dir.spec.read_text()), tmp_path / "ref" / "runs" / victim))
    assert summary["L"] == pytest.approx(reference["L"], rel=1e-6)
