"""What jobs run on: GPUs on this machine, how many jobs at once, which cores and GPUs a local
job slot gets, whether this is a TPU VM. No JAX (asking JAX for devices would start its runtime
in the launcher)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..sweep.memory import GIB
from ..sweep.spec import LaunchSpec
from ..sweep.types import Executor


def local_gpus() -> int:
    """GPUs on this machine (nvidia-smi -L prints one line each)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


def available_gpus() -> list[str]:
    """The GPUs local jobs may use, as CUDA_VISIBLE_DEVICES names them: the parent's
    CUDA_VISIBLE_DEVICES when set (indices or UUIDs, in its order; empty: none), else every GPU
    nvidia-smi lists. Like CUDA, the list ends at the first entry that names no GPU ("-1")."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(local_gpus())]
    ids = []
    for entry in (e.strip() for e in visible.split(",")):
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        ids.append(entry)
    return ids


def gpu_slots(launch: LaunchSpec, n_gpus: int) -> int:
    """Local GPU job slots on n_gpus GPUs: gpus_per_job disjoint GPUs a job, jobs_per_gpu jobs a GPU."""
    return (n_gpus // launch.gpus_per_job) * launch.jobs_per_gpu


def max_parallel(launch: LaunchSpec, n_runs: int) -> int:
    if launch.max_parallel is not None:
        return launch.max_parallel
    if launch.executor == Executor.LOCAL and launch.gpus_per_job:
        return max(1, gpu_slots(launch, len(available_gpus())))
    if launch.executor == Executor.LOCAL:
        return max(1, len(os.sched_getaffinity(0)) // launch.threads_per_job)
    return 1 if launch.executor == Executor.DEBUG else max(1, n_runs)


def slot_cores(launch: LaunchSpec, slot: int, n_slots: int = 1) -> list[int] | None:
    """The cores of local job slot `slot` of n_slots, disjoint from the other slots' while there
    are enough: threads_per_job for a CPU job, an even share of the cores for a GPU job (its host
    work: input batches, dispatch). None where the job runs in this process (debug) or SLURM places it."""
    if launch.executor != Executor.LOCAL:
        return None
    cpus = sorted(os.sched_getaffinity(0))  # this process's cores, not always 0..n-1 (cgroups, taskset)
    per_job = max(1, len(cpus) // max(1, n_slots)) if launch.gpus_per_job else launch.threads_per_job
    return sorted({cpus[(slot * per_job + i) % len(cpus)] for i in range(per_job)})


def slot_gpus(launch: LaunchSpec, slot: int, available: list[str] | None = None) -> tuple[str, ...]:
    """The GPUs of local job slot `slot`, as CUDA_VISIBLE_DEVICES names them: gpus_per_job of the
    available GPUs (default: available_gpus()), in their order; jobs_per_gpu slots in a row share
    each GPU. Slots beyond the GPUs wrap around; with none available, indices from 0."""
    available = available_gpus() if available is None else available
    g, first = launch.gpus_per_job, (slot // launch.jobs_per_gpu) * launch.gpus_per_job
    if not available:
        return tuple(str(first + i) for i in range(g))
    return tuple(available[(first + i) % len(available)] for i in range(g))


def task_gpu_ids(gpus_per_node: int, tasks_per_node: int, local_rank: int, visible: int) -> list[int]:
    """The GPUs task `local_rank` of a node's tasks_per_node owns, as its CUDA numbers them (JAX's
    local_device_ids): an equal share in order, r*G/T .. (r+1)*G/T - 1, of the node's G GPUs when
    the task sees them all (SLURM's default for --gpus-per-node); 0 .. G/T - 1 when SLURM bound the
    task to its share (visible: how many GPUs the task sees). JAX, asked without ids, would take
    one GPU a task. Raises ValueError, one line, when the GPUs do not split so."""
    g, t = gpus_per_node, tasks_per_node
    if g % t:
        raise ValueError(f"launch.slurm.tasks_per_node: {t} does not divide launch.gpus_per_job {g}; give a divisor")
    share = g // t
    if visible == share:
        return list(range(share))
    if visible < g:
        raise ValueError(
            f"this task sees {visible} GPU(s), neither its share ({g} / {t} tasks = {share}) nor the node's {g} "
            "(launch.gpus_per_job): check SLURM's GPU binding (slurm.extra), or set launch.slurm.tasks_per_node to launch.gpus_per_job"
        )
    return list(range(local_rank * share, (local_rank + 1) * share))


def device_shortfall(gpus_per_node: int, tasks_per_node: int, nodes: int, seen: int, seen_here: int) -> str | None:
    """One line when JAX, once distributed, sees other than the devices the sweep promised a run
    (seen in all, seen_here by this process): gpus_per_node on each of `nodes` nodes split over its
    tasks, or one CPU device a process; None when it sees them."""
    here = gpus_per_node // tasks_per_node if gpus_per_node else 1
    total = nodes * (gpus_per_node or tasks_per_node)
    if (seen, seen_here) == (total, here):
        return None
    if not gpus_per_node:
        return f"JAX sees {seen_here} CPU device(s) in this process and {seen} in the run, not 1 and {total}: unset XLA_FLAGS' device count"
    return (
        f"JAX sees {seen_here} GPU(s) in this process and {seen} in the run, but launch.gpus_per_job {gpus_per_node} over "
        f"launch.slurm.tasks_per_node {tasks_per_node} on {nodes} node(s) promise {here} and {total}: set "
        "launch.slurm.tasks_per_node to launch.gpus_per_job (one process a GPU), or check the GPUs SLURM gives each task"
    )


def tpu_device_files() -> list[str]:
    """A TPU VM's chips, by their device files: /dev/accel<n> (TPU v4 and earlier), /dev/vfio/<n>
    (v5e and later; /dev/vfio/vfio alone is no TPU)."""
    found = [str(p) for p in sorted(Path("/dev").glob("accel*"))]
    return found + [str(p) for p in sorted(Path("/dev/vfio").glob("*")) if p.name.isdigit()]


def device_memory_bytes(launch: LaunchSpec, n_runs: int | None = None) -> int | None:
    """Memory of one job's device, for plan's check that every run fits: launch.device_memory_gb
    (GiB) if given; a local GPU job's: the smallest GPU visible here (nvidia-smi, honouring
    CUDA_VISIBLE_DEVICES), over launch.jobs_per_gpu; a CPU job's: slurm.mem_gb under SLURM, else
    this machine's memory (or its cgroup's limit) over the jobs that run here at once (of n_runs),
    as the largest runs of a sweep may run together. None where unknown (no check): a SLURM GPU
    job (SLURM picks its node, not this one), a TPU VM, no GPU memory from nvidia-smi, SLURM
    without mem_gb."""
    if launch.device_memory_gb is not None:
        return int(launch.device_memory_gb * GIB)
    if launch.gpus_per_job:
        smallest = None if launch.executor == Executor.SLURM else _smallest_gpu_memory()
        return None if smallest is None else smallest // launch.jobs_per_gpu
    if tpu_device_files():
        return None
    if launch.executor == Executor.SLURM:
        return None if launch.slurm.mem_gb is None else int(launch.slurm.mem_gb * GIB)
    memory = _machine_memory()
    at_once = max_parallel(launch, n_runs or 1) if launch.executor == Executor.LOCAL else 1
    return None if memory is None else memory // max(1, min(at_once, n_runs or at_once))


def _smallest_gpu_memory() -> int | None:
    """Bytes of the smallest GPU that local jobs may use (available_gpus), by nvidia-smi."""
    query = ["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    mib = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        index, uuid, total = (part.strip() for part in line.split(","))
        if total.isdigit():
            mib[index] = mib[uuid] = int(total)
    visible = [mib.get(name) for name in available_gpus()]
    known = [m for m in visible if m is not None]
    return None if not visible or len(known) < len(visible) else min(known) * 2**20


def _machine_memory() -> int | None:
    """This machine's memory (/proc/meminfo MemTotal), or its cgroup's limit if lower."""
    try:
        total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    return min(total, int(limit)) if limit.isdigit() else total
