"""Dispatch: one submitit job per run, through the debug (in process), local (subprocesses) or
slurm executor; completed runs are skipped; progress shows done / running / failed and an ETA.

This module must not import JAX: submitit's local subprocess imports it to unpickle run_job,
and run_job pins the job's CPU threads before JAX is loaded.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import submitit
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import results
from .spec import LaunchSpec, RunSpec

POLL_S = 0.5


COMPILE_CACHE = "jax_cache"


def run_job(run: dict, run_path: str, cores: list[int] | None) -> dict:
    """The job body. A training error is kept in the run's summary.json, which is returned
    (status 'failed'), so every executor reports it the same way and the sweep goes on."""
    setup_job(cores)
    try:
        from .train import train  # noqa: PLC0415  (after setup_job, see there)

        sweep_dir = Path(run_path).parent.parent
        return train(RunSpec.from_dict(run), Path(run_path), compile_cache=sweep_dir / COMPILE_CACHE)
    except Exception as e:  # noqa: BLE001
        return record_failure(Path(run_path), f"{type(e).__name__}: {e}", traceback.format_exc())


# XLA flags of every job, unless XLA_FLAGS already sets them. No YNNPACK fusions: XLA's own dot
# and loop emitters were faster for this model on 2 cores of an AVX2 CPU, step time (2, 64) -30%,
# (4, 128) ... (8, 512) -2 to -5% (experiments/bench_throughput_compare.py, in lockstep).
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
    memory, measured here on one core: (2, 64) 15.7k -> 22.6k tokens/s, (3, 96) 6.4k -> 10.9k."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
    mallopt(M_ARENA_MAX, 1)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
    mallopt(M_TOP_PAD, 1 << 28)
    mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's upper limit on 64-bit


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
    executor = submitit.AutoExecutor(folder=folder, cluster=launch.executor)
    if launch.executor == "slurm":
        s = launch.slurm
        executor.update_parameters(
            timeout_min=timeout_min,
            cpus_per_task=s.cpus_per_task,
            slurm_partition=s.partition,
            slurm_array_parallelism=max_parallel(launch, n_runs),
            gpus_per_node=launch.gpus_per_job,
            slurm_additional_parameters=dict(s.extra),
            **({"mem_gb": s.mem_gb} if s.mem_gb else {}),
        )
    return executor


@dataclass
class Outcome:
    done: int = 0
    failed: int = 0
    skipped: int = 0


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


def launch(runs: list[RunSpec], launch_spec: LaunchSpec, sweep_dir: Path, console: Console | None = None) -> Outcome:
    """Trains every run of `runs` not already complete under sweep_dir; returns the counts."""
    console = console or Console()
    out = Outcome()
    todo = []
    for run in runs:
        path = results.run_dir(sweep_dir, run.run_id)
        if results.is_complete(path):
            out.skipped += 1
            continue
        results.write_json(path / "run.json", run.to_dict())
        (path / "summary.json").unlink(missing_ok=True)
        todo.append((run, path))
    if out.skipped:
        console.print(f"skipping {out.skipped} completed run(s)")
    if not todo:
        return out

    parallel = max_parallel(launch_spec, len(todo))
    executor = make_executor(launch_spec, Path(sweep_dir) / "logs", len(todo))
    threads = launch_spec.threads_per_job
    n_cores = len(os.sched_getaffinity(0))
    free_slots = list(range(parallel))
    # Longest first, so no long job runs alone at the end; trunks before their branches.
    queue = sorted(todo, key=lambda t: (t[0].role != "trunk", -t[0].job_flops))
    running: dict = {}  # job -> (run, path, slot)
    total_flops = sum(r.job_flops for r, _ in todo)
    finished_flops = 0.0

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
                description=f"runs {out.done} done · {len(running)} running · {out.failed} failed · {len(queue)} queued",
            )

        if launch_spec.executor == "slurm":
            # One array for trunks and independent runs, then one for cooldown branches that
            # starts when the first has ended (a branch fails clearly if its trunk did not get there).
            first = [(r, p) for r, p in queue if r.trunk_id is None]
            branches = [(r, p) for r, p in queue if r.trunk_id is not None]
            jobs = executor.map_array(run_job, [r.to_dict() for r, _ in first], [str(p) for _, p in first], [None] * len(first))
            if branches:
                extra = {**launch_spec.slurm.extra, "dependency": "afterany:" + ":".join(j.job_id for j in jobs)}
                executor.update_parameters(slurm_additional_parameters=extra)
                jobs += executor.map_array(
                    run_job, [r.to_dict() for r, _ in branches], [str(p) for _, p in branches], [None] * len(branches)
                )
            running.update({job: (r, p, None) for job, (r, p) in zip(jobs, first + branches)})
            queue.clear()
        while queue or running:
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
                    running[executor.submit(run_job, run.to_dict(), str(path), cores_for(slot))] = (run, path, slot)
                refresh()
            for job in [j for j in running if j.done()]:
                run, path, slot = running.pop(job)
                if slot is not None:
                    free_slots.append(slot)
                finished_flops += run.job_flops
                try:
                    summary = job.result()
                except Exception as e:  # noqa: BLE001  the job process died (killed, out of memory)
                    last_line = (str(e).strip().splitlines() or [""])[-1]
                    summary = record_failure(path, f"{type(e).__name__}: {last_line}")
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
            time.sleep(POLL_S if running else 0)
            refresh()
    return out
