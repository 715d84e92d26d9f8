"""Dispatch: a sweep's runs as submitit jobs, through the debug (in process), local (subprocesses)
or slurm executor. Completed runs are skipped, runs another process is training are watched, the
rest go to the Scheduler, which shows done / running / failed and an ETA. No JAX."""

from __future__ import annotations

from rich.console import Console

from ..store import runs
from ..store.layout import SweepDir
from ..sweep.runspec import RunSpec
from ..sweep.spec import LaunchSpec
from ..sweep.types import Executor
from .scheduler import Outcome, Scheduler


def launch(plan: list[RunSpec], launch_spec: LaunchSpec, sweep: SweepDir, console: Console | None = None) -> Outcome:
    """Trains every run of `plan` not already complete in the sweep's folder; returns the counts."""
    console = console or Console()
    outcome = Outcome()
    todo, elsewhere = [], []  # to train here; being trained by another process (its lock is held)
    for run in plan:
        run_dir = sweep.run(run.run_id)
        if runs.is_complete(run_dir):
            if runs.read_spec(run_dir) is None:  # lost or damaged: the plan knows what it said
                runs.write_spec(run_dir, run.record())
            outcome.skipped += 1
        elif launch_spec.executor != Executor.SLURM and runs.is_locked(run_dir):  # slurm: its queued and running jobs are watched
            elsewhere.append((run, run_dir))
        else:
            runs.write_spec(run_dir, run.record())
            run_dir.summary.unlink(missing_ok=True)
            todo.append((run, run_dir))
    if outcome.skipped:
        console.print(f"skipping {outcome.skipped} completed run(s)")
    if elsewhere:
        console.print(f"waiting for {len(elsewhere)} run(s) that another process is training")
    if not todo and not elsewhere:
        return outcome
    return Scheduler(launch_spec, sweep, todo, elsewhere, console, outcome).run()
