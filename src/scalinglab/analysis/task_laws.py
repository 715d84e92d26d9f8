"""Task (ability) scaling: a downstream task's accuracy predicted from (N, D), and whether its curve
against model size is sharp. Pure functions over arrays and DataFrames; no JAX.

- Two steps (Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model
  Ladders"): step 1, the task loss of each run's final checkpoint as L(N, D) = E + A/N^alpha +
  B/D^beta (laws.fit_chinchilla); step 2, accuracy as a sigmoid of the task loss over every
  checkpoint past the first 10% of its run: acc = a / (1 + exp(-k (L - L0))) + b, where b is the
  ceiling (acc as L -> 0) and a + b = chance the floor (acc as L grows). Both steps see each
  checkpoint averaged with its run's checkpoints in the 5% of the run's tokens before it (smoothed).
- One step, for comparison: accuracy as a sigmoid in log10 C (C = 6ND) over the final checkpoints,
  from chance up to a fitted ceiling.
- Bootstrap over runs (a resampled run brings all its checkpoints), both steps refitted each time.
- Backtest: fit without the largest models, predict their final accuracy; errors in points.
- task_report: all of it for a sweep's evaluations, per task, with emergence (analysis/emergence.py)
  and how the spread between demonstration strategies changes with scale.

Inputs are DataFrames with columns run, N, D (tokens seen at that checkpoint), task_loss, acc.
"""

from __future__ import annotations

import os

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from ..errors import FitError
from .emergence import emergence
from .laws import DEFAULTS, PARAMS, Chinchilla, fit_chinchilla
from .uncertainty import LEVEL, attempt, in_processes, interval, seed_chunks

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
class Sigmoid:
    """acc = a / (1 + exp(-k (x - x0))) + b, k > 0: b is the level as x -> -inf, a + b as x -> +inf."""

    a: float
    b: float
    k: float
    x0: float
    n_points: int

    def __call__(self, x):
        return self.b + self.a * expit(self.k * (np.asarray(x, dtype=float) - self.x0))


@dataclass(frozen=True)
class TwoStep:
    """Step 1, task loss from (N, D); step 2, accuracy from task loss."""

    step1: Chinchilla
    step2: Sigmoid

    def __call__(self, N, D):
        return self.step2(self.step1(N, D))


@dataclass(frozen=True)
class SingleStep:
    """Accuracy from compute alone: a sigmoid in log10(6ND)."""

    law: Sigmoid

    def __call__(self, N, D):
        return self.law(np.log10(6 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)))


def task_columns(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """A user's table -> columns run, N, D, task_loss, acc. mapping: our name -> their column.
    Without a run column every row is its own run."""
    for ours, theirs in mapping.items():
        if theirs not in df:
            raise FitError(f"--map {ours}={theirs}: the table has no column {theirs!r}; columns are {list(df.columns)}")
    renamed = df.rename(columns={theirs: ours for ours, theirs in mapping.items()})
    missing = [c for c in COLUMNS[1:] if c not in renamed]
    if missing:
        raise FitError(f"the table has no column for {', '.join(missing)}; columns are {list(df.columns)}; "
                       f"map one with --map {missing[0]}=COLUMN")
    out = renamed[list(COLUMNS[1:])].apply(pd.to_numeric, errors="coerce")
    out.insert(0, "run", renamed["run"].astype(str) if "run" in renamed else np.arange(len(out)).astype(str))
    bad = ~np.isfinite(out[list(COLUMNS[1:])]).all(axis=1) | (out[["N", "D", "task_loss"]] <= 0).any(axis=1)
    bad |= (out["acc"] < 0) | (out["acc"] > 1)
    if bad.any():
        raise FitError(f"row {int(np.flatnonzero(bad)[0])}: N, D and task_loss must be positive numbers, acc a number in [0, 1]")
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
    later = D >= STEP2_FROM * final_D
    return finals, [np.flatnonzero(later & (codes == r)) for r in range(len(finals))]


def fit_sigmoid(x, acc, chance: float, falling: bool) -> Sigmoid:
    """acc between chance and a fitted ceiling (at most 1), by least squares. falling: acc falls
    as x grows (task loss; the fit then includes ANCHOR); else it rises (log compute)."""
    x, y = np.asarray(x, dtype=float), np.asarray(acc, dtype=float)
    if len(np.unique(x)) < 4:
        raise FitError(f"acc sigmoid: need at least 4 distinct points, got {len(np.unique(x))}")
    if y.max() < chance + MIN_RISE:
        raise FitError(f"acc sigmoid: accuracy never passes chance ({chance:.3g}) by a point; nothing to fit")
    sign = -1.0 if falling else 1.0
    if falling:
        x, y = np.append(x, ANCHOR[0]), np.append(y, ANCHOR[1])

    def residuals(p):  # p: ceiling, k, x0
        return chance + (p[0] - chance) * expit(sign * p[1] * (x - p[2])) - y

    def jacobian(p):
        s = expit(sign * p[1] * (x - p[2]))
        slope = (p[0] - chance) * s * (1 - s) * sign
        return np.column_stack([s, slope * (x - p[2]), -slope * p[1]])

    # For fixed k and x0 the ceiling enters linearly: solve it in closed form over a grid of
    # (k, x0), then polish the best cell. Cheap enough to run per bootstrap resample, and it
    # does not depend on where a local search happens to start.
    scale = np.ptp(x) or 1.0
    k, x0 = (g.reshape(-1, 1) for g in np.meshgrid(np.geomspace(0.3, 100, 12) / scale,
                                                   np.linspace(x.min() - scale, x.max() + scale, 25)))
    s = expit(sign * k * (x - x0))
    lift = np.clip((s @ (y - chance))[:, None] / np.maximum((s * s).sum(axis=1, keepdims=True), 1e-12), 1e-6, 1 - chance)
    best = int(np.argmin(((chance + lift * s - y) ** 2).sum(axis=1)))
    fit = least_squares(residuals, [chance + lift[best, 0], k[best, 0], x0[best, 0]], jacobian,
                        bounds=([chance, 0.0, -np.inf], [1.0, np.inf, np.inf]))
    ceiling, k, x0 = fit.x
    a, b = (chance - ceiling, ceiling) if falling else (ceiling - chance, chance)
    return Sigmoid(float(a), float(b), float(k), float(x0), len(y))


def _fit_at(arrays, finals, step2, chance, huber_delta, method) -> TwoStep:
    N, D, L, acc = arrays
    # One order whatever the input's: with few sizes varpro's polish can land in different, nearly
    # tied optima when only the row order differs (ladder arc_challenge below 1B: alpha 0.62 or 1.06).
    finals = finals[np.lexsort((L[finals], D[finals], N[finals]))]
    step1 = fit_chinchilla(N[finals], D[finals], L[finals], huber_delta, method)
    return TwoStep(step1, fit_sigmoid(L[step2], acc[step2], chance, falling=True))


def _arrays(frame: pd.DataFrame):
    frame = smoothed(frame)
    return tuple(frame[c].to_numpy(dtype=float) for c in ("N", "D", "task_loss", "acc"))


def smoothed(frame: pd.DataFrame, window: float = SMOOTHING) -> pd.DataFrame:
    """task_loss and acc of each checkpoint averaged over its run's checkpoints with D in
    [D - window * the run's final D, D]; rows and their order unchanged (the index renumbered)."""
    frame = frame.reset_index(drop=True)
    out = frame.copy()
    for _, rows in frame.groupby("run", sort=False).groups.items():
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


def fit_two_step(frame: pd.DataFrame, chance: float, huber_delta: float = DEFAULTS.huber_delta,
                 method: str = DEFAULTS.method) -> TwoStep:
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise FitError("no runs to fit the task laws on")
    finals, step2 = _positions(frame)
    return _fit_at(_arrays(frame), finals, np.concatenate(step2), chance, huber_delta, method)


def bootstrap_two_step(frame: pd.DataFrame, chance: float, n: int = DEFAULTS.bootstrap,
                       huber_delta: float = DEFAULTS.huber_delta, method: str = DEFAULTS.method,
                       seed: int = 0) -> list[TwoStep]:
    """Both steps refitted on n resamples of the runs (with replacement; a run brings all its
    checkpoints). Resamples too degenerate to fit are dropped."""
    frame = frame.reset_index(drop=True)
    finals, step2 = _positions(frame)
    seeds = [seed * 1_000_003 + i for i in range(n)]
    # A resample takes seconds (few sizes make a flat L-BFGS-B valley): one worker per core from 4 on.
    workers = len(os.sched_getaffinity(0)) if n >= 4 else 1
    calls = [(_arrays(frame), finals, step2, chance, huber_delta, method, c) for c in seed_chunks(seeds, workers)]
    return [m for m in in_processes(_resample_two_step, calls) if m is not None] if seeds else []


def _resample_two_step(arrays, finals, step2, chance, huber_delta, method, seeds) -> list[TwoStep | None]:
    """Both steps on one resample of the runs per seed (None where one is too degenerate to fit)."""
    out = []
    for s in seeds:
        pick = np.random.default_rng(s).integers(0, len(finals), len(finals))
        try:
            out.append(_fit_at(arrays, finals[pick], np.concatenate([step2[r] for r in pick]), chance, huber_delta, method))
        except FitError:
            out.append(None)
    return out


def predict_two_step(model: TwoStep, boots: list[TwoStep], N: float, D: float) -> dict:
    """Task loss and accuracy at (N, D); acc_ci, the bootstrap interval, when there are resamples."""
    out = {"N": N, "D": D, "task_loss": float(model.step1(N, D)), "acc": float(model(N, D))}
    if boots:
        out["acc_ci"] = interval([m(N, D) for m in boots])
    return out


def fit_single_step(frame: pd.DataFrame, chance: float) -> SingleStep:
    finals = final_rows(smoothed(frame))
    C = 6 * finals["N"].to_numpy(dtype=float) * finals["D"].to_numpy(dtype=float)
    return SingleStep(fit_sigmoid(np.log10(C), finals["acc"], chance, falling=False))


def held_out_predictions(frame: pd.DataFrame, held_out, model: TwoStep, boots: list[TwoStep],
                         single: SingleStep | None = None) -> pd.DataFrame:
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


def backtest(frame: pd.DataFrame, chance: float, held_out=None, n_bootstrap: int = 0,
             huber_delta: float = DEFAULTS.huber_delta, method: str = DEFAULTS.method) -> pd.DataFrame:
    """Fits both laws without the runs in held_out (default: every run of the largest N) and
    predicts those runs' final accuracy. The fitted laws are in .attrs."""
    if held_out is None:
        held_out = frame.loc[frame["N"] == frame["N"].max(), "run"].unique()
    rest = frame[~frame["run"].isin(held_out)]
    model = fit_two_step(rest, chance, huber_delta, method)
    boots = bootstrap_two_step(rest, chance, n_bootstrap, huber_delta, method)
    single = fit_single_step(rest, chance)
    out = held_out_predictions(frame, held_out, model, boots, single)
    out.attrs.update(two_step=model, single_step=single, n_bootstrap=len(boots), n_fit_runs=rest["run"].nunique())
    return out


def two_step_summary(model: TwoStep, boots: list[TwoStep]) -> dict:
    """Both steps' parameters, JSON-ready, with bootstrap intervals when there are resamples."""
    step1 = {k: getattr(model.step1, k) for k in PARAMS} | {"n_points": model.step1.n_points}
    s = model.step2
    step2 = {"a": s.a, "b": s.b, "k": s.k, "L0": s.x0, "floor": s.a + s.b, "ceiling": s.b, "n_points": s.n_points}
    if boots:
        step1["ci"] = {k: interval([getattr(m.step1, k) for m in boots]) for k in PARAMS}
        step2["ci"] = {k: interval([getattr(m.step2, f) for m in boots]) for k, f in
                       (("a", "a"), ("b", "b"), ("k", "k"), ("L0", "x0"))}
    return {"law": "L_task = E + A/N^alpha + B/D^beta; acc = a / (1 + exp(-k (L_task - L0))) + b",
            "step1": step1, "step2": step2, "n_bootstrap": len(boots)}


def _extrapolation(data, held_out, model, boots, single) -> dict:
    held = held_out_predictions(data, held_out, model, boots, single)
    if held.empty:
        raise FitError("no held-out runs evaluated on this task")
    keys = ["run", "N", "D", "acc", "acc_pred", *(["acc_pred_ci"] if boots else []), "task_loss", "task_loss_pred", "error_points"]
    out = {"held_out": held[keys].rename(columns={"run": "run_id"}).to_dict(orient="records"),
           "mean_abs_error_points": float(held["error_points"].abs().mean())}
    if single is not None:
        out["single_step_error_points"] = held["single_step_error_points"].tolist()
        out["single_step_mean_abs_error_points"] = float(held["single_step_error_points"].abs().mean())
    return out


def _emergence(finals: pd.DataFrame, kind: str) -> dict:
    """Accuracy against p_gold (multiple choice) or per-token accuracy (generation). Their standard
    errors over items: acc's as measured; the continuous metric's at most sqrt(m (1 - m) / items),
    the largest a mean of values in [0, 1] can have."""
    name = "p_gold" if kind == "multiple_choice" else "token_acc"
    m = finals[name].to_numpy(dtype=float)
    bound = np.sqrt(np.clip(m * (1 - m), 0, None) / finals["n_items"].to_numpy(dtype=float))
    return emergence(finals["N"], finals["acc"], m, finals["acc_se"], bound, names=("acc", name))


def report_rows(frame: pd.DataFrame, shots: int, strategy: str) -> pd.DataFrame:
    """A sweep's evaluations (results.load(path, tasks=True)) with these shots and strategy, in
    this module's columns: run_id as run, tokens seen as D (the run's planned D is dropped)."""
    rows = frame[(frame["shots"] == shots) & (frame["strategy"] == strategy)]
    return rows.drop(columns="D").rename(columns={"tokens": "D", "run_id": "run"})


def _task(rows: pd.DataFrame, fit, held_out_ids) -> dict:
    """One task's laws (fitted without the held-out runs), emergence and extrapolation."""
    data = rows.dropna(subset=["task_loss", "acc"])
    chance = float(rows["chance"].iloc[0])
    fitted = data[~data["run"].isin(held_out_ids)]
    out = {"kind": rows["kind"].iloc[0], "chance": chance, "n_runs": int(data["run"].nunique()),
           "n_fit_runs": int(fitted["run"].nunique())}
    try:
        single = fit_single_step(fitted, chance)
        out["single_step"] = {"law": "acc = a / (1 + exp(-k (log10 C - x0))) + b, C = 6ND"} | {
            k: getattr(single.law, k) for k in ("a", "b", "k", "x0", "n_points")}
    except FitError as e:
        single, out["single_step"] = None, {"skipped": str(e)}
    try:
        model = fit_two_step(fitted, chance, fit.huber_delta, fit.method)
    except FitError as e:
        out["two_step"] = out["extrapolation"] = {"skipped": str(e)}
    else:
        boots = bootstrap_two_step(fitted, chance, fit.bootstrap, fit.huber_delta, fit.method)
        out["two_step"] = two_step_summary(model, boots)
        out["extrapolation"] = attempt(_extrapolation, data, held_out_ids, model, boots, single)
    out["emergence"] = attempt(_emergence, final_rows(data), out["kind"])
    return out


def _spread(rows: pd.DataFrame, shots: int) -> dict:
    """Per N, best minus worst strategy's mean accuracy, and its trend in log N."""
    acc = rows.pivot_table(index="N", columns="strategy", values="acc", aggfunc="mean")
    acc = acc[acc.notna().sum(axis=1) >= 2]
    if acc.shape[1] < 2:
        return {"shots": shots, "skipped": "one strategy only"}
    if len(acc) < 2:
        return {"shots": shots, "skipped": "fewer than 2 model sizes with at least 2 strategies"}
    spread = 100 * (acc.max(axis=1) - acc.min(axis=1))
    slope = float(np.polyfit(np.log10(acc.index), spread, 1)[0])
    trend = "stays the same" if abs(slope) < 1e-6 else ("shrinks" if slope < 0 else "grows")
    finding = (f"with N the spread between the best and worst strategy {trend}: "
               f"{slope:+.2f} points per decade of N ({spread.iloc[0]:.1f} points at N = {acc.index[0]:.3g}, "
               f"{spread.iloc[-1]:.1f} at N = {acc.index[-1]:.3g})")
    return {"shots": shots, "N": acc.index.tolist(), "best": acc.idxmax(axis=1).tolist(), "worst": acc.idxmin(axis=1).tolist(),
            "spread_points": spread.tolist(), "slope_points_per_decade": slope, "finding": finding}


def strategy_vs_scale(frame: pd.DataFrame) -> dict:
    """Per task: per (shots, strategy), the mean accuracy of each size's runs at their final
    evaluation with a 95% interval over test items (acc +- 1.96 se); per shots, the spread
    between strategies against N."""
    keys = ["run_id", "task", "shots", "strategy"]
    finals = frame.loc[frame.groupby(keys)["tokens"].idxmax()].assign(v=lambda f: f["acc_se"] ** 2)
    out = {}
    for task, rows in finals.groupby("task"):
        curves = []
        for (shots, strategy), g in rows.groupby(["shots", "strategy"]):
            per = g.groupby("N").agg(acc=("acc", "mean"), v=("v", "sum"), n=("acc", "size"))
            half = 1.96 * np.sqrt(per["v"]) / per["n"]
            curves.append({"shots": int(shots), "strategy": strategy, "N": per.index.tolist(), "acc": per["acc"].tolist(),
                           "acc_ci": np.column_stack([per["acc"] - half, per["acc"] + half]).tolist()})
        out[task] = {"curves": curves, "spread": [_spread(g, int(s)) for s, g in rows.groupby("shots")]}
    return out


def task_report(frame: pd.DataFrame, fit, held_out_ids, shots: int, strategy: str) -> dict:
    """Everything fitted for a sweep's downstream tasks, JSON-ready (fit.json["tasks"]). frame:
    results.load(path, tasks=True). fit: the FitSpec (its bootstrap count, huber_delta, method).
    The laws are fitted on the rows with these shots and strategy, without the runs in
    held_out_ids, which are then predicted; a part that cannot be fitted is {"skipped": why}."""
    held_out_ids = sorted(held_out_ids)
    rows = report_rows(frame, shots, strategy)
    return {"shots": shots, "strategy": strategy, "level": LEVEL, "held_out": held_out_ids,
            "tasks": {task: _task(g, fit, held_out_ids) for task, g in rows.groupby("task")},
            "strategy_vs_scale": strategy_vs_scale(frame)}
