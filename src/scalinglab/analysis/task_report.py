"""Everything fitted for a sweep's downstream tasks (SweepFit.tasks): per task the single-step and
two-step laws fitted without the held-out runs, their predictions of those runs, emergence, and how
the spread between demonstration strategies changes with scale. No JAX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.tasks import TaskKind
from ..errors import FitError
from ..sweep.spec import FitSpec
from .emergence import emergence
from .laws.bootstrap import LEVEL
from .parts import LawFit, Skipped
from .task_laws import bootstrap_two_step, extrapolation, final_rows, fit_single_step, fit_two_step, two_step_fit
from .taskfit import Curve, Emergence, Spread, SpreadSkipped, StrategyScale, TaskFit, TaskReport
from .uncertainty import attempt


def report_rows(frame: pd.DataFrame, shots: int, strategy: str) -> pd.DataFrame:
    """A sweep's task scores (results.load(path, tasks=True)) with these shots and strategy, in
    task_laws' columns: run_id as run, and as D the tokens trained at each checkpoint (the
    evaluation's `tokens`; at a run's final checkpoint, its planned D)."""
    rows = frame[(frame["shots"] == shots) & (frame["strategy"] == strategy)]
    return rows.assign(D=rows["tokens"]).rename(columns={"run_id": "run"})


def _emergence(finals: pd.DataFrame, kind: TaskKind) -> Emergence:
    """Accuracy against p_gold (multiple choice) or per-token accuracy (generation). Their standard
    errors over items: acc's as measured; the continuous metric's at most sqrt(m (1 - m) / items),
    the largest a mean of values in [0, 1] can have."""
    name = "p_gold" if kind is TaskKind.MULTIPLE_CHOICE else "token_acc"
    m = finals[name].to_numpy(dtype=float)
    bound = np.sqrt(np.clip(m * (1 - m), 0, None) / finals["n_items"].to_numpy(dtype=float))
    return emergence(finals["N"], finals["acc"], m, finals["acc_se"], bound, names=("acc", name))


def _task(rows: pd.DataFrame, spec: FitSpec, held_out_ids) -> TaskFit:
    """One task's laws (fitted without the held-out runs), emergence and extrapolation."""
    data = rows.dropna(subset=["task_loss", "acc"])
    chance = float(rows["chance"].iloc[0])
    kind = TaskKind(rows["kind"].iloc[0])
    fitted = data[~data["run"].isin(held_out_ids)]
    single = attempt(fit_single_step, fitted, chance)
    parts: dict = {"single_step": single if isinstance(single, Skipped) else LawFit.of(single.law)}
    try:
        model = fit_two_step(fitted, chance, spec)
    except FitError as e:
        parts["two_step"] = parts["extrapolation"] = Skipped(skipped=str(e))
    else:
        boots = bootstrap_two_step(fitted, chance, spec)
        parts["two_step"] = two_step_fit(model, boots)
        parts["extrapolation"] = attempt(extrapolation, data, held_out_ids, model, boots, None if isinstance(single, Skipped) else single)
    return TaskFit(
        kind=kind,
        chance=chance,
        n_runs=int(data["run"].nunique()),
        n_fit_runs=int(fitted["run"].nunique()),
        emergence=attempt(_emergence, final_rows(data), kind),
        **parts,
    )


def _spread(rows: pd.DataFrame, shots: int) -> Spread | SpreadSkipped:
    """Per N, best minus worst strategy's mean accuracy, and its trend in log N."""
    acc = rows.pivot_table(index="N", columns="strategy", values="acc", aggfunc="mean")
    acc = acc[acc.notna().sum(axis=1) >= 2]
    if acc.shape[1] < 2:
        return SpreadSkipped(shots=shots, skipped="one strategy only")
    if len(acc) < 2:
        return SpreadSkipped(shots=shots, skipped="fewer than 2 model sizes with at least 2 strategies")
    spread = 100 * (acc.max(axis=1) - acc.min(axis=1))
    slope = float(np.polyfit(np.log10(acc.index), spread, 1)[0])
    trend = "stays the same" if abs(slope) < 1e-6 else ("shrinks" if slope < 0 else "grows")
    finding = (
        f"with N the spread between the best and worst strategy {trend}: "
        f"{slope:+.2f} points per decade of N ({spread.iloc[0]:.1f} points at N = {acc.index[0]:.3g}, "
        f"{spread.iloc[-1]:.1f} at N = {acc.index[-1]:.3g})"
    )
    return Spread(
        shots=shots,
        N=acc.index.tolist(),
        best=acc.idxmax(axis=1).tolist(),
        worst=acc.idxmin(axis=1).tolist(),
        spread_points=spread.tolist(),
        slope_points_per_decade=slope,
        finding=finding,
    )


def strategy_vs_scale(frame: pd.DataFrame) -> dict[str, StrategyScale]:
    """Per task: per (shots, strategy), the mean accuracy of each size's runs at their final
    evaluation with a 95% interval over test items (acc +- 1.96 se); per shots, the spread
    between strategies against N."""
    keys = ["run_id", "task", "shots", "strategy"]
    finals = frame.loc[frame.groupby(keys)["tokens"].idxmax()].assign(v=lambda f: f["acc_se"] ** 2)
    out = {}
    for task, rows in finals.groupby("task"):
        curves = []
        for _, g in rows.groupby(["shots", "strategy"]):
            per = g.groupby("N").agg(acc=("acc", "mean"), v=("v", "sum"), n=("acc", "size"))
            half = 1.96 * np.sqrt(per["v"]) / per["n"]
            curves.append(
                Curve(
                    shots=int(g["shots"].iloc[0]),
                    strategy=str(g["strategy"].iloc[0]),
                    N=per.index.tolist(),
                    acc=per["acc"].tolist(),
                    acc_ci=[(float(a - h), float(a + h)) for a, h in zip(per["acc"], half)],
                )
            )
        out[str(task)] = StrategyScale(curves=curves, spread=[_spread(g, int(g["shots"].iloc[0])) for _, g in rows.groupby("shots")])
    return out


def task_report(frame: pd.DataFrame, spec: FitSpec, held_out_ids, shots: int, strategy: str) -> TaskReport:
    """Everything fitted for a sweep's downstream tasks. frame: results.load(path, tasks=True). The
    laws are fitted on the rows with these shots and strategy, without the runs in held_out_ids,
    which are then predicted; a part that cannot be fitted is Skipped(why)."""
    held_out_ids = sorted(held_out_ids)
    rows = report_rows(frame, shots, strategy)
    return TaskReport(
        shots=shots,
        strategy=strategy,
        level=LEVEL,
        held_out=held_out_ids,
        tasks={str(task): _task(g, spec, held_out_ids) for task, g in rows.groupby("task")},
        strategy_vs_scale=strategy_vs_scale(frame),
    )
