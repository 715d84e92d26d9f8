"""What jobs run on: GPUs on this machine, how many jobs at once, which cores and GPUs a local
job slot gets. No JAX (asking JAX for devices would start its runtime in the launcher)."""

from __future__ import annotations

import os
import subprocess

from ..sweep.spec import LaunchSpec


def local_gpus() -> int:
    """GPUs on this machine (nvidia-smi -L prints one line each)."""
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


def slot_cores(launch: LaunchSpec, slot: int) -> list[int] | None:
    """The cores of a local job slot, disjoint from the other slots'; None where the job runs in
    this process (debug) or SLURM places it."""
    if launch.executor != "local":
        return None
    n_cores = len(os.sched_getaffinity(0))
    return [(slot * launch.threads_per_job + i) % n_cores for i in range(launch.threads_per_job)]


def slot_gpus(launch: LaunchSpec, slot: int) -> tuple[int, ...]:
    """The GPUs of a local job slot: submitit hides every GPU from a local job unless told which."""
    g = launch.gpus_per_job
    return tuple(range(slot * g, (slot + 1) * g))
