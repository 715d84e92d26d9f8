"""Loss curves from any table (`scalinglab fit --curves --csv FILE --map run=COL --map step=COL
--map lr=COL --map loss=COL [--map N=COL]`), one row per logged step of a run, and a schedule to
predict along (`--schedule FILE`, columns step and lr). Rates are listed at some steps: between
them the rate is interpolated, before the first a linear warmup rises from 0
(lr_per_step_from_table). Every bad cell is named by its row and column. No JAX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FitError, UsageError
from .curves import Curve, lr_per_step_from_table
from .table import CURVE_MAPS, label, mapped, numbers, read_table

NEEDED = ("run", *CURVE_MAPS)


def table_curves(df: pd.DataFrame, mapping: dict[str, str]) -> tuple[list[Curve], bool]:
    """(one Curve per run, whether the table gives N): without --map N every run is size 0, one
    group. FitError naming the row and column of the first bad cell."""
    extra = next((k for k in mapping if k not in (*NEEDED, "N")), None)
    if extra is not None:
        raise UsageError(f"--map {extra}={mapping[extra]}: not read with --curves; map run, step, lr and loss (and N to group by size)")
    renamed = mapped(df, mapping)
    missing = [k for k in NEEDED if k not in renamed]
    if missing:
        columns = list(df.columns)
        raise FitError(f"the table has no column for {', '.join(missing)}; columns are {columns}; map one with --map {missing[0]}=COLUMN")
    sized = "N" in renamed
    values = numbers(renamed, ["step", "lr", "loss", *(["N"] if sized else [])], mapping, positive=("loss", "N"))
    check_steps_and_rates(values, renamed, mapping)
    empty = np.flatnonzero(renamed["run"].isna().to_numpy())
    if len(empty):
        raise FitError(f"row {empty[0] + 1}, column {label('run', mapping)}: is empty; give every row its run")
    values["run"] = renamed["run"].astype(str).to_numpy()
    _once_per_step(values)
    return [_curve(str(run), rows, sized, mapping) for run, rows in values.groupby("run", sort=False)], sized


def check_steps_and_rates(values: pd.DataFrame, raw: pd.DataFrame, mapping: dict[str, str]) -> None:
    """Steps whole and from 1 on, rates 0 or more: FitError naming the first cell that is not."""
    step, lr = values["step"].to_numpy(), values["lr"].to_numpy()
    checks = (("step", (step < 1) | (step != np.round(step)), "a whole step from 1 on"), ("lr", lr < 0, "a rate of 0 or more"))
    for name, bad, need in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            raise FitError(f"row {rows[0] + 1}, column {label(name, mapping)}: {str(raw[name].iloc[rows[0]])!r} is not {need}")


def _once_per_step(values: pd.DataFrame) -> None:
    twice = values[values.duplicated(["run", "step"], keep=False)]
    if len(twice):
        first = twice.iloc[0]
        rows = twice.index[(twice["run"] == first["run"]) & (twice["step"] == first["step"])][:2] + 1
        what = f"run {first['run']!r} lists step {int(first['step'])} twice"
        raise FitError(f"rows {rows[0]} and {rows[1]}: {what}; give one row per logged step of a run")


def _curve(run: str, rows: pd.DataFrame, sized: bool, mapping: dict[str, str]) -> Curve:
    rows = rows.sort_values("step")
    if sized and rows["N"].nunique() > 1:
        a, b = rows["N"].unique()[:2]
        raise FitError(f"run {run!r}: column {label('N', mapping)} has both {a:g} and {b:g}; a run has one size")
    steps, lrs = rows["step"].to_numpy(dtype=int), rows["lr"].to_numpy()
    lr, _ = lr_per_step_from_table(steps, lrs)
    size = float(rows["N"].iloc[0]) if sized else 0.0
    return Curve(run, size, lr, steps, rows["loss"].to_numpy(), min(rise_end(steps, lrs), len(lr) - 1))


def rise_end(steps: np.ndarray, lrs: np.ndarray) -> int:
    """The warmup a curve's fit leaves out: up to the listed step where the rate stops rising (the
    first listed step itself where the table starts at its peak, as lr_per_step_from_table's warmup)."""
    stops = np.flatnonzero(np.diff(lrs) <= 0)
    return int(steps[stops[0]] if len(stops) else steps[-1])


def read_schedule(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """--schedule FILE: (steps, rates), columns step and lr, steps increasing. UsageError naming
    the file, and the row and column of a bad cell."""
    flag = f"--schedule {path}"
    if not Path(path).is_file():
        raise UsageError(f"{flag}: no such file")
    df = read_table(Path(path), flag="--schedule")
    missing = [c for c in ("step", "lr") if c not in df]
    if missing:
        raise UsageError(f"{flag}: no column {', '.join(map(repr, missing))}; expected columns step and lr, one row per listed step")
    try:
        values = numbers(df, ["step", "lr"], {})
        check_steps_and_rates(values, df, {})
    except FitError as e:
        raise UsageError(f"{flag}: {e}") from None
    steps = values["step"].to_numpy(dtype=int)
    back = np.flatnonzero(np.diff(steps) <= 0)
    if len(back):
        where = f"row {back[0] + 2}, column 'step': {steps[back[0] + 1]} does not come after {steps[back[0]]}"
        raise UsageError(f"{flag}: {where}; list each step once, in increasing order")
    return steps, values["lr"].to_numpy()
