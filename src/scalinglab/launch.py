"""Dispatch: one submitit job per run, through the debug (in process), local (subprocesses) or
slurm executor; completed runs are skipped; progress shows done / running / failed and an ETA.

This module must not import JAX: submitit's local subprocess imports it to unpickle run_job,
and run_job pins the job's CPU threads before JAX is loaded.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import submitit
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import results, scheduler
from .spec import LaunchSpec, RunSpec

POLL_S = 0.5
SACCT_POLL_S = 5.0  # submitit alone asks sacct ever more rarely, up to every 10 min


COMPILE_CACHE = "jax_cache"
LOGS = "logs"  # submitit's folder in results/<sweep>/: job scripts, pickles, stdout and stderr


BUSY = "busy"  # run_job's status when another process holds the run's lock, or has finished it


def run_job(run: dict, run_path: str, cores: list[int] | None) -> dict:
    """The job body. A training error is kept in the run's summary.json, which is returned
    (status 'failed'), so every executor reports it the same way and the sweep goes on. A run
    another process is training (its lock is held) is left alone: status 'busy'."""
    Path(run_path).mkdir(parents=True, exist_ok=True)
    lock = results.lock_run(Path(run_path))
    if lock is None:
        return {"status": BUSY}
    if results.is_complete(Path(run_path)):  # finished by another process before this one got the lock
        os.close(lock)
        return {"status": BUSY}
    try:
        setup_job(cores)
        from .train import train  # noqa: PLC0415  (after setup_job, see there)

        sweep_dir = Path(run_path).parent.parent
        return train(RunSpec.from_dict(run), Path(run_path), compile_cache=sweep_dir / COMPILE_CACHE)
    except Exception as e:  # noqa: BLE001
        return record_failure(Path(run_path), f"{type(e).__name__}: {e}", traceback.format_exc())
    finally:
        os.close(lock)


class TrainJob(submitit.helpers.Checkpointable):
    """The job body as submitit runs it on SLURM. On preemption or near its time limit SLURM
    signals the job (USR2, 90 s ahead); submitit then calls checkpoint(), which saves the training
    state and has the same call requeued; the requeued job resumes from that checkpoint. After
    max_requeues the run ends as failed instead."""

    def __init__(self, max_requeues: int):
        self.max_requeues = max_requeues

    def __call__(self, run: dict, run_path: str, cores: list[int] | None) -> dict:
        return run_job(run, run_path, cores)

    def checkpoint(self, run: dict, run_path: str, cores: list[int] | None):
        path = Path(run_path)
        count = scheduler.requeue_count(path)
        if count >= self.max_requeues:  # raised into the step loop: run_job records the run as failed
            raise RuntimeError(f"stopped by the scheduler (preempted or out of time) {count + 1} times; launch.slurm.max_requeues is {self.max_requeues}")
        train = sys.modules.get(f"{__package__}.train")  # absent: the job had not started training
        step = train.save_for_requeue() if train else None
        results.write_json(path / results.REQUEUES, {"count": count + 1, "saved_step": step})
        return submitit.helpers.DelayedSubmission(self, run, run_path, cores)


# XLA flags of every job, unless XLA_FLAGS already sets them, measured on 2 cores of an AVX2 CPU
# with experiments/bench_throughput_compare.py. No YNNPACK fusions: XLA's own emitters were faster
# for this model, step time (2, 64) -30%, (4, 128) ... (8, 512) -2 to -5%. (Matmuls through oneDNN,
# --xla_cpu_use_onednn, were 13% faster at (8, 512) but are not used: jobs aborted in XLA when
# freeing oneDNN executables, and such executables cannot enter the persistent compilation cache.)
JOB_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def setup_job(cores: list[int] | None) -> None:
    """Process settings of a training job; they must be made before JAX is imported."""
    if cores is not None:
        # XLA sizes its thread pools from the CPUs this process may use.
        os.sched_setaffinity(0, cores)
    keep_freed_memory()
    flags = os.environ.get("XLA_FLAGS", "")
    own = [f for f in JOB_XLA_FLAGS if f.split("=")[0] not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *own]).strip()


def keep_freed_memory() -> None:
    """Stops glibc from handing freed memory back to the OS after every step. XLA on CPU allocates
    and frees its step buffers each step, from its worker thread's arena; with glibc's defaults
    every step touches fresh pages (~1.7M page faults, ~20% sys time). One arena that keeps its
    memory, measured here on one core: (2, 64) 15.7k -> 22.6k tokens/s, (3, 96) 6.4k -> 10.9k.
    Blocks above 32 MB (glibc's largest mmap threshold) were still mapped and unmapped each step;
    without mmap and trimming, on two cores (interleaved runs): (4, 256) 120k -> 48k page faults
    a step while the heap still grows, step time -14%; (8, 512) 471k -> 0.3k, step time -20%."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -4, -8
    mallopt(M_ARENA_MAX, 1)
    mallopt(M_TRIM_THRESHOLD, -1)  # never
    mallopt(M_TOP_PAD, 1 << 28)
    mallopt(M_MMAP_MAX, 0)  # large blocks come from the heap too, and stay there


def record_failure(run_path: Path, error: str, detail: str = "") -> dict:
    summary = {"status": "failed", "error": error, "traceback": detail}
    results.write_json(run_path / "summary.json", summary)
    return summary


def local_gpus() -> int:
    """GPUs on this machine, without importing JAX (nvidia-smi -L prints one line each)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


def max_parallel(launch: LaunchSpec, n_runs: int) -> int:
    if launch.max_parallel is not None:
        return launch.max_parallel
    if launch.executor == "local" and launch.gpus_per_job:
        return max(1, local_gpus() // launch.gpus_per_job)
    if launch.executor == "local":
        return max(1, len(os.sched_getaffinity(0)) // launch.threads_per_job)
    return 1 if launch.executor == "debug" else max(1, n_runs)


def make_executor(launch: LaunchSpec, folder: Path, n_runs: int) -> submitit.Executor:
    timeout_min = launch.slurm.time_min
    if launch.executor == "local":  # not through AutoExecutor, which cannot say which GPUs a job gets
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    s = launch.slurm
    executor = submitit.AutoExecutor(folder=folder, cluster=launch.executor, slurm_max_num_timeout=s.max_requeues)
    if launch.executor == "slurm":
        optional = {"slurm_partition": s.partition, "slurm_account": s.account, "slurm_qos": s.qos, "slurm_constraint": s.constraint, "mem_gb": s.mem_gb}
        executor.update_parameters(
            timeout_min=timeout_min,
            nodes=s.nodes,
            tasks_per_node=1,
            cpus_per_task=s.cpus_per_task,
            gpus_per_node=launch.gpus_per_job,
            slurm_array_parallelism=max_parallel(launch, n_runs),
            slurm_setup=list(s.setup),
            slurm_additional_parameters=dict(s.extra),
            **{k: v for k, v in optional.items() if v is not None},
        )
    return executor


@dataclass
class Outcome:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


def _progress_flops(run: RunSpec, run_path: Path) -> float:
    """FLOPs a running job has done so far, from the evaluations it has written."""
    metrics = results.read_metrics(run_path)
    return run.C * max(0, metrics[-1]["step"] - run.start_step) / run.steps if metrics else 0.0


def _ready(run: RunSpec, sweep_dir: Path) -> bool | None:
    """Whether a run can start now: a cooldown branch waits for its trunk's checkpoint at its
    branch point. None: it never can, because the trunk ended without reaching it."""
    if run.trunk_id is None:
        return True
    trunk = results.run_dir(sweep_dir, run.trunk_id)
    if (trunk / results.BRANCH_DIR / str(run.decay_start)).is_dir():
        return True
    return None if results.status(trunk) in ("done", "diverged", "failed") else False


def _submit_slurm(executor, todo: list, launch_spec: LaunchSpec, sweep_dir: Path, console: Console) -> dict:
    """Submits the runs of `todo` as job arrays, except runs whose earlier job is still queued or
    running, which are watched instead of trained twice. One array for trunks and independent
    runs, then one for cooldown branches that starts once the jobs it needs have ended (a branch
    fails clearly if its trunk did not get to its branch point). Returns job -> (run, path)."""
    jobs_before = scheduler.read_jobs(sweep_dir)
    states = {s.run_id: s for s in scheduler.run_states(sweep_dir, [r.run_id for r, _ in todo])}
    watched, new = {}, []
    for run, path in todo:
        state = states[run.run_id]
        if state.live and jobs_before.get(run.run_id, {}).get("executor") == "slurm":
            watched[submitit.SlurmJob(folder=executor.folder, job_id=state.job_id)] = (run, path)
        else:
            new.append((run, path))
    if watched:
        console.print(f"watching {len(watched)} run(s) already queued or running: {', '.join(sorted(j.job_id for j in watched))}")
    job = TrainJob(launch_spec.slurm.max_requeues)
    submitted = {}
    first = [(r, p) for r, p in new if r.trunk_id is None]
    branches = [(r, p) for r, p in new if r.trunk_id is not None]
    if first:
        jobs = executor.map_array(job, [r.to_dict() for r, _ in first], [str(p) for _, p in first], [None] * len(first))
        submitted.update(zip(jobs, first))
    if branches:
        before = [j.job_id for j, (r, _) in {**watched, **submitted}.items() if r.trunk_id is None]
        if before:
            executor.update_parameters(slurm_additional_parameters={**launch_spec.slurm.extra, "dependency": "afterany:" + ":".join(before)})
        jobs = executor.map_array(job, [r.to_dict() for r, _ in branches], [str(p) for _, p in branches], [None] * len(branches))
        submitted.update(zip(jobs, branches))
    scheduler.record_jobs(sweep_dir, "slurm", {r.run_id: j.job_id for j, (r, _) in submitted.items()})
    if submitted:
        array_ids = sorted({j.job_id.split("_")[0] for j in submitted})
        console.print(f"submitted {len(submitted)} run(s) to SLURM as job array(s) {', '.join(array_ids)}")
    return {**watched, **submitted}


def launch(runs: list[RunSpec], launch_spec: LaunchSpec, sweep_dir: Path, console: Console | None = None) -> Outcome:
    """Trains every run of `runs` not already complete under sweep_dir; returns the counts."""
    console = console or Console()
    out = Outcome()
    todo, elsewhere = [], []  # to train here; being trained by another process (its lock is held)
    for run in runs:
        path = results.run_dir(sweep_dir, run.run_id)
        if results.is_complete(path):
            if results.read_spec(path) is None:  # lost or damaged: the plan knows what it said
                results.write_json(path / "run.json", run.to_dict())
            out.skipped += 1
        elif launch_spec.executor != "slurm" and results.is_locked(path):  # slurm: its queued and running jobs are watched
            elsewhere.append((run, path))
        else:
            results.write_json(path / "run.json", run.to_dict())
            (path / "summary.json").unlink(missing_ok=True)
            todo.append((run, path))
    if out.skipped:
        console.print(f"skipping {out.skipped} completed run(s)")
    if elsewhere:
        console.print(f"waiting for {len(elsewhere)} run(s) that another process is training")
    if not todo and not elsewhere:
        return out

    parallel = max_parallel(launch_spec, len(todo))
    executor = make_executor(launch_spec, Path(sweep_dir) / LOGS, len(todo))
    threads = launch_spec.threads_per_job
    n_cores = len(os.sched_getaffinity(0))
    free_slots = list(range(parallel))
    # Longest first, so no long job runs alone at the end; trunks before their branches.
    queue = sorted(todo, key=lambda t: (t[0].role != "trunk", -t[0].job_flops))
    running: dict = {}  # job -> (run, path, slot)
    total_flops = sum(r.job_flops for r, _ in todo)
    finished_flops = 0.0
    last_sacct = time.time()

    def cores_for(slot: int) -> list[int] | None:
        # Local jobs get disjoint cores; debug runs in this process and slurm places jobs itself.
        if launch_spec.executor != "local":
            return None
        return [(slot * threads + i) % n_cores for i in range(threads)]

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of FLOPs"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=total_flops)

        def refresh() -> None:
            partial = sum(_progress_flops(r, p) for r, p, _ in running.values())
            progress.update(
                task,
                completed=finished_flops + partial,
                description=f"runs {out.done} done · {len(running)} running or queued · {out.failed} failed · {len(queue)} waiting",
            )

        def submit_to_slurm(items: list) -> None:
            jobs = _submit_slurm(executor, items, launch_spec, sweep_dir, console)
            running.update({job: (r, p, None) for job, (r, p) in jobs.items()})

        if launch_spec.executor == "slurm":
            submit_to_slurm(queue)
            queue.clear()
        while queue or running or elsewhere:
            for run, path in [item for item in elsewhere if not results.is_locked(item[1])]:
                elsewhere.remove((run, path))  # its other process has ended
                if results.is_complete(path):
                    out.skipped += 1
                    console.print(f"[green]{results.status(path)}[/] {run.run_id}  (trained by another process)")
                elif launch_spec.executor == "slurm":
                    submit_to_slurm([(run, path)])
                else:  # it stopped unfinished: train it here, from its checkpoint
                    queue.append((run, path))
            for item in list(queue):
                if not free_slots:
                    break
                run, path = item
                ready = _ready(run, sweep_dir)
                if ready is None:  # its trunk is finished without the checkpoint it needs
                    queue.remove(item)
                    summary = record_failure(path, f"trunk run {run.trunk_id} ended before step {run.decay_start}")
                    out.failed += 1
                    console.print(f"[red]failed[/] {run.run_id}  N={run.N:,} D={run.D:,}: {summary['error']}")
                elif ready:
                    queue.remove(item)
                    slot = free_slots.pop(0)
                    if launch_spec.executor == "local":  # submitit hides every GPU unless told which
                        g = launch_spec.gpus_per_job
                        executor.update_parameters(gpus_per_node=g, visible_gpus=tuple(range(slot * g, (slot + 1) * g)))
                    job = executor.submit(run_job, run.to_dict(), str(path), cores_for(slot))
                    scheduler.record_jobs(sweep_dir, launch_spec.executor, {run.run_id: job.job_id})
                    running[job] = (run, path, slot)
                refresh()
            for job in [j for j in running if j.done()]:
                run, path, slot = running.pop(job)
                if slot is not None:
                    free_slots.append(slot)
                if isinstance(job, submitit.SlurmJob) and job.state.startswith("CANCELLED"):
                    finished_flops += run.job_flops
                    out.cancelled += 1  # not failed: `scalinglab run` trains it again
                    console.print(f"[yellow]cancelled[/] {run.run_id}  N={run.N:,} D={run.D:,}")
                    continue
                try:
                    summary = job.result()
                except Exception as e:  # noqa: BLE001  the job process died (killed, out of memory)
                    last_line = (str(e).strip().splitlines() or [""])[-1]
                    summary = results.read_summary(path)  # the job's own account, if it wrote one
                    if not summary or summary["status"] != "failed":
                        summary = record_failure(path, f"{type(e).__name__}: {last_line}")
                if summary["status"] == BUSY:  # another process took the run first: wait for it
                    elsewhere.append((run, path))
                    continue
                finished_flops += run.job_flops
                if summary["status"] == "failed":
                    out.failed += 1
                    console.print(f"[red]failed[/] {run.run_id}  N={run.N:,} D={run.D:,}: {summary['error']}")
                    continue
                out.done += 1
                L = summary["L"]
                console.print(
                    f"[green]{summary['status']}[/] {run.run_id}  N={run.N:,} D={run.D:,}  "
                    f"L={'-' if L is None else f'{L:.4f}'}  tokens/s={summary['tokens_per_s'] or 0:,.0f}"
                )
                refresh()
            time.sleep(POLL_S if running or elsewhere else 0)
            if launch_spec.executor == "slurm" and time.time() - last_sacct > SACCT_POLL_S:
                submitit.SlurmJob.watcher.update()  # one sacct for all jobs: sees cancelled and killed ones
                last_sacct = time.time()
            refresh()
    return out
