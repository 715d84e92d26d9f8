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
from test_slurm import SLURM, start_run, wait_for

from scalinglab.cli import main
from scalinglab.launch import jobs
from scalinglab.store import runs
from scalinglab.store.files import read_json
from scalinglab.store.layout import RunDir, SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

SHAPE = [{"n_layers": 2, "d_model": 32, "n_heads": 2}]
TOL = 1e-4


def two_process_sweep(tmp_path, name: str, steps: int, fsdp: int = 1, **train) -> Path:
    """One run (batch 4 x 32 tokens, `steps` steps) as one SLURM job of 2 tasks on the test node.
    lr 3e-3: at 1e-2 such a tiny model's loss is chaotic, float noise (sums in another order, on
    one device or two) grows to 5e-3 in 120 steps; at 3e-3 it stays below 3e-5 over 3,000."""
    return tiny_sweep(
        tmp_path, executor="slurm", name=name, grid={"shapes": SHAPE, "D": [4 * 32 * steps]},
        train={"fsdp": fsdp, "checkpoint_interval_s": 600, "lr": 3e-3, **train},
        launch={"slurm": {**SLURM, "tasks_per_node": 2, "mem_gb": 2}},
    )  # fmt: skip


def one_process_loss(path: Path, folder: Path) -> float:
    """The sweep's run trained here, in this one process (replicated state): its final loss."""
    from scalinglab.training.loop import train  # noqa: PLC0415

    (run,) = planner.plan(load(path))
    return train(dataclasses.replace(run, fsdp=1), folder)["L"]


def the_run(sweep: SweepDir) -> RunDir:
    (path,) = sweep.runs.iterdir()
    return RunDir(path)


def task_process(job_id: str, rank: int) -> int | None:
    """PID of the Python process of rank `rank` of a SLURM job (or array task, "12_3"), found by
    its environment."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"submitit.core._submit" not in cmdline or cmdline.split(b"\0")[0].endswith(b"srun"):
                continue
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        ids = {env.get("SLURM_JOB_ID"), f"{env.get('SLURM_ARRAY_JOB_ID')}_{env.get('SLURM_ARRAY_TASK_ID')}"}
        if job_id in ids and env.get("SLURM_PROCID") == str(rank):
            return int(proc.name)
    return None


def test_two_processes_train_one_run_like_one_process(slurm_cluster, tmp_path, capsys):
    path = two_process_sweep(tmp_path, "two", steps=60, fsdp=2)
    res = tmp_path / "res"
    assert main(["run", str(path), "--results", str(res)]) == 0
    assert "1 trained, 0 already done, 0 failed" in capsys.readouterr().out
    run_dir = the_run(SweepDir(res / "two"))
    summary = read_json(run_dir.summary)
    assert summary["status"] == "done"
    assert (summary["n_processes"], summary["n_devices"], summary["fsdp"]) == (2, 2, 2)
    # Process 0 alone wrote the run's files: one record per evaluation, none twice.
    assert [m["step"] for m in runs.read_metrics(run_dir)] == read_json(run_dir.spec)["eval_steps"]
    assert abs(summary["L"] - one_process_loss(path, tmp_path / "one")) < TOL


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


def test_a_preempted_two_process_run_saves_together_resumes_and_matches(slurm_cluster, tmp_path):
    # No periodic checkpoint (600 s): the run can resume only from what the preemption saved.
    path = two_process_sweep(tmp_path, "preempt2", steps=2000, n_evals=40)
    res = tmp_path / "res"
    sweep = SweepDir(res / "preempt2")
    proc = start_run(path, res)
    wait_for(lambda: len(jobs.read_jobs(sweep)) == 1, "the submitted job")
    run_dir = the_run(sweep)
    wait_for(lambda: runs.read_metrics(run_dir), "the run's first evaluation", 300)
    (job,) = jobs.read_jobs(sweep).values()
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], check=True)  # SLURM's warning, to every task

    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "1 trained, 0 already done, 0 failed" in out
    summary, requeues = read_json(run_dir.summary), read_json(run_dir.requeues)
    assert summary["status"] == "done" and requeues["count"] == 1
    assert 0 < summary["resumed_from"] < 2000
    assert [m["step"] for m in runs.read_metrics(run_dir)] == read_json(run_dir.spec)["eval_steps"]
    assert abs(summary["L"] - one_process_loss(path, tmp_path / "one")) < TOL


def test_a_process_that_dies_fails_the_run(slurm_cluster, tmp_path):
    path = two_process_sweep(tmp_path, "dies", steps=20000, n_evals=50)
    res = tmp_path / "res"
    sweep = SweepDir(res / "dies")
    proc = start_run(path, res)
    wait_for(lambda: len(jobs.read_jobs(sweep)) == 1, "the submitted job")
    run_dir = the_run(sweep)
    wait_for(lambda: runs.read_metrics(run_dir), "the run's first evaluation", 300)
    (job,) = jobs.read_jobs(sweep).values()
    os.kill(task_process(job["job_id"], rank=1), signal.SIGKILL)

    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert "0 trained, 0 already done, 1 failed" in out
    summary = read_json(run_dir.summary)
    assert summary["status"] == "failed" and summary.get("L") is None
