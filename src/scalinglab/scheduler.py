"""Where a sweep's jobs are: results/<sweep>/jobs.json names each run's latest job; the scheduler
(squeue and sacct for SLURM) and the run's lock (held by the process training it) say what became
of it. With results/ this gives every run's state for `status`, `cancel`, and `run` on a sweep
that already has jobs in the queue. No JAX here."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import results

JOBS = "jobs.json"

STATES = ("pending", "running", "preempted", "done", "diverged", "failed", "cancelled", results.DAMAGED)

# sacct states of a job that has not ended, and of one that ended without a summary.
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "PREEMPTED"}
_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}


class SchedulerError(RuntimeError):
    """The scheduler could not be asked (sacct missing or failing)."""


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    job_id: str | None = None
    detail: str = ""
    live: bool = False  # a queued or running job will still train the run


def read_jobs(sweep_dir: Path) -> dict[str, dict]:
    """run_id -> {"job_id", "executor"} of the latest job submitted for each run. A damaged
    jobs.json is reported and read as empty: runs are then judged by their files and locks."""
    path = Path(sweep_dir) / JOBS
    jobs, problem = results.read_record(path, set())
    jobs = jobs or {}
    if problem is None and not all(isinstance(j, dict) and {"job_id", "executor"} <= j.keys() for j in jobs.values()):
        problem = "not a table of jobs"
    if problem is not None:
        results.report_damage(path, f"{problem}; ignored")
        return {}
    return jobs


def record_jobs(sweep_dir: Path, executor: str, job_ids: dict[str, str]) -> None:
    """Adds jobs to jobs.json; the sweep folder's lock keeps two launchers from losing each other's."""
    with results.folder_lock(sweep_dir):
        jobs = read_jobs(sweep_dir)
        jobs.update({run_id: {"job_id": job_id, "executor": executor} for run_id, job_id in job_ids.items()})
        results.write_json(Path(sweep_dir) / JOBS, jobs)


def requeue_count(run_path: Path) -> int:
    """How often the run's job was requeued (preempted or timed out); a damaged record is reported, 0."""
    path = Path(run_path) / results.REQUEUES
    record, problem = results.read_record(path, {"count"})
    if problem is not None:
        results.report_damage(path, f"{problem}; counted as 0")
    return record["count"] if record else 0


def _ask(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise SchedulerError(f"could not run {cmd[0]} ({e}); is SLURM's client installed here?") from e
    if out.returncode != 0:
        raise SchedulerError(f"{cmd[0]} failed: {(out.stderr.strip().splitlines() or ['exit code ' + str(out.returncode)])[-1]}")
    return out.stdout


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """job_id -> SLURM state (e.g. RUNNING, CANCELLED), for jobs and array tasks: squeue for jobs
    the controller still holds (a job just submitted may not be in accounting yet), else sacct."""
    if not job_ids:
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher  # noqa: PLC0415  (the parser of array ids)

    queued = dict(line.split("|") for line in _ask(["squeue", "-h", "-r", "-o", "%i|%T"]).split())
    done = SlurmInfoWatcher().read_info(_ask(["sacct", "-X", "--parsable2", "-o", "JobID,State", "-j", ",".join(sorted(set(job_ids)))]))
    states = {job_id: done[job_id]["State"].split()[0] for job_id in job_ids if job_id in done}
    return {**states, **{job_id: queued[job_id] for job_id in job_ids if job_id in queued}}


def run_states(sweep_dir: Path, run_ids: list[str]) -> list[RunState]:
    """Every run's state, from its summary when it has one, else from its job."""
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    slurm = slurm_states([jobs[r]["job_id"] for r in run_ids if r in jobs and jobs[r]["executor"] == "slurm"])
    states = []
    for run_id in run_ids:
        path = results.run_dir(sweep_dir, run_id)
        summary = results.read_summary(path)
        job = jobs.get(run_id, {})
        job_id = job.get("job_id")
        requeues = requeue_count(path)
        if summary:
            state, detail = summary["status"], summary.get("error") or ""
            if summary.get("L") is not None:
                detail = f"L={summary['L']:.4f}"
            states.append(RunState(run_id, state, job_id, detail))
            continue
        metrics = results.read_metrics(path)
        progress = f"step {metrics[-1]['step']}" if metrics else ""
        live = False
        sacct = slurm.get(job_id) if job.get("executor") == "slurm" else None
        if sacct in _RUNNING:
            state, detail, live = "running", progress, True
        elif sacct in _QUEUED:
            state, live = ("preempted" if requeues or sacct == "PREEMPTED" else "pending"), True
            detail = f"requeued {requeues}x, from {progress}" if requeues else ""
        elif sacct and sacct.startswith("CANCELLED"):
            state, detail = "cancelled", progress
        elif sacct:  # FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ... or COMPLETED without a summary
            state, detail = "failed", f"job {sacct.lower()}"
        elif results.is_locked(path):  # a local job process holds the run's lock
            state, detail, live = "running", progress, True
        else:  # never submitted, or its job is gone (a local sweep stopped, a job unknown to sacct)
            state, detail = "pending", "not running: `scalinglab run` trains it" if job_id or metrics else "not submitted"
        states.append(RunState(run_id, state, job_id, detail, live))
    return states


def cancel(sweep_dir: Path, run_ids: list[str]) -> list[RunState]:
    """Cancels the queued and running SLURM jobs of these runs; returns their states before.
    Local jobs belong to the `scalinglab run` process that started them (Ctrl-C stops them)."""
    jobs = read_jobs(sweep_dir)
    live = [s for s in run_states(sweep_dir, run_ids) if s.live and jobs.get(s.run_id, {}).get("executor") == "slurm"]
    if live:
        _ask(["scancel", *[s.job_id for s in live]])
    return live
