"""Task accuracy of compared sweeps at equal compute (`scalinglab compare`, where two sweeps score the
same task). Each sweep's task gets the two-step law `fit` fits (task_laws: task loss as L(N, D),
accuracy a sigmoid of the task loss) on all its runs, and at a compute C_6ND its accuracy is

    acc*(C_6ND) = step2(min over 6ND = C_6ND of step1(N, D)),

the accuracy at the allocation that minimises the task loss, the best the law offers at that
compute (step 2 falls in the task loss). The difference is 100 (acc*_B - acc*_A) points, with
intervals from pairs of resamples, each sweep's runs resampled on their own. No JAX."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...errors import FitError
from ...sweep.spec import FitSpec
from ..laws.optimum import compute_optimal
from ..parts import Estimate, Part, Skipped
from ..task_laws import TwoStep, bootstrap_two_step, fit_two_step
from ..task_report import report_rows
from .points import Where, paired


class TaskAtCompute(Part):
    C_6ND: float
    where: Where
    acc_A: Estimate
    acc_B: Estimate
    d_points: Estimate
    """100 (acc*_B - acc*_A): positive, B answers more items right at equal compute."""


class TaskComparison(Part):
    shots: int
    strategy: str
    points: list[TaskAtCompute]
    n_bootstrap: int
    verdict: str


@dataclass(frozen=True)
class TaskLaw:
    model: TwoStep
    boots: list[TwoStep]


@dataclass(frozen=True)
class SweepTasks:
    """One sweep's task laws at the (shots, strategy) `fit` uses for it (select.task_setting); a
    task whose law cannot be fitted holds why."""

    shots: int
    strategy: str
    laws: dict[str, TaskLaw | str]


def sweep_tasks(scores: pd.DataFrame, setting: tuple[int, str], spec: FitSpec, seed: int) -> SweepTasks:
    """Each task's two-step law on a sweep's task scores (results.load(tasks=True), done runs), and
    spec.bootstrap refits on resamples of its runs drawn from `seed`."""
    shots, strategy = setting
    laws: dict[str, TaskLaw | str] = {}
    for task, rows in report_rows(scores, shots, strategy).groupby("task"):
        data = rows.dropna(subset=["task_loss", "acc"])
        chance = float(rows["chance"].iloc[0])
        try:
            model = fit_two_step(data, chance, spec)
        except FitError as e:
            laws[str(task)] = str(e)
            continue
        laws[str(task)] = TaskLaw(model, bootstrap_two_step(data, chance, spec, seed))
    return SweepTasks(shots, strategy, laws)


def best_accuracy(model: TwoStep, C_6ND) -> np.ndarray:
    """acc*(C_6ND): step 2 at step 1's compute-optimal task loss."""
    N, D = compute_optimal(model.step1, np.asarray(C_6ND, dtype=float))
    with np.errstate(all="ignore"):
        return np.asarray(model.step2(model.step1(N, D)), dtype=float)


def _pair(A: TaskLaw, B: TaskLaw, computes: list[tuple[float, Where]]) -> list[TaskAtCompute]:
    C = np.array([c for c, _ in computes])

    def values(a: TwoStep, b: TwoStep) -> np.ndarray:
        acc_A, acc_B = best_accuracy(a, C), best_accuracy(b, C)
        return np.stack([acc_A, acc_B, 100 * (acc_B - acc_A)])

    rows = paired(values, (A.model, B.model), zip(A.boots, B.boots))
    return [
        TaskAtCompute(C_6ND=c, where=where, acc_A=acc_A, acc_B=acc_B, d_points=d) for (c, where), (acc_A, acc_B, d) in zip(computes, rows)
    ]


def task_verdict(task: str, A: str, B: str, p: TaskAtCompute) -> str:
    """One line at one compute: B's accuracy against A's, in points, and whether the interval
    settles which is higher."""
    d, which, ci = p.d_points, "no interval to tell: --bootstrap 0", ""
    if d.ci:
        lo, hi = d.ci
        which = f"{B} higher" if lo > 0 else f"{B} lower" if hi < 0 else "no different within the interval"
        ci = f" [{lo:+.2f}, {hi:+.2f}]"
    return f"{task} at C_6ND = {p.C_6ND:.3g}: {B} {p.acc_B.value:.3f} against {A} {p.acc_A.value:.3f}, {d.value:+.2f} points{ci} ({which})"


def compare_tasks(
    A: tuple[str, SweepTasks | None], B: tuple[str, SweepTasks | None], computes: list[tuple[float, Where]], middle: int
) -> dict[str, TaskComparison | Skipped]:
    """Per task either sweep scores: B's accuracy against A's at each compute (the verdict at
    computes[middle]), or why not (one sweep does not score it, different shots or strategy, or a
    law that cannot be fitted)."""
    (a_name, a), (b_name, b) = A, B
    scored = a if a is not None else b
    if scored is None:
        return {}
    # A sweep that scores no task: each task of the other is named as scored by one sweep only.
    a, b = (s if s is not None else SweepTasks(scored.shots, scored.strategy, {}) for s in (a, b))
    out: dict[str, TaskComparison | Skipped] = {}
    for task in sorted(set(a.laws) | set(b.laws)):
        why = _why_not(task, (a_name, a), (b_name, b))
        if why:
            out[task] = Skipped(skipped=why)
            continue
        la, lb = a.laws[task], b.laws[task]
        assert isinstance(la, TaskLaw) and isinstance(lb, TaskLaw)  # _why_not returned a reason otherwise
        points = _pair(la, lb, computes)
        out[task] = TaskComparison(
            shots=a.shots,
            strategy=a.strategy,
            points=points,
            n_bootstrap=min(len(la.boots), len(lb.boots)),
            verdict=task_verdict(task, a_name, b_name, points[middle]),
        )
    return out


def _why_not(task: str, A: tuple[str, SweepTasks], B: tuple[str, SweepTasks]) -> str | None:
    (a_name, a), (b_name, b) = A, B
    for name, s in (A, B):
        if task not in s.laws:
            return f"only {b_name if name == a_name else a_name} scores {task}"
    if (a.shots, a.strategy) != (b.shots, b.strategy):
        return f"{a_name} is fitted at {a.shots} shots, {a.strategy}; {b_name} at {b.shots} shots, {b.strategy}: not comparable"
    for name, s in (A, B):
        law = s.laws[task]
        if isinstance(law, str):
            return f"{name}: {law}"
    return None
