"""A sweep's loss curves, per run, for the curve laws: the dense training curve (its curve points,
train_loss) or the validation evaluations (L), each run's schedule rebuilt from its run.json;
cooldown branches as curves_from_frame leaves them (a trunk's points counted once, with the
trunk). No JAX."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...errors import FitError
from ...store.frame import load
from ...store.runs import Status
from .curve import Curve
from .frame import curves_from_frame
from .sizes import HUBER_DELTA, SKIP_EARLY, CurveLoss, SizeCurveFit, SkippedSize, fit_sizes

COLUMN = {CurveLoss.TRAIN: "train_loss", CurveLoss.VAL: "L"}
# A run's evaluations make a better curve than its training curve from this many on: they score
# the same held-out text each time, while a curve point's batches differ in difficulty (on the
# built-in corpus 1.3% from one point to the next). results/schedules (32 evaluations, 100 curve
# points a run): WSD's final loss predicted within 0.2-2.0% from its evaluations, 4-7% from its
# training curve.
MIN_EVALUATIONS = 16
LEFT_OUT = (Status.DIVERGED, Status.DAMAGED)  # a diverged run's losses leave any law; a damaged one's cannot be read


@dataclass(frozen=True)
class SweepCurves:
    curves: list[Curve]
    loss: CurveLoss


def sweep_curves(path: str | Path, loss: CurveLoss | None = None, warn: Callable[[str], None] = lambda line: None) -> SweepCurves:
    """Every usable run's curve. loss None: val where every run has MIN_EVALUATIONS evaluations or
    some run has no curve points (sweeps trained before curves were logged), else train. FitError,
    saying what to do, where the chosen loss has no points."""
    runs = load(path, trunks=True)
    usable = runs[~runs["status"].isin(LEFT_OUT)]
    if len(usable) < len(runs):
        warn(f"{len(runs) - len(usable)} diverged or damaged runs left out of the curve fits")
    evals = _points(load(path, per_eval=True, trunks=True), usable, "L")
    points = _centred(load(path, curves=True, trunks=True))
    points = _points(points, usable, "train_loss")
    measured = set(evals.get("run_id", ())) | set(points.get("run_id", ()))
    has_points = set(points.get("run_id", ()))
    if loss is None:
        dense = bool(has_points) and measured <= has_points
        loss = CurveLoss.VAL if not dense or _evaluations_each(evals) >= MIN_EVALUATIONS else CurveLoss.TRAIN
    table = points if loss == CurveLoss.TRAIN else evals
    if table.empty:
        fix = "use --curve-loss val (its evaluations)" if loss == CurveLoss.TRAIN else "train its runs first"
        raise FitError(f"{path}: no run has {'curve points' if loss == CurveLoss.TRAIN else 'evaluations'}; {fix}")
    if loss == CurveLoss.TRAIN and measured - has_points:
        warn(f"{len(measured - has_points)} runs have no curve points (trained before curves were logged); left out")
    return SweepCurves(curves_from_frame(table, COLUMN[loss]), loss)


def _evaluations_each(evals: pd.DataFrame) -> int:
    """The fewest evaluations any run has (0 for none)."""
    return int(evals.groupby("run_id").size().min()) if not evals.empty else 0


def _centred(points: pd.DataFrame) -> pd.DataFrame:
    """Curve points at the middle of the steps each averages: a mean over a falling stretch is
    the loss at its middle, not at its end (at its end, a cooldown's points would read high)."""
    if points.empty or "n_steps" not in points:
        return points
    return points.assign(step=points["step"] - (points["n_steps"] - 1) // 2)


def _points(df: pd.DataFrame, runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """The measured points (run_id, step and the loss) beside their run's run.json columns, taken
    from the one-row-per-run table: a point's own lr (the rate at that step) must not stand in for
    the run's peak rate, run.json's lr, which its schedule is rebuilt from."""
    if df.empty or column not in df:
        return pd.DataFrame()
    ours = ["run_id", "step", column]
    return df[ours].merge(runs.drop(columns=[c for c in ours[1:] if c in runs]), on="run_id", how="inner")


def fit_sweep_curves(
    path: str | Path,
    law: str = "multi_power",
    loss: CurveLoss | str | None = None,
    bootstrap: int = 0,
    huber_delta: float = HUBER_DELTA,
    warn: Callable[[str], None] = lambda line: None,
    skip_early: float = SKIP_EARLY,
) -> tuple[list[SizeCurveFit], list[SkippedSize], CurveLoss]:
    """The curve law fitted jointly per model size N to a sweep's runs (loss: train, val or None
    for the default, see sweep_curves): (the sizes fitted, those skipped and why, the loss used)."""
    found = sweep_curves(path, None if loss is None else CurveLoss(loss), warn)
    fits, skipped = fit_sizes(found.curves, law, bootstrap, huber_delta, skip_early=skip_early)
    return fits, skipped, found.loss
