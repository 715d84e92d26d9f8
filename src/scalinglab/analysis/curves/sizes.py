"""A curve law fitted per model size: the runs of one size N share the law's parameters (each
size a joint fit of its runs' curves under their schedules), what curves.json holds of it, and
the loss it predicts along a new schedule. Sizes whose curves cannot be fitted are skipped, each
with why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydantic import ConfigDict, Field

from ...errors import FitError
from ..parts import Part
from .bootstrap import CurveIntervals, bootstrap_curves
from .curve import Curve
from .fit import CurveFit, fit_curves
from .rates import lr_per_step_from_table

SCHEMA = 1
HUBER_DELTA = 1e-3
SKIP_EARLY = 0.1  # share of each run's steps whose points are not fitted (Curve.skipping)


class CurveLoss(StrEnum):
    """Which loss a sweep's curves observe: the dense training curve, or the validation evaluations."""

    TRAIN = "train"
    VAL = "val"


class RunCurveFit(Part):
    run: str
    schedule: str = ""
    """The run's schedule in a few words (empty for a table's runs)."""
    points: int
    """Observed points after warmup: those fitted."""
    r2: float
    max_rel_error: float
    final_step: int
    final_loss: float
    """The loss measured at its last observed step."""
    final_fitted: float
    """The law's loss there."""


class SizeCurves(Part):
    N: float | None
    """The group's model size; None for a table fitted as one group (no --map N)."""
    law: str
    form: str
    params: dict[str, float]
    params_ci: dict[str, tuple[float, float]] | None = None
    """Each parameter's bootstrap interval (None without --bootstrap)."""
    n_bootstrap: int = 0
    lr_scale: float
    """The peak rate the schedules were divided by before fitting."""
    objective: float
    runs: list[RunCurveFit]


class SkippedSize(Part):
    N: float | None
    skipped: str


class SchedulePoint(Part):
    N: float | None
    step: int
    lr: float
    loss: float
    loss_low: float | None = None
    loss_high: float | None = None


class CurveReport(Part):
    """curves.json: every size's fit, the sizes skipped and why, and the predictions along --schedule."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants", populate_by_name=True)

    version: int = Field(SCHEMA, alias="schema")
    source: str
    loss: str
    """train, val (a sweep's) or the table's loss column."""
    law: str
    skip_early: float = 0.0
    """The share of each run's first steps whose points were not fitted."""
    sizes: list[SizeCurves]
    skipped: list[SkippedSize] = Field(default_factory=list)
    predictions: list[SchedulePoint] = Field(default_factory=list)

    def json_text(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1) + "\n"


@dataclass(frozen=True, eq=False)
class SizeCurveFit:
    """One size's curves and the law fitted to them jointly (with its resamples when bootstrapped)."""

    N: float | None
    curves: tuple[Curve, ...]
    fit: CurveFit
    intervals: CurveIntervals | None = None

    def record(self) -> SizeCurves:
        runs = []
        for curve, r2, worst in zip(self.curves, self.fit.r2, self.fit.max_rel_error, strict=True):
            last = int(curve.steps[-1])
            fitted = float(self.fit.predict(curve.lr, [last])[0])
            points = int(curve.fitted.sum())
            runs.append(RunCurveFit(run=curve.run, schedule=curve.label, points=points, r2=r2, max_rel_error=worst, final_step=last,
                                    final_loss=float(curve.loss[-1]), final_fitted=fitted))  # fmt: skip
        ci = self.intervals.params if self.intervals is not None and len(self.intervals.thetas) else None
        return SizeCurves(
            N=self.N,
            law=self.fit.name,
            form=self.fit.law.form,
            params=dict(self.fit.params),
            params_ci=ci,
            n_bootstrap=0 if self.intervals is None else len(self.intervals.thetas),
            lr_scale=self.fit.lr_scale,
            objective=self.fit.objective,
            runs=runs,
        )


def by_size(curves: Sequence[Curve]) -> dict[float, list[Curve]]:
    """The curves grouped by their size, smallest first."""
    groups: dict[float, list[Curve]] = {}
    for curve in sorted(curves, key=lambda c: c.size):
        groups.setdefault(curve.size, []).append(curve)
    return groups


def fit_sizes(
    curves: Sequence[Curve],
    law: str = "multi_power",
    bootstrap: int = 0,
    huber_delta: float = HUBER_DELTA,
    sized: bool = True,
    skip_early: float = SKIP_EARLY,
) -> tuple[list[SizeCurveFit], list[SkippedSize]]:
    """The law fitted jointly to each size's curves (sized=False: the curves are one group, N
    None), the points of each run's first skip_early of steps left out (Curve.skipping); a size
    the law cannot be fitted to (too few points after warmup, ...) is skipped with FitError's
    reason. bootstrap: resamples for intervals (bootstrap_curves, seed 0), 0 none."""
    fits, skipped = [], []
    for size, group in by_size([c.skipping(skip_early) for c in curves]).items():
        N = size if sized else None
        try:
            if bootstrap:
                intervals = bootstrap_curves(group, law, n=bootstrap, huber_delta=huber_delta)
                fits.append(SizeCurveFit(N, tuple(group), intervals.fit, intervals))
            else:
                fits.append(SizeCurveFit(N, tuple(group), fit_curves(group, law, huber_delta=huber_delta)))
        except FitError as e:
            skipped.append(SkippedSize(N=N, skipped=f"{len(group)} runs: {e}"))
    return fits, skipped


def predict_schedule(fits: Sequence[SizeCurveFit], steps, lrs) -> list[SchedulePoint]:
    """Each fitted size's loss at the listed steps of a schedule given as rates at those steps
    (linear between them, a linear warmup from 0 before the first: lr_per_step_from_table), with
    the bootstrap's interval where the fit has resamples."""
    steps = np.asarray(steps, dtype=int)
    lr, _ = lr_per_step_from_table(steps, lrs)
    out = []
    for size in fits:
        loss = size.fit.predict(lr, steps)
        has_ci = size.intervals is not None and len(size.intervals.thetas)
        low, high = size.intervals.predict(lr, steps) if has_ci and size.intervals else (None, None)
        for i, step in enumerate(steps):
            bounds = {} if low is None or high is None else {"loss_low": float(low[i]), "loss_high": float(high[i])}
            out.append(SchedulePoint(N=size.N, step=int(step), lr=float(lr[step - 1]), loss=float(loss[i]), **bounds))
    return out
