"""The typed parts of a sweep's task fits (SweepFit.tasks): per task its single-step and two-step
laws, the held-out check and emergence, and per task how demonstration strategies compare across
scale. Built by task_laws.task_report; fit.json holds them. No JAX."""

from __future__ import annotations

from enum import StrEnum

from ..data.tasks import TaskKind
from .parts import CI, LawFit, Part, Skipped


class Shape(StrEnum):
    """A task's curve against model size under one metric (emergence.py)."""

    SHARP = "sharp"
    SMOOTH = "smooth"
    FLAT = "flat"


class TwoStepFit(Part):
    """Step 1: the task loss of each run's final checkpoint as L(N, D); step 2: accuracy as a
    sigmoid falling in the task loss, from chance (floor) to a ceiling."""

    step1: LawFit
    step2: LawFit
    n_bootstrap: int


class TaskHeldOut(Part):
    run_id: str
    N: float
    D: float
    """The run's tokens at its final checkpoint (its planned D)."""
    acc: float
    acc_pred: float
    acc_pred_ci: CI | None = None
    task_loss: float
    task_loss_pred: float
    error_points: float
    """100 * (predicted - measured) accuracy."""
    single_step_error_points: float | None = None


class TaskExtrapolation(Part):
    held_out: list[TaskHeldOut]
    mean_abs_error_points: float
    single_step_mean_abs_error_points: float | None = None


class Sharpness(Part):
    metric: str
    sharpness: float
    between: CI
    rise: float
    noise: float
    shape: Shape
    N: list[float]
    values: list[float]


class Emergence(Part):
    discontinuous: Sharpness
    continuous: Sharpness
    verdict: str
    measure: str
    threshold: float


class TaskFit(Part):
    kind: TaskKind
    chance: float
    n_runs: int
    n_fit_runs: int
    single_step: LawFit | Skipped
    two_step: TwoStepFit | Skipped
    extrapolation: TaskExtrapolation | Skipped
    emergence: Emergence | Skipped


class Curve(Part):
    """Accuracy against N for one (shots, strategy): the mean of each size's runs at their final
    evaluation, with a 95% interval over test items."""

    shots: int
    strategy: str
    N: list[float]
    acc: list[float]
    acc_ci: list[CI]


class Spread(Part):
    """Per N, the best minus the worst strategy's accuracy, and its trend in log N."""

    shots: int
    N: list[float]
    best: list[str]
    worst: list[str]
    spread_points: list[float]
    slope_points_per_decade: float
    finding: str


class SpreadSkipped(Part):
    shots: int
    skipped: str


class StrategyScale(Part):
    curves: list[Curve]
    spread: list[Spread | SpreadSkipped]


class TaskReport(Part):
    shots: int
    strategy: str
    level: float
    held_out: list[str]
    """The runs held out of the task laws (the extrapolation check's)."""
    tasks: dict[str, TaskFit]
    strategy_vs_scale: dict[str, StrategyScale]
