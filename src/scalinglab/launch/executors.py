"""submitit executors for a sweep's jobs: local subprocesses, this process (debug), or SLURM with
the sweep's sbatch resources. No JAX."""

from __future__ import annotations

from pathlib import Path

import submitit

from ..sweep.spec import LaunchSpec
from ..sweep.types import Executor
from .resources import max_parallel


def make_executor(launch: LaunchSpec, folder: Path, n_runs: int) -> submitit.Executor:
    timeout_min = launch.slurm.time_min
    if launch.executor == Executor.LOCAL:  # its jobs see no GPU; a GPU job sets its own (job.setup_job)
        local = submitit.LocalExecutor(folder=folder)
        local.update_parameters(timeout_min=timeout_min)
        return local
    s = launch.slurm
    executor = submitit.AutoExecutor(folder=folder, cluster=launch.executor, slurm_max_num_timeout=s.max_requeues)
    if launch.executor == Executor.SLURM:
        optional = {
            "slurm_partition": s.partition,
            "slurm_account": s.account,
            "slurm_qos": s.qos,
            "slurm_constraint": s.constraint,
            "mem_gb": s.mem_gb,
        }
        executor.update_parameters(
            timeout_min=timeout_min,
            nodes=s.nodes,
            tasks_per_node=launch.tasks_per_node,
            cpus_per_task=launch.cpus_per_task,
            gpus_per_node=launch.gpus_per_job,
            slurm_array_parallelism=max_parallel(launch, n_runs),
            slurm_setup=list(s.setup),
            # One run over several processes: a process that dies ends them all (it failed), rather
            # than leaving the others blocked in a collective.
            slurm_srun_args=["--kill-on-bad-exit=1"] if launch.processes > 1 else [],
            slurm_additional_parameters=dict(s.extra),
            **{k: v for k, v in optional.items() if v is not None},
        )
    return executor
