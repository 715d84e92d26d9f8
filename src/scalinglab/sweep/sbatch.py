"""Which sbatch flags `launch.slurm.extra` may hold: sbatch's long option names (SLURM 22.05 to 24.11),
less those scalinglab or submitit set themselves. A key that is none of them is refused before
anything is submitted, instead of failing every job of the array at sbatch time."""

from __future__ import annotations

import difflib

from ..errors import SpecError

SBATCH_OPTIONS = frozenset(
    """
account acctg-freq batch bb bbf begin chdir cluster-constraint clusters comment constraint container
container-id contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task deadline
delay-boot dependency distribution exclude exclusive export export-file extra extra-node-info
get-user-env gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags
hint hold ignore-pbs input kill-on-invalid-dep license licenses mail-type mail-user mcs-label mem
mem-bind mem-per-cpu mem-per-gpu mincpus network nice no-kill no-requeue nodefile nodelist nodes
ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket oom-kill-step overcommit
oversubscribe partition power prefer priority profile propagate qos reboot requeue reservation
resv-ports segment sockets-per-node spread-job stepmgr switches thread-spec threads-per-core time
time-min tmp tres-bind tres-per-task uid use-min-nodes wait-all-nodes wckey
""".split()
)

# Set from the sweep's own fields, or by submitit for every job (its script, array and signals).
OWN = {
    "partition": "launch.slurm.partition",
    "account": "launch.slurm.account",
    "qos": "launch.slurm.qos",
    "constraint": "launch.slurm.constraint",
    "time": "launch.slurm.time_min",
    "nodes": "launch.slurm.nodes",
    "cpus-per-task": "launch.slurm.cpus_per_task",
    "mem": "launch.slurm.mem_gb",
    "gpus-per-node": "launch.gpus_per_job",
    "ntasks-per-node": "launch.slurm.tasks_per_node",
}
SUBMITIT = {"array", "error", "input", "job-name", "open-mode", "output", "parsable", "signal", "wait", "wrap"}


def check_extra(extra: dict[str, str]) -> None:
    """Refuses keys of launch.slurm.extra that sbatch does not know or that are set elsewhere, and
    values that would break the job script (a newline would start a line of its own)."""
    for key, value in extra.items():
        where = f"launch.slurm.extra.{key}"
        if key in OWN:
            raise SpecError(f"{where}: set by {OWN[key]}; give it there")
        if key in SUBMITIT:
            raise SpecError(f"{where}: set by scalinglab for every job (submitit's script); remove it")
        if key not in SBATCH_OPTIONS:
            close = difflib.get_close_matches(key, sorted(SBATCH_OPTIONS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "give a long option name of sbatch without the dashes"
            raise SpecError(f"{where}: not an sbatch option; {hint}")
        if "\n" in value or "\r" in value:
            raise SpecError(f"{where}: the value holds a line break; give it on one line")
