"""A run killed with SIGKILL resumes from its last orbax checkpoint and ends exactly where an
uninterrupted run with the same seed ends."""

import os
import signal
import time

import pytest
from conftest import finish, start_job, tiny_runs

from scalinglab import results


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
    run = tiny_runs(D=(4 * 32 * 300,), train={"checkpoint_interval_s": 0.3, "n_evals": 6})[0]
    reference = finish(start_job(run.to_dict(), tmp_path / "a" / "runs" / "ref"))

    path = tmp_path / "b" / "runs" / run.run_id
    proc = start_job(run.to_dict(), path)
    deadline = time.time() + 300
    while not any(s > 100 for s in _ckpt_steps(path)):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint past step 100 before the run ended"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(_ckpt_steps(path))
    assert killed_at < run.steps and results.status(path) == "pending"

    summary = finish(start_job(run.to_dict(), path))
    assert summary["status"] == "done"
    assert killed_at <= summary["resumed_from"] < run.steps
    assert summary["L"] == pytest.approx(reference["L"], rel=1e-6)
    steps = [m["step"] for m in results.read_metrics(path)]
    assert steps == list(run.eval_steps)  # each evaluation exactly once
    assert not (path / results.RESUME_DIR).exists()  # finished: the checkpoint is gone


def _ckpt_steps(path) -> list[int]:
    d = path / results.RESUME_DIR
    return [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.is_dir() else []
