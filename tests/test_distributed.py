"""One run over several processes, for real on this CPU: two SLURM tasks of one job (the test
cluster), joined by JAX's distributed runtime with CPU collectives (gloo). They train like one
process on the same global batch, shard the state over fsdp, survive preemption together, and
fail together when one dies."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import tiny_sweep
from test_slurm import SLURM, job_process, start_run, wait_for

from scalinglab.launch import jobs
from scalinglab.store import runs
from scalinglab.store.layout import RunDir, SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

SHAPE = [{"n_layers": 2, "d_model": 32, "n_heads": 2}]
TOL = 1e-4


def two_process_sweep(tmp_path, name: str, steps: int, fsdp: int = 1, **train) -> Path:
    """One run (batch 4 x 32 tokens, `steps` steps) as one SLURM job of 2 tasks on the test node.
    lr 1e-3: at higher rates such a tiny model's training is chaotic, and float noise (sums in
    another order, on one device or two) grows: at 1e-2 to 5e-3 in L in 120 steps, at 3e-3 to 1e-2
    in 400; at 1e-3, 1e-6 in 400."""
    return tiny_sweep(
        tmp_path, executor="slurm", name=name, grid={"shapes": SHAPE, "D": [4 * 32 * steps]},
        train={"fsdp": fsdp, "checkpoint_interval_s": 600, "lr": 1e-3, **train},
        launch={"slurm": {**SLURM, "tasks_per_node": 2, "mem_gb": 2}},
    )  # fmt: skip


def one_process_run(path: Path, folder: Path) -> RunDir:
    """The sweep's run trained here, in this one process, its state replicated."""
    from scalinglab.training.loop import train  # noqa: PLC0415

    (run,) = planner.plan(load(path))
    train(dataclasses.replace(run, fsdp=1), folder)
    return RunDir(folder)


def the_run(sweep: SweepDir) -> RunDir:
    (path,) = sweep.runs.iterdir()
    return RunDir(path)


def submit_and_wait(tmp_path, name: str, **sweep) -> tuple:
    """`scalinglab run` of a two-process sweep, in its own process, until the run's first
    evaluation: (the sweep's YAML, that process, the run's folder, its job's record in jobs.json)."""
    path = two_process_sweep(tmp_path, name, **sweep)
    sweep_dir = SweepDir(tmp_path / "res" / name)
    proc = start_run(path, tmp_path / "res")
    wait_for(lambda: len(jobs.read_jobs(sweep_dir)) == 1, "the submitted job")
    run_dir = the_run(sweep_dir)
    wait_for(lambda: runs.read_metrics(run_dir), "the run's first evaluation", 300)
    (job,) = jobs.read_jobs(sweep_dir).values()
    return path, proc, run_dir, job


_FSDP = """
import dataclasses, json, sys
import jax, numpy as np
from scalinglab.store.layout import RunDir
from scalinglab.sweep.runspec import RunSpec
from scalinglab.training.loop import Trainer

run, out = RunSpec.from_record(json.loads(sys.argv[1])), {}
for fsdp in (1, 2):
    trainer = Trainer(dataclasses.replace(run, fsdp=fsdp), RunDir(f"{sys.argv[2]}/{fsdp}"))
    summary = trainer.train()
    leaves = jax.tree.leaves(trainer.state)
    out[fsdp] = {"L": summary["L"], "n_devices": summary["n_devices"],
                 "sharded": sum(a.addressable_shards[0].data.shape != a.shape for a in leaves),
                 "state": [np.asarray(a).tolist() for a in leaves]}
print(json.dumps(out))
"""


def test_fsdp_sharded_state_equals_replicated_state(tmp_path):
    """Two CPU devices in one process: the same run with its state replicated (fsdp 1: the
    devices split the batch) and sharded (fsdp 2: each holds half of every matrix and of its
    Adam moments) has the same parameters and optimizer state after a few steps."""
    (run,) = planner.plan(load(two_process_sweep(tmp_path, "fsdp", steps=12, fsdp=2)))
    for fsdp in (1, 2):
        (tmp_path / str(fsdp)).mkdir()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", _FSDP, json.dumps(run.record()), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    replicated, sharded = out["1"], out["2"]
    assert replicated["n_devices"] == sharded["n_devices"] == 2
    assert replicated["sharded"] == 0 and sharded["sharded"] >= 3 * 4  # every matrix, its two moments
    for a, b in zip(replicated["state"], sharded["state"], strict=True):
        # Float sums in another order (a sharded matmul's partial sums): Adam's update, g / sqrt(v),
        # moves a weight whose gradient is near 0 by up to lr (1e-2) on such noise; 12 steps: 5e-5.
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=5e-5)
    assert abs(replicated["L"] - sharded["L"]) < TOL


def test_two_processes_train_like_one_and_resume_together_after_preemption(slurm_cluster, tmp_path):
    """One run over two processes with its state sharded over both (fsdp 2): every evaluation equals
    the one-process run's, before SLURM's preemption warning and after the requeued job resumed.
    No periodic checkpoint (600 s): it can resume only from what the processes saved together."""
    # About 90 ms a step here (gloo's all-reduces): after the first evaluation, 190 steps (~17 s)
    # remain for the warning to arrive.
    path, proc, run_dir, job = submit_and_wait(tmp_path, "two", steps=200, fsdp=2, n_evals=20)
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], check=True)  # SLURM's warning, to every task

    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "1 trained, 0 already done, 0 failed" in out
    script = (run_dir.sweep.logs / f"{job['job_id'].split('_')[0]}_submission.sh").read_text()
    assert "#SBATCH --ntasks-per-node=2\n" in script and " --kill-on-bad-exit=1 " in script
    summary, requeues = json.loads(run_dir.summary.read_text()), json.loads(run_dir.requeues.read_text())
    assert summary["status"] == "done" and requeues["count"] == 1
    assert (summary["n_processes"], summary["n_devices"], summary["fsdp"]) == (2, 2, 2)
    assert 0 < summary["resumed_from"] == requeues["saved_step"] < 200
    # Process 0 alone wrote the run's files: one record per evaluation, none twice.
    metrics = runs.read_metrics(run_dir)
    assert [m["step"] for m in metrics] == json.loads(run_dir.spec.read_text())["eval_steps"]
    one = one_process_run(path, tmp_path / "one")
    for two_m, one_m in zip(metrics, runs.read_metrics(one), strict=True):
        assert abs(two_m["L"] - one_m["L"]) < TOL, (two_m["step"], two_m["L"], one_m["L"])
    assert abs(summary["L"] - json.loads(one.summary.read_text())["L"]) < TOL


def test_a_process_that_dies_fails_the_run(slurm_cluster, tmp_path):
    _, proc, run_dir, job = submit_and_wait(tmp_path, "dies", steps=3000, n_evals=150)
    os.kill(job_process(job["job_id"], rank=1), signal.SIGKILL)

    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert "0 trained, 0 already done, 1 failed" in out
    summary = json.loads(run_dir.summary.read_text())
    assert summary["status"] == "failed" and summary.get("L") is None
