"""Curves from a sweep's table: `scalinglab.results.load(path, per_eval=True, trunks=True)`'s
rows, one Curve per run, its rate at every step rebuilt from its run.json columns."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from ...errors import FitError
from .curve import Curve
from .rates import lr_per_step_from_run, schedule_of

NEEDED = ("run_id", "N", "step")


def curves_from_frame(df: pd.DataFrame, loss_column: str = "L", shared: bool = False) -> list[Curve]:
    """One Curve per run_id (in order of N, then run_id), observing `loss_column` (L, the
    validation loss; or train_loss) at its rows' steps; rows without that loss are skipped. A
    cooldown branch's table repeats its trunk's evaluations up to the branch point: where the
    trunk is among the rows, those are left to the trunk (each measurement counted once in a
    joint fit) unless `shared`."""
    missing = [c for c in (*NEEDED, loss_column) if c not in df.columns]
    if missing:
        raise FitError(f"the table has no column {', '.join(missing)}; curves need run_id, N, step and the loss")
    present = set(df["run_id"])
    curves = []
    for run_id, rows in df.sort_values(["N", "run_id", "step"]).groupby(["N", "run_id"], sort=False):
        rows = rows[np.isfinite(rows[loss_column].to_numpy(dtype=float))].drop_duplicates("step", keep="last")
        if not shared and _branch_of(rows, present):
            rows = rows[rows["step"] > rows["decay_start"].iloc[0]]
        if len(rows):
            curves.append(_curve(run_id[1], rows, loss_column))
    return curves


def _branch_of(rows: pd.DataFrame, present: set[Hashable]) -> bool:
    """Whether the run is a branch of a trunk that is among the rows."""
    trunk = rows["trunk_id"].iloc[0] if "trunk_id" in rows.columns else None
    return isinstance(trunk, str) and trunk in present and "decay_start" in rows.columns


def _curve(run_id: Hashable, rows: pd.DataFrame, loss_column: str) -> Curve:
    record = {str(k): v for k, v in rows.iloc[0].items()}
    lr, warmup = lr_per_step_from_run(record)
    steps, loss = rows["step"].to_numpy(dtype=int), rows[loss_column].to_numpy(dtype=float)
    return Curve(str(run_id), float(rows["N"].iloc[0]), lr, steps, loss, warmup, label=schedule_of(record).label())
