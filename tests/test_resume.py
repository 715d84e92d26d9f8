"""A run killed with SIGKILL resumes from its last orbax checkpoint and ends exactly where an
uninterrupted run with the same seed ends. The job kills itself at a fixed step, right after a
checkpoint there (a hook the test adds), so the test never races the job."""

import signal

import pytest
from conftest import finish, start_job, tiny_runs

from scalinglab.store import runs
from scalinglab.store.layout import RunDir

KILL_AT = 120  # of 300 steps


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
    run = tiny_runs(D=(4 * 32 * 300,), train={"n_evals": 6})[0]  # no periodic checkpoint in so short a run
    reference = finish(start_job(run.record(), tmp_path / "a" / "runs" / "ref"))

    run_dir = RunDir(tmp_path / "b" / "runs" / run.run_id)
    killed = start_job(run.record(), run_dir.path, kill_after_checkpoint=KILL_AT)
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    assert _ckpt_steps(run_dir) == [KILL_AT] and runs.status(run_dir) == "pending"
    assert [m["step"] for m in runs.read_metrics(run_dir)] == [e for e in run.eval.steps if e <= KILL_AT]

    summary = finish(start_job(run.record(), run_dir.path))
    assert summary["status"] == "done" and summary["resumed_from"] == KILL_AT
    assert summary["L"] == pytest.approx(reference["L"], rel=1e-6)
    assert [m["step"] for m in runs.read_metrics(run_dir)] == list(run.eval.steps)  # each evaluation exactly once
    resumed, uninterrupted = runs.read_curve(run_dir), runs.read_curve(RunDir(tmp_path / "a" / "runs" / "ref"))
    assert [p["step"] for p in resumed] == [p["step"] for p in uninterrupted] == list(range(3, 301, 3))  # each point once
    for key in ("step_lr", "train_loss", "train_loss_ema"):
        assert [p[key] for p in resumed] == pytest.approx([p[key] for p in uninterrupted], rel=1e-6)
    assert not run_dir.resume.exists()  # finished: the checkpoint is gone


def _ckpt_steps(run_dir: RunDir) -> list[int]:
    return sorted(int(p.name) for p in run_dir.resume.iterdir() if p.name.isdigit()) if run_dir.resume.is_dir() else []


@pytest.mark.parametrize("before, after", [("scan", "unrolled"), ("unrolled", "scan")])
def test_a_checkpoint_resumes_with_the_other_layer_loop(tmp_path, before, after):
    """The layers' parameters are stacked either way (kernels.layer_loop): a run checkpointed by a
    process that scanned its layers goes on in one that unrolls them (and the other way round), to
    the loss of an uninterrupted run."""
    run = tiny_runs(shapes=((2, 32, 2),), D=(4 * 32 * 40,), train={"n_evals": 2})[0]
    reference = finish(start_job(run.record(), tmp_path / "a" / "runs" / "ref", env={"SCALINGLAB_LAYERS": after}))
    run_dir = RunDir(tmp_path / "b" / "runs" / run.run_id)
    killed = start_job(run.record(), run_dir.path, kill_after_checkpoint=20, env={"SCALINGLAB_LAYERS": before})
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL and _ckpt_steps(run_dir) == [20]
    summary = finish(start_job(run.record(), run_dir.path, env={"SCALINGLAB_LAYERS": after}))
    assert (summary["resumed_from"], summary["layers"], reference["layers"]) == (20, after, after)
    assert summary["L"] == pytest.approx(reference["L"], rel=1e-5)
