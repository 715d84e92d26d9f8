"""Where a sweep's jobs are: jobs.json names each run's latest job; SLURM (squeue and sacct) and
the run's lock (held by the process training it) say what became of it. With the run folders this
gives every run's state for `status`, `cancel`, and `run` on a sweep that already has jobs in the
queue. No JAX here."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TypedDict

from ..store import runs
from ..store.files import locked, read_record, report_damage, write_json
from ..store.layout import SweepDir
from ..store.runs import Status
from ..sweep.types import Executor

# sacct states of a job that has not ended, and of one that ended without a summary.
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "PREEMPTED"}
_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}


class SlurmError(RuntimeError):
    """SLURM could not be asked (squeue, sacct or scancel missing or failing)."""


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: Status
    job_id: str | None = None
    detail: str = ""
    live: bool = False  # a queued or running job will still train the run


class Job(TypedDict):
    """A run's latest job, as jobs.json holds it."""

    job_id: str
    executor: str
    """An Executor's value (an Executor compares equal to it)."""


def read_jobs(sweep: SweepDir) -> dict[str, Job]:
    """run_id -> {"job_id", "executor"} of the latest job submitted for each run. A damaged
    jobs.json is reported and read as empty: runs are then judged by their files and locks."""
    jobs, problem = read_record(sweep.jobs, sweep.path, _check_jobs)
    if problem is not None:
        report_damage(sweep.jobs, f"{problem}; ignored")
        return {}
    return jobs or {}


def _check_jobs(jobs: object) -> str | None:
    """What is wrong with jobs.json's contents, if anything: run id -> {job_id, executor}."""
    executors = [e.value for e in Executor]
    if isinstance(jobs, dict) and all(_is_job(j, executors) for j in jobs.values()):
        return None
    return "not a table of jobs (run id -> job_id, executor)"


def _is_job(job: object, executors: list[str]) -> bool:
    return isinstance(job, dict) and isinstance(job.get("job_id"), str) and job["job_id"] != "" and job.get("executor") in executors


def record_jobs(sweep: SweepDir, executor: Executor, job_ids: dict[str, str]) -> None:
    """Adds jobs to jobs.json; the sweep folder's lock keeps two launchers from losing each other's."""
    with locked(sweep.path):
        jobs = read_jobs(sweep)
        jobs.update({run_id: {"job_id": job_id, "executor": executor} for run_id, job_id in job_ids.items()})
        write_json(sweep.jobs, jobs)


def _ask(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise SlurmError(f"could not run {cmd[0]} ({e}); is SLURM's client installed here?") from e
    if out.returncode != 0:
        raise SlurmError(f"{cmd[0]} failed: {(out.stderr.strip().splitlines() or ['exit code ' + str(out.returncode)])[-1]}")
    return out.stdout


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """job_id -> SLURM state (e.g. RUNNING, CANCELLED), for jobs and array tasks: squeue for jobs
    the controller still holds (a job just submitted may not be in accounting yet), else sacct."""
    if not job_ids:
        return {}
    queued = dict(line.split("|") for line in _ask(["squeue", "-h", "-r", "-o", "%i|%T"]).split())
    done = _accounted_states(job_ids)
    return {**done, **{job_id: queued[job_id] for job_id in job_ids if job_id in queued}}


def _accounted_states(job_ids: list[str]) -> dict[str, str]:
    """sacct's state of each job or array task. A task cancelled before it started has no record
    of its own, only the array's (JobID 12_[1-3%1]), so the arrays are asked for too; a task's own
    record wins over its array's."""
    from submitit.slurm.slurm import SlurmInfoWatcher  # noqa: PLC0415  (the parser of array ids)

    asked = sorted({*job_ids, *(job_id.split("_")[0] for job_id in job_ids)})
    lines = _ask(["sacct", "-X", "--parsable2", "-o", "JobID,State", "-j", ",".join(asked)]).splitlines()
    header, records = lines[:1], lines[1:]
    arrays = SlurmInfoWatcher().read_info("\n".join(header + [r for r in records if "[" in r]))
    tasks = SlurmInfoWatcher().read_info("\n".join(header + [r for r in records if "[" not in r]))
    found = {**arrays, **tasks}
    return {job_id: found[job_id]["State"].split()[0] for job_id in job_ids if job_id in found}


def _unfinished_state(run, job: Job | None, sacct: str | None) -> RunState:
    """The state of a run without a summary, from its job's SLURM state (sacct) or its lock."""
    metrics = runs.read_metrics(run)
    progress = f"step {metrics[-1]['step']}" if metrics else ""
    job_id, requeues = job["job_id"] if job is not None else None, runs.requeue_count(run)
    live = sacct in _RUNNING or sacct in _QUEUED
    if sacct in _RUNNING:
        state, detail = Status.RUNNING, progress
    elif sacct in _QUEUED:
        state = Status.PREEMPTED if requeues or sacct == "PREEMPTED" else Status.PENDING
        detail = f"requeued {requeues}x, from {progress}" if requeues else ""
    elif sacct and sacct.startswith("CANCELLED"):
        state, detail = Status.CANCELLED, progress
    elif sacct:  # FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ... or COMPLETED without a summary
        state, detail = Status.FAILED, f"job {sacct.lower()}"
    elif runs.is_locked(run):  # a local job process holds the run's lock
        state, detail, live = Status.RUNNING, progress, True
    else:  # never submitted, or its job is gone (a local sweep stopped, a job unknown to sacct)
        state, detail = Status.PENDING, "not running: `scalinglab run` trains it" if job_id or metrics else "not submitted"
    return RunState(run.run_id, state, job_id, detail, live)


def run_states(sweep: SweepDir, run_ids: list[str]) -> list[RunState]:
    """Every run's state, from its summary when it has one, else from its job."""
    jobs = read_jobs(sweep)
    slurm = slurm_states([jobs[r]["job_id"] for r in run_ids if r in jobs and jobs[r]["executor"] == Executor.SLURM])
    states = []
    for run_id in run_ids:
        run, job = sweep.run(run_id), jobs.get(run_id)
        summary = runs.read_summary(run)
        if summary is None:
            sacct = slurm.get(job["job_id"]) if job is not None and job["executor"] == Executor.SLURM else None
            states.append(_unfinished_state(run, job, sacct))
            continue
        detail = f"L={summary['L']:.4f}" if summary.get("L") is not None else summary.get("error") or ""
        states.append(RunState(run_id, summary["status"], job["job_id"] if job is not None else None, detail))
    return states


def cancel(sweep: SweepDir, run_ids: list[str]) -> list[RunState]:
    """Cancels the queued and running SLURM jobs of these runs; returns their states before.
    Local jobs belong to the `scalinglab run` process that started them (Ctrl-C stops them)."""
    jobs = read_jobs(sweep)
    live = [s for s in run_states(sweep, run_ids) if s.live and s.run_id in jobs and jobs[s.run_id]["executor"] == Executor.SLURM]
    if live:
        _ask(["scancel", *[s.job_id for s in live if s.job_id is not None]])  # each names its job (in jobs.json)
    return live
