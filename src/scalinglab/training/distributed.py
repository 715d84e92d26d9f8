"""One run over several processes (the tasks of one SLURM job, on one node or many): JAX's own
distributed runtime, started from SLURM's environment before any device is touched, and the few
decisions the processes must take together. Process 0 alone writes the run's files.

Preemption: every process must save the same step together (an orbax save is collective), so a
warning seen by one process cannot start a save in its signal handler. It becomes a notice of
JAX's preemption service (the one its SIGTERM handler gives), which picks a step every process
reaches; reached_preemption_sync_point says when (jax.experimental.multihost_utils)."""

from __future__ import annotations

import os
import signal

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(gpus: int, local_device_ids: list[int] | None = None) -> None:
    """Joins this process to its run's others, from SLURM's environment (SLURM_NTASKS, SLURM_PROCID,
    the first node as coordinator). CPU processes exchange gradients over gloo. local_device_ids:
    the GPUs this process owns (launch.resources.task_gpu_ids); without them JAX gives each SLURM
    task one GPU, whatever the job was given."""
    if not gpus:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(local_device_ids=local_device_ids)


def device_counts() -> tuple[int, int]:
    """The devices of the run and of this process, as JAX sees them once initialized."""
    return jax.device_count(), jax.local_device_count()


def is_distributed() -> bool:
    return jax.process_count() > 1


def is_main() -> bool:
    """Whether this process keeps the run's files (metrics, summary, requeue records)."""
    return jax.process_index() == 0


def main_decides(flag: bool) -> bool:
    """Process 0's `flag`, on every process (a collective: every process must call it)."""
    if not is_distributed():
        return flag
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def barrier(name: str) -> None:
    """Waits until every process gets here (after process 0 changed files the others read)."""
    if is_distributed():
        multihost_utils.sync_global_devices(name)


def notice_preemption() -> None:
    """Gives JAX's preemption service the notice its SIGTERM handler would: safe in a signal
    handler, and one process's notice reaches them all."""
    os.kill(os.getpid(), signal.SIGTERM)


def reached_preemption_step(step: int) -> bool:
    """True, on every process at the same step, once some process had a preemption notice; to be
    called at every step."""
    return is_distributed() and multihost_utils.reached_preemption_sync_point(step)
