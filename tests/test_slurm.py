"""Sweeps on a real SLURM cluster (the slurm_cluster fixture: slurmctld, slurmd, slurmdbd and
MariaDB on loopback): one job array per sweep, a preempted job that saves, requeues and resumes,
a job that dies, status, cancel, and a second `scalinglab run` that never trains a run twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_sweep

from scalinglab import results, scheduler
from scalinglab.cli import main
from scalinglab.launch import TrainJob

LONG_D = 4 * 32 * 2500  # 2,500 steps: long enough to signal mid-run


SLURM = {
    "partition": "debug",
    "qos": "normal",
    "time_min": 10,
    "cpus_per_task": 1,
    "mem_gb": 1,
    "setup": ["export SCALINGLAB_SETUP=ran"],
    "extra": {"comment": "scalinglab-test"},
}


def slurm_sweep(tmp_path, name, D, **launch):
    return tiny_sweep(
        tmp_path,
        executor="slurm",
        name=name,
        grid={"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": D},
        train={"checkpoint_interval_s": 0.5},
        launch={"slurm": SLURM, **launch},
    )


def start_run(path, results_dir) -> subprocess.Popen:
    """`scalinglab run` as the user starts it, in its own process."""
    cmd = [sys.executable, "-m", "scalinglab.cli", "run", str(path), "--results", str(results_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, what, timeout=180):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_ids_by_D(sweep_dir) -> dict[int, str]:
    return {results.read_json(p)["D"]: p.parent.name for p in (sweep_dir / "runs").glob("*/run.json")}


def job_process(job_id: str) -> int | None:
    """PID of the Python process of a SLURM array task, found by its environment."""
    array_id, task = job_id.split("_")
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"submitit.core._submit" not in cmdline or cmdline.split(b"\0")[0].endswith(b"srun"):  # Python, not srun
                continue
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        if env.get("SLURM_ARRAY_JOB_ID") == array_id and env.get("SLURM_ARRAY_TASK_ID") == task:
            return int(proc.name)
    return None


def test_a_sweep_survives_preemption_and_a_dead_job(slurm_cluster, tmp_path, capsys):
    path = slurm_sweep(tmp_path, "preempt", [2560, LONG_D, LONG_D + 12800])
    victim = LONG_D + 12800
    res = tmp_path / "res"
    sweep_dir = res / "preempt"
    proc = start_run(path, res)
    wait_for(lambda: len(scheduler.read_jobs(sweep_dir)) == 3, "3 submitted jobs")
    jobs = {D: scheduler.read_jobs(sweep_dir)[run_id]["job_id"] for D, run_id in run_ids_by_D(sweep_dir).items()}
    assert len({j.split("_")[0] for j in jobs.values()}) == 1  # one job array
    script = (sweep_dir / "logs" / f"{jobs[2560].split('_')[0]}_submission.sh").read_text()
    for line in ("--array=0-2%3", "--partition=debug", "--qos=normal", "--time=10", "--cpus-per-task=1", "--mem=1GB", "--comment=scalinglab-test"):
        assert f"#SBATCH {line}\n" in script
    assert "export SCALINGLAB_SETUP=ran\n" in script

    # A job killed outright while it runs, as by the out-of-memory killer.
    wait_for(lambda: job_process(jobs[victim]) is not None, "the process of the victim's job")
    os.kill(job_process(jobs[victim]), signal.SIGKILL)
    # Preemption: SLURM's warning signal reaches the long run after its first checkpoint.
    long_dir = results.run_dir(sweep_dir, run_ids_by_D(sweep_dir)[LONG_D])
    wait_for(lambda: (long_dir / results.RESUME_DIR).is_dir() and results.read_metrics(long_dir), "a checkpoint of the long run")
    subprocess.run(["scancel", "--signal=USR2", jobs[LONG_D]], check=True)

    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # a run failed
    assert "2 trained, 0 already done, 1 failed" in out

    long = results.read_json(long_dir / "summary.json")
    assert long["status"] == "done" and long["resumed_from"] > 0
    assert results.read_json(long_dir / results.REQUEUES)["count"] == 1
    assert [m["step"] for m in results.read_metrics(long_dir)] == json.loads((long_dir / "run.json").read_text())["eval_steps"]
    assert long["slurm_job_id"] is not None and long["n_devices"] == 1
    dead = results.read_json(results.run_dir(sweep_dir, run_ids_by_D(sweep_dir)[victim]) / "summary.json")
    assert dead["status"] == "failed" and dead["error"]

    assert main(["status", str(sweep_dir)]) == 0
    assert "2 done · 1 failed" in capsys.readouterr().out

    # Running the sweep again trains only the failed run, in a new array.
    assert main(["run", str(path), "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "skipping 2 completed run(s)" in out and "submitted 1 run(s)" in out
    assert "1 trained, 2 already done, 0 failed" in out
    assert scheduler.read_jobs(sweep_dir)[run_ids_by_D(sweep_dir)[victim]]["job_id"].split("_")[0] != jobs[victim].split("_")[0]
    main(["status", str(sweep_dir)])
    assert "3 done" in capsys.readouterr().out


def test_a_second_run_watches_queued_jobs_and_cancel_stops_them(slurm_cluster, tmp_path, capsys):
    path = slurm_sweep(tmp_path, "cancel", [4 * LONG_D, 5 * LONG_D], max_parallel=1)  # an array of 2, one at a time
    res = tmp_path / "res"
    sweep_dir = res / "cancel"
    first = start_run(path, res)
    wait_for(lambda: len(scheduler.read_jobs(sweep_dir)) == 2, "2 submitted jobs")
    jobs = scheduler.read_jobs(sweep_dir)

    second = start_run(path, res)  # while the first's jobs are queued and running
    seen = ""
    while "watching" not in seen:  # the second has looked at the queue
        line = second.stdout.readline()
        assert line, f"the second run ended early: {seen}"
        seen += line
    assert "watching 2 run(s) already queued or running" in seen
    wait_for(lambda: "running" in {s.state for s in scheduler.run_states(sweep_dir, list(jobs))}, "a running job")
    assert main(["status", str(sweep_dir)]) == 0
    assert "1 pending · 1 running" in capsys.readouterr().out

    assert main(["cancel", str(sweep_dir)]) == 0
    assert "cancelled 2 job(s)" in capsys.readouterr().out
    for proc in (first, second):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert "0 trained, 0 already done, 0 failed, 2 cancelled" in out, out
    assert "submitted" not in seen + out  # the second
    assert scheduler.read_jobs(sweep_dir) == jobs  # nothing submitted twice
    # A cancelled job is COMPLETING until its process is gone (KillWait).
    wait_for(lambda: {s.state for s in scheduler.run_states(sweep_dir, list(jobs))} == {"cancelled"}, "cancelled runs", 30)
    main(["status", str(sweep_dir)])
    assert "2 cancelled" in capsys.readouterr().out


def test_requeues_are_bounded(tmp_path):
    run_path = tmp_path / "runs" / "r"
    run_path.mkdir(parents=True)
    job = TrainJob(max_requeues=1)
    delayed = job.checkpoint({}, str(run_path), None)  # first preemption: requeue the same call
    assert delayed.function is job and delayed.args == ({}, str(run_path), None)
    assert results.read_json(run_path / results.REQUEUES)["count"] == 1
    with pytest.raises(RuntimeError, match="2 times; launch.slurm.max_requeues is 1"):
        job.checkpoint({}, str(run_path), None)
