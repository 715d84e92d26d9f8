"""A run killed with SIGKILL resumes from its last orbax checkpoint and ends exactly where an
uninterrupted run with the same seed ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import tiny_runs

from scalinglab import results

CHILD = """
import json, sys
from scalinglab.launch import run_job
summary = run_job(json.loads(sys.argv[1]), sys.argv[2], [0])
print(json.dumps(summary))
"""


def start(run, run_path) -> subprocess.Popen:
    """The job body in its own process, pinned to core 0 like a local job."""
    run_path.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(run.to_dict()), str(run_path)], stdout=subprocess.PIPE, text=True)


def finish(proc) -> dict:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
    run = tiny_runs(D=(4 * 32 * 300,), train={"checkpoint_interval_s": 0.3, "n_evals": 6})[0]
    reference = finish(start(run, tmp_path / "a" / "runs" / "ref"))

    path = tmp_path / "b" / "runs" / run.run_id
    proc = start(run, path)
    deadline = time.time() + 300
    while not any(s > 100 for s in _ckpt_steps(path)):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint past step 100 before the run ended"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(_ckpt_steps(path))
    assert killed_at < run.steps and results.status(path) == "pending"

    summary = finish(start(run, path))
    assert summary["status"] == "done"
    assert killed_at <= summary["resumed_from"] < run.steps
    assert summary["L"] == pytest.approx(reference["L"], rel=1e-6)
    steps = [m["step"] for m in results.read_metrics(path)]
    assert steps == list(run.eval_steps)  # each evaluation exactly once
    assert not (path / results.RESUME_DIR).exists()  # finished: the checkpoint is gone


def _ckpt_steps(path) -> list[int]:
    d = path / results.RESUME_DIR
    return [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.is_dir() else []
