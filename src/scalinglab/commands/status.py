"""`scalinglab status` and `scalinglab cancel`: where every run of a sweep stands, from its results
and the scheduler; cancelling its queued and running SLURM jobs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..launch import jobs
from ..store.frame import load
from ..store.layout import SweepDir
from ..store.runs import Role, Status

COLORS = {
    Status.DONE: "green",
    Status.RUNNING: "cyan",
    Status.FAILED: "red",
    Status.DIVERGED: "red",
    Status.DAMAGED: "red",
    Status.CANCELLED: "yellow",
    Status.PREEMPTED: "yellow",
}


def sweep_runs(path: str) -> tuple[SweepDir, list[dict]]:
    """Every run of a results/<sweep> folder, cooldown trunks included, by N, D and seed."""
    rows = load(path, trunks=True).to_dict("records")
    damaged = [r for r in rows if r["status"] == Status.DAMAGED]  # their N and D may be unknown
    ordered = sorted((r for r in rows if r not in damaged), key=lambda r: (r["N"], r["D"], r["seed"]))
    return SweepDir(Path(path)), ordered + damaged


def _states(path: str, sweep: SweepDir, rows: list[dict]) -> dict:
    try:
        states = {s.run_id: s for s in jobs.run_states(sweep, [r["run_id"] for r in rows])}
    except jobs.SlurmError as e:
        raise UsageError(f"{path}: {e}") from e
    for r in rows:  # a damaged run.json: whatever its summary says, the run is not usable as it is
        if r["status"] == Status.DAMAGED:
            states[r["run_id"]] = jobs.RunState(r["run_id"], Status.DAMAGED, states[r["run_id"]].job_id, r["error"])
    return states


def main(args, console: Console) -> int:
    sweep, rows = sweep_runs(args.path)
    states = _states(args.path, sweep, rows)
    table = Table(title=f"{sweep.name}: {len(rows)} runs")
    for col in ("run_id", "N", "D", "role", "state", "job", "detail"):
        table.add_column(col, justify="left" if col in ("state", "detail") else "right")
    for r in rows:
        st = states[r["run_id"]]
        state = f"[{COLORS[st.state]}]{st.state}[/]" if st.state in COLORS else st.state
        role = "trunk" if r.get("role") == Role.TRUNK else "branch" if pd.notna(r.get("trunk_id")) else ""
        size = [f"{int(r[k]):,}" if pd.notna(r.get(k)) else "?" for k in ("N", "D")]
        table.add_row(r["run_id"], *size, role, state, st.job_id or "", st.detail)
    console.print(table)
    counts = {state: sum(s.state == state for s in states.values()) for state in Status}
    console.print(" · ".join(f"{n} {state}" for state, n in counts.items() if n))
    return 0


def cancel(args, console: Console) -> int:
    sweep, rows = sweep_runs(args.path)
    try:
        cancelled = jobs.cancel(sweep, [r["run_id"] for r in rows])
    except jobs.SlurmError as e:
        raise UsageError(f"{args.path}: {e}") from e
    if not cancelled:
        console.print("no queued or running SLURM jobs in this sweep (local jobs stop with Ctrl-C on their `scalinglab run`)")
        return 0
    ids = ", ".join(str(s.job_id) for s in cancelled)
    console.print(f"cancelled {len(cancelled)} job(s): {ids}; `scalinglab run` trains their runs again")
    return 0
