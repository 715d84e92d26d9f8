"""Sweeps on a real SLURM cluster (the slurm_cluster fixture: slurmctld, slurmd, slurmdbd and
MariaDB on loopback): one job array per sweep, a preempted job that saves, requeues and resumes,
a job that dies, status, cancel, and a second `scalinglab run` that never trains a run twice."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import tiny_sweep
from scalinglab.cli import main
from scalinglab.launch import jobs
from scalinglab.launch.job import TrainJob
from scalinglab.launch.scheduler import Scheduler
from scalinglab.store import runs
from scalinglab.store.layout import RunDir, SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import load

LONG_D = 4 * 32 * 2500  # 2,500 steps: long enough to signal mid-run


SHAPE = [{"n_layers": 1, "d_model": 16, "n_heads": 2}]
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
        grid={"shapes": SHAPE, "D": D},
        train={"checkpoint_interval_s": 0.5},
        launch={"slurm": SLURM, **launch},
    )


def start_run(path, results_dir) -> subprocess.Popen:
    """`scalinglab run` as the user starts it, in its own process."""
    cmd = [sys.executable, "-m", "scalinglab.cli", "run", str(path), "--results", str(results_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, what, timeout=180):
    """Polls condition until it holds; `what` (or what it returns) names it when it never does."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.2)


def run_ids_by_D(sweep: SweepDir) -> dict[int, str]:
    return {json.loads(p.read_text())["D"]: p.parent.name for p in sweep.runs.glob("*/run.json")}


def job_process(job_id: str, rank: int = 0) -> int | None:
    """PID of the Python process of rank `rank` of a SLURM job or array task ("12", "12_3"), found
    by its environment."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"submitit.core._submit" not in cmdline or cmdline.split(b"\0")[0].endswith(b"srun"):  # Python, not srun
                continue
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        ids = {env.get("SLURM_JOB_ID"), f"{env.get('SLURM_ARRAY_JOB_ID')}_{env.get('SLURM_ARRAY_TASK_ID')}"}
        if job_id in ids and env.get("SLURM_PROCID", "0") == str(rank):
            return int(proc.name)
    return None


def test_a_sweep_survives_preemption_and_a_dead_job(slurm_cluster, tmp_path, capsys):
    path = slurm_sweep(tmp_path, "preempt", [2560, LONG_D, LONG_D + 12800])
    victim = LONG_D + 12800
    res = tmp_path / "res"
    sweep = SweepDir(res / "preempt")
    proc = start_run(path, res)
    wait_for(lambda: len(jobs.read_jobs(sweep)) == 3, "3 submitted jobs")
    job_ids = {D: jobs.read_jobs(sweep)[run_id]["job_id"] for D, run_id in run_ids_by_D(sweep).items()}
    assert len({j.split("_")[0] for j in job_ids.values()}) == 1  # one job array
    script = (sweep.logs / f"{job_ids[2560].split('_')[0]}_submission.sh").read_text()
    for line in ("--array=0-2%3", "--partition=debug", "--qos=normal", "--time=10", "--cpus-per-task=1", "--mem=1GB", "--comment=scalinglab-test"):
        assert f"#SBATCH {line}\n" in script
    assert "export SCALINGLAB_SETUP=ran\n" in script

    # A job killed outright while it runs, as by the out-of-memory killer.
    wait_for(lambda: job_process(job_ids[victim]) is not None, "the process of the victim's job")
    os.kill(job_process(job_ids[victim]), signal.SIGKILL)
    # Preemption: SLURM's warning signal reaches the long run after its first checkpoint.
    long_dir = sweep.run(run_ids_by_D(sweep)[LONG_D])
    wait_for(lambda: long_dir.resume.is_dir() and runs.read_metrics(long_dir), "a checkpoint of the long run")
    subprocess.run(["scancel", "--signal=USR2", job_ids[LONG_D]], check=True)

    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # a run failed
    assert "2 trained, 0 already done, 1 failed" in out

    long = json.loads(long_dir.summary.read_text())
    assert long["status"] == "done" and long["resumed_from"] > 0
    assert json.loads(long_dir.requeues.read_text())["count"] == 1
    assert [m["step"] for m in runs.read_metrics(long_dir)] == json.loads(long_dir.spec.read_text())["eval_steps"]
    assert long["slurm_job_id"] is not None and long["n_devices"] == 1
    dead = json.loads(sweep.run(run_ids_by_D(sweep)[victim]).summary.read_text())
    assert dead["status"] == "failed" and dead["error"]

    assert main(["status", str(sweep.path)]) == 0
    assert "2 done · 1 failed" in capsys.readouterr().out

    # Running the sweep again trains only the failed run, in a new array.
    assert main(["run", str(path), "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "skipping 2 completed run(s)" in out and "submitted 1 run(s)" in out
    assert "1 trained, 2 already done, 0 failed" in out
    assert jobs.read_jobs(sweep)[run_ids_by_D(sweep)[victim]]["job_id"].split("_")[0] != job_ids[victim].split("_")[0]
    main(["status", str(sweep.path)])
    assert "3 done" in capsys.readouterr().out


def test_a_second_run_watches_queued_jobs_and_cancel_stops_them(slurm_cluster, tmp_path, capsys):
    path = slurm_sweep(tmp_path, "cancel", [4 * LONG_D, 5 * LONG_D], max_parallel=1)  # an array of 2, one at a time
    res = tmp_path / "res"
    sweep = SweepDir(res / "cancel")
    first = start_run(path, res)
    wait_for(lambda: len(jobs.read_jobs(sweep)) == 2, "2 submitted jobs")
    submitted = jobs.read_jobs(sweep)

    second = start_run(path, res)  # while the first's jobs are queued and running
    seen = ""
    while "watching" not in seen:  # the second has looked at the queue
        line = second.stdout.readline()
        assert line, f"the second run ended early: {seen}"
        seen += line
    assert "watching 2 run(s) already queued or running" in seen
    wait_for(lambda: "running" in {s.state for s in jobs.run_states(sweep, list(submitted))}, "a running job")
    assert main(["status", str(sweep.path)]) == 0
    assert "1 pending · 1 running" in capsys.readouterr().out

    assert main(["cancel", str(sweep.path)]) == 0
    assert "cancelled 2 job(s)" in capsys.readouterr().out
    for proc in (first, second):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert "0 trained, 0 already done, 0 failed, 2 cancelled" in out, out
    assert "submitted" not in seen + out  # the second
    assert jobs.read_jobs(sweep) == submitted  # nothing submitted twice
    # A cancelled job is COMPLETING until its processes are gone: killed after KillWait (2 s), which
    # a machine busy with the other test worker can stretch to many seconds.
    states = lambda: {s.run_id: (s.state, s.detail) for s in jobs.run_states(sweep, list(submitted))}  # noqa: E731
    wait_for(lambda: {state for state, _ in states().values()} == {"cancelled"}, lambda: f"cancelled runs, not {states()}", 180)
    main(["status", str(sweep.path)])
    assert "2 cancelled" in capsys.readouterr().out


def test_a_branch_dependency_does_not_stay_for_later_submissions(slurm_cluster, tmp_path):
    """Cooldown branches go to SLURM as an array that waits for their trunk (--dependency); an
    array submitted later by the same `scalinglab run` (say, for a run another process gave up)
    must not inherit that dependency."""
    wsd = {"schedule": "wsd", "cooldown_branches": True, "n_evals": 2}
    branched = load(tiny_sweep(tmp_path, executor="slurm", name="deps", grid={"shapes": SHAPE, "D": [40 * 128, 80 * 128]},
                               train=wsd, launch={"slurm": SLURM}))
    plain = planner.plan(load(tiny_sweep(tmp_path, executor="slurm", name="plain", grid={"shapes": SHAPE, "D": [20 * 128]})))
    sweep = SweepDir(tmp_path / "res" / "deps")
    plan = planner.plan(branched)
    assert [r.role for r in plan] == ["trunk", "run", "run"] and all(r.trunk_id for r in plan[1:])
    scheduler = Scheduler(branched.launch, sweep, [(r, sweep.run(r.run_id)) for r in plan], [], Console(file=io.StringIO()))
    try:
        scheduler.submit_to_slurm(scheduler.queue)
        scheduler.submit_to_slurm([(plain[0], sweep.run(plain[0].run_id))])
        arrays = sorted({job.job_id.split("_")[0] for job in scheduler.running}, key=int)
        assert len(arrays) == 3  # the trunk's, the branches', the later one's
        scripts = [(sweep.logs / f"{array}_submission.sh").read_text() for array in arrays]
        trunk_job = next(job.job_id for job, (run, _, _) in scheduler.running.items() if run.role == "trunk")
        assert "--dependency" not in scripts[0]
        assert f"#SBATCH --dependency=afterany:{trunk_job}\n" in scripts[1]
        assert "--dependency" not in scripts[2] and "#SBATCH --comment=scalinglab-test\n" in scripts[2]
    finally:
        subprocess.run(["scancel", *{job.job_id.split("_")[0] for job in scheduler.running}], check=False)


def test_requeues_are_bounded(tmp_path):
    run_dir = RunDir(tmp_path / "runs" / "r")
    run_dir.path.mkdir(parents=True)
    job = TrainJob(max_requeues=1)
    delayed = job.checkpoint({}, str(run_dir.path), None)  # first preemption: requeue the same call
    assert isinstance(delayed.function, TrainJob) and delayed.function.max_requeues == 1
    assert delayed.args == ({}, str(run_dir.path), None)
    assert json.loads(run_dir.requeues.read_text())["count"] == 1
    with pytest.raises(RuntimeError, match="2 times; launch.slurm.max_requeues is 1"):
        job.checkpoint({}, str(run_dir.path), None)


def test_a_requeue_that_slurm_stops_while_it_returns_is_not_a_failure(tmp_path):
    """A run over several processes: process 0 has submitit requeue the job after the collective
    save. slurmctld accepts the requeue and stops the job at once, and its SIGTERM can kill
    `scontrol requeue` itself before it exits: the job exits as requeued, not failed."""
    run_dir = RunDir(tmp_path / "r")
    run_dir.path.mkdir()
    job = TrainJob(max_requeues=3, processes=2)
    job.warned = True

    def killed_scontrol(signum, frame):
        raise subprocess.CalledProcessError(-signal.SIGTERM, ["scontrol", "requeue", "10"])

    job.requeue = killed_scontrol
    with pytest.raises(SystemExit):
        job._stopped({"status": "preempted", "step": 40}, run_dir)
    assert not run_dir.summary.exists()

    def refused(signum, frame):
        raise subprocess.CalledProcessError(1, ["scontrol", "requeue", "10"])

    job.requeue = refused  # scontrol's own failure is one
    assert job._stopped({"status": "preempted", "step": 40}, run_dir)["status"] == "failed"
