"""Task (ability) scaling: a downstream task's accuracy predicted from (N, D). Pure functions over
arrays and DataFrames; no JAX.

- Two steps (Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model
  Ladders"): step 1, the task loss of each run's final checkpoint as L(N, D) = E + A/N^alpha +
  B/D^beta (the chinchilla law); step 2, accuracy as a sigmoid of the task loss (the sigmoid law)
  over every checkpoint past the first 10% of its run, falling from a ceiling (acc as the task loss
  goes to 0) to chance. Both steps see each checkpoint averaged with its run's checkpoints in the
  5% of the run's tokens before it (smoothed).
- One step, for comparison: accuracy as a sigmoid rising in log10 C_6ND over the final checkpoints.
- Bootstrap over runs (a resampled run brings all its checkpoints), both steps refitted each time.
- Backtest: fit without the largest models, predict their final accuracy; errors in points.

Inputs are DataFrames with columns run, N, D, task_loss, acc: one row per checkpoint, D the tokens
the run had trained on at it (at its final checkpoint, the run's D).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd

from ..errors import FitError
from ..sweep.spec import FitSpec
from .laws import Fitted, Loss
from .laws.bootstrap import draw, in_processes, interval, seed_chunks, seeds
from .laws.chinchilla import CHINCHILLA
from .laws.sigmoid import Sigmoid
from .laws.solve import fit
from .parts import LawFit
from .table import label, mapped, numbers
from .taskfit import TaskExtrapolation, TaskHeldOut, TwoStepFit

COLUMNS = ("run", "N", "D", "task_loss", "acc")
STEP2_FROM = 0.1  # step 2 skips each run's first 10% of tokens: early checkpoints are off the curve
# Both steps see each checkpoint's task loss and accuracy averaged over the run's checkpoints in the
# SMOOTHING x (its final D) tokens up to it, as OLMo-ladder's moving average of 5 checkpoints does
# on its ~100 a run (on the ladder it moves 7B and 13B from 2 and 1 to 4 of 7 tasks within 2
# points). Sparse evaluations (a sweep's, a few a run) are left as they are.
SMOOTHING = 0.05
MIN_RISE = 0.01  # accuracy must pass chance by a point somewhere for a sigmoid to mean anything
# Step 2's anchor, as in allenai/OLMo-ladder: a model with zero task loss answers everything.
# Without it the ceiling is set by the low-accuracy end alone and wanders (on the ladder's
# runs below 1B, arc_challenge's fell to 0.38, below the 1.3B runs' own accuracy).
ANCHOR = (0.0, 1.0)


@dataclass(frozen=True)
class TwoStep:
    """Step 1, task loss from (N, D); step 2, accuracy from task loss."""

    step1: Fitted
    step2: Fitted

    def __call__(self, N, D):
        return self.step2(self.step1(N, D))


@dataclass(frozen=True)
class SingleStep:
    """Accuracy from compute alone: a sigmoid in log10 C_6ND."""

    law: Fitted

    def __call__(self, N, D):
        return self.law(np.log10(6 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)))


def task_columns(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """A user's table -> columns run, N, D, task_loss, acc. mapping: our name -> their column.
    Without a run column every row is its own run. FitError naming the first cell that is not a
    positive number (acc: a number in [0, 1])."""
    renamed = mapped(df, mapping)
    missing = [c for c in COLUMNS[1:] if c not in renamed]
    if missing:
        raise FitError(
            f"the table has no column for {', '.join(missing)}; columns are {list(df.columns)}; map one with --map {missing[0]}=COLUMN"
        )
    out = numbers(renamed, list(COLUMNS[1:]), mapping, positive=("N", "D", "task_loss"))
    beyond = np.flatnonzero((out["acc"] < 0) | (out["acc"] > 1))
    if len(beyond):
        row = beyond[0]
        raise FitError(f"row {row + 1}, column {label('acc', mapping)}: {out['acc'].iloc[row]:g} is not in [0, 1]; acc is a share")
    out.insert(0, "run", renamed["run"].astype(str) if "run" in renamed else np.arange(len(out)).astype(str))
    return out


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's final checkpoint: its row with the largest D."""
    return frame.loc[frame.groupby("run", sort=False)["D"].idxmax()]


def _positions(frame: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per run (in order of first appearance): the position of its final row and the positions of
    the rows step 2 fits. Resamples pick runs, then take these."""
    codes = pd.factorize(frame["run"])[0]
    D = frame["D"].to_numpy(dtype=float)
    final_D = pd.Series(D).groupby(codes).transform("max").to_numpy()
    finals = pd.Series(D).groupby(codes).idxmax().to_numpy()
    later = STEP2_FROM * final_D <= D
    return finals, [np.flatnonzero(later & (codes == r)) for r in range(len(finals))]


def fit_sigmoid(x, acc, chance: float, falling: bool, x_name: str) -> Fitted:
    """The sigmoid law of acc against x (falling: x a task loss, fitted with ANCHOR; else rising)."""
    x, y = np.asarray(x, dtype=float), np.asarray(acc, dtype=float)
    if len(np.unique(x)) < 4:  # counted before the anchor adds a point
        raise FitError(f"acc sigmoid: need at least 4 distinct points, got {len(np.unique(x))}")
    if y.max() < chance + MIN_RISE:
        raise FitError(f"acc sigmoid: accuracy never passes chance ({chance:.3g}) by a point; nothing to fit")
    if falling:
        x, y = np.append(x, ANCHOR[0]), np.append(y, ANCHOR[1])
    return fit(Sigmoid(chance, falling, x_name), (x,), y)


def _fit_at(arrays, finals, step2, chance, spec: FitSpec) -> TwoStep:
    N, D, L, acc = arrays
    # One order whatever the input's: with few sizes varpro's polish can land in different, nearly
    # tied optima when only the row order differs (ladder arc_challenge below 1B: alpha 0.62 or 1.06).
    finals = finals[np.lexsort((L[finals], D[finals], N[finals]))]
    step1 = fit(CHINCHILLA, (N[finals], D[finals]), L[finals], Loss(spec.huber_delta), spec.method)
    return TwoStep(step1, fit_sigmoid(L[step2], acc[step2], chance, falling=True, x_name="task_loss"))


def _arrays(frame: pd.DataFrame):
    frame = smoothed(frame)
    return tuple(frame[c].to_numpy(dtype=float) for c in ("N", "D", "task_loss", "acc"))


def smoothed(frame: pd.DataFrame, window: float = SMOOTHING) -> pd.DataFrame:
    """task_loss and acc of each checkpoint averaged over its run's checkpoints with D in
    [D - window * the run's final D, D]; rows and their order unchanged (the index renumbered)."""
    frame = frame.reset_index(drop=True)
    out = frame.copy()
    for rows in frame.groupby("run", sort=False).groups.values():
        D = frame.loc[rows, "D"].to_numpy(dtype=float)
        order = np.argsort(D, kind="stable")
        values = frame.loc[rows, ["task_loss", "acc"]].to_numpy(dtype=float)[order]
        sums = np.vstack([np.zeros(2), np.cumsum(values, axis=0)])
        end = np.arange(1, len(D) + 1)
        start = np.searchsorted(D[order], D[order] - window * D.max(), side="left")
        mean = np.empty_like(values)
        mean[order] = (sums[end] - sums[start]) / (end - start)[:, None]
        out.loc[rows, ["task_loss", "acc"]] = mean
    return out


def fit_two_step(frame: pd.DataFrame, chance: float, spec: FitSpec = FitSpec()) -> TwoStep:
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise FitError("no runs to fit the task laws on")
    finals, step2 = _positions(frame)
    return _fit_at(_arrays(frame), finals, np.concatenate(step2), chance, spec)


def bootstrap_two_step(frame: pd.DataFrame, chance: float, spec: FitSpec = FitSpec(), seed: int = 0) -> list[TwoStep]:
    """Both steps refitted on spec.bootstrap resamples of the runs (a run brings all its
    checkpoints). Resamples too degenerate to fit are dropped."""
    frame = frame.reset_index(drop=True)
    finals, step2 = _positions(frame)
    seed_list = seeds(spec.bootstrap, seed)
    # A resample takes seconds (few sizes make a flat L-BFGS-B valley): one worker per core from 4 on.
    workers = len(os.sched_getaffinity(0)) if spec.bootstrap >= 4 else 1
    calls = [(_arrays(frame), finals, step2, chance, spec, c) for c in seed_chunks(seed_list, workers)]
    return in_processes(_resample_two_step, calls) if seed_list else []


def _resample_two_step(arrays, finals, step2, chance, spec, seed_list) -> list[TwoStep]:
    """Both steps on one resample of the runs per seed (none where one is too degenerate to fit)."""
    out = []
    for s in seed_list:
        pick = draw(len(finals), s)
        try:
            out.append(_fit_at(arrays, finals[pick], np.concatenate([step2[r] for r in pick]), chance, spec))
        except FitError:
            continue
    return out


class TaskPoint(TypedDict):
    """A task's prediction at (N, D), as `fit --csv --json` prints it."""

    N: float
    D: float
    task_loss: float
    acc: float
    acc_ci: NotRequired[tuple[float, float]]
    """The bootstrap interval, where there are resamples."""


def predict_two_step(model: TwoStep, boots: list[TwoStep], N: float, D: float) -> TaskPoint:
    """Task loss and accuracy at (N, D); acc_ci, the bootstrap interval, when there are resamples."""
    out = TaskPoint(N=N, D=D, task_loss=float(model.step1(N, D)), acc=float(model(N, D)))
    if boots:
        out["acc_ci"] = interval([m(N, D) for m in boots])
    return out


def fit_single_step(frame: pd.DataFrame, chance: float) -> SingleStep:
    finals = final_rows(smoothed(frame))
    C_6ND = 6 * finals["N"].to_numpy(dtype=float) * finals["D"].to_numpy(dtype=float)
    return SingleStep(fit_sigmoid(np.log10(C_6ND), finals["acc"], chance, falling=False, x_name="log10 C_6ND"))


def held_out_predictions(
    frame: pd.DataFrame, held_out, model: TwoStep, boots: list[TwoStep], single: SingleStep | None = None
) -> pd.DataFrame:
    """The final checkpoints of the runs in held_out, with both steps' predictions (and the
    single step's) and the errors in accuracy points, 100 * (predicted - measured)."""
    out = final_rows(frame[frame["run"].isin(held_out)])[list(COLUMNS)].reset_index(drop=True)
    out["task_loss_pred"] = model.step1(out["N"], out["D"])
    out["acc_pred"] = model(out["N"], out["D"])
    if boots:
        out["acc_pred_ci"] = [interval([m(n, d) for m in boots]) for n, d in zip(out["N"], out["D"])]
    out["error_points"] = 100 * (out["acc_pred"] - out["acc"])
    if single is not None:
        out["acc_pred_single_step"] = single(out["N"], out["D"])
        out["single_step_error_points"] = 100 * (out["acc_pred_single_step"] - out["acc"])
    return out


def backtest(frame: pd.DataFrame, chance: float, held_out=None, spec: FitSpec = FitSpec(bootstrap=0)) -> pd.DataFrame:
    """Fits both laws without the runs in held_out (default: every run of the largest N) and
    predicts those runs' final accuracy. The fitted laws are in .attrs."""
    if held_out is None:
        held_out = frame.loc[frame["N"] == frame["N"].max(), "run"].unique()
    rest = frame[~frame["run"].isin(held_out)]
    model = fit_two_step(rest, chance, spec)
    boots = bootstrap_two_step(rest, chance, spec)
    single = fit_single_step(rest, chance)
    out = held_out_predictions(frame, held_out, model, boots, single)
    out.attrs.update(two_step=model, single_step=single, n_bootstrap=len(boots), n_fit_runs=rest["run"].nunique())
    return out


def two_step_fit(model: TwoStep, boots: list[TwoStep]) -> TwoStepFit:
    """Both steps' parameters, with bootstrap intervals when there are resamples."""
    return TwoStepFit(
        step1=LawFit.of(model.step1, [b.step1 for b in boots]),
        step2=LawFit.of(model.step2, [b.step2 for b in boots]),
        n_bootstrap=len(boots),
    )


def extrapolation(data: pd.DataFrame, held_out, model: TwoStep, boots: list[TwoStep], single: SingleStep | None) -> TaskExtrapolation:
    held = held_out_predictions(data, held_out, model, boots, single)
    if held.empty:
        raise FitError("no held-out runs evaluated on this task")
    rows = [
        TaskHeldOut(
            run_id=r["run"],
            N=r["N"],
            D=r["D"],
            acc=r["acc"],
            acc_pred=r["acc_pred"],
            acc_pred_ci=r.get("acc_pred_ci"),
            task_loss=r["task_loss"],
            task_loss_pred=r["task_loss_pred"],
            error_points=r["error_points"],
            single_step_error_points=r.get("single_step_error_points"),
        )
        for r in held.to_dict("records")
    ]
    single_errors = held["single_step_error_points"].abs().mean() if single is not None else None
    return TaskExtrapolation(
        held_out=rows,
        mean_abs_error_points=float(held["error_points"].abs().mean()),
        single_step_mean_abs_error_points=None if single_errors is None else float(single_errors),
    )
