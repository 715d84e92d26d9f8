"""Fitting a curve law to runs' loss curves: the runs given share the law's parameters (a joint
fit over the runs of one size, under different schedules; one curve is a per-run fit). Huber on
log loss, through laws/solve.py, the solver every law is fitted with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ...errors import FitError
from ..laws.base import Loss
from ..laws.solve import fit
from .curve import Curve
from .law import CURVE_LAWS, CurveLaw


@dataclass(frozen=True, eq=False)
class CurveFit:
    law: CurveLaw
    params: Mapping[str, float]
    lr_scale: float
    """The rates were divided by this (the peak over the fitted curves) before fitting, so the
    starts and C, gamma are scale-free; `predict` divides by it too."""
    objective: float
    runs: tuple[str, ...]
    r2: tuple[float, ...]
    """Per run (in `runs`' order), R^2 of the loss at its fitted points."""
    max_rel_error: tuple[float, ...]
    """Per run, the largest |prediction / loss - 1| at its fitted points."""

    @property
    def name(self) -> str:
        return self.law.name

    @property
    def theta(self) -> np.ndarray:
        return self.law.theta(dict(self.params))

    def predict(self, lr, steps) -> np.ndarray:
        """The loss at `steps` (1..T) of a schedule with rate lr[t - 1] at step t (unnormalised)."""
        return predict(self.law, self.theta, self.lr_scale, lr, steps)


def predict(law: CurveLaw, theta: np.ndarray, lr_scale: float, lr, steps) -> np.ndarray:
    lr, steps = np.asarray(lr, dtype=float), np.asarray(steps, dtype=int)
    if len(steps) and (steps.min() < 1 or steps.max() > len(lr)):
        raise FitError(f"steps to predict must lie in the schedule's 1..{len(lr)}")
    return law.predict(theta, *law.prepare(lr / lr_scale, steps))


def law_of(law: str | CurveLaw, fixed: Mapping[str, float] | None = None) -> CurveLaw:
    """The law entry (a registered name, or an entry with its settings), with `fixed` pinned."""
    try:
        entry = CURVE_LAWS[law]() if isinstance(law, str) else law
    except ValueError as e:
        raise FitError(str(e)) from None
    assert isinstance(entry, CurveLaw)
    pinned = {**entry.pinned, **(fixed or {})}
    unknown = sorted(set(pinned) - set(entry.names))
    if unknown:
        raise FitError(f"{entry.name} has no parameter {', '.join(unknown)}; its parameters: {', '.join(entry.names)}")
    bad = {k: v for k, v in pinned.items() if not (np.isfinite(v) and v > 0)}
    if bad:
        raise FitError(f"{entry.name}: fixed values must be positive and finite, not {bad}")
    return type(entry)(**{**_settings(entry), "fixed": tuple(sorted((k, float(v)) for k, v in pinned.items()))})


def _settings(entry: CurveLaw) -> dict:
    return {k: v for k, v in entry.record().items() if k != entry.registry.family}


@dataclass(frozen=True)
class Rows:
    """The fitted points of some curves as the law's input columns, one row per point."""

    X: tuple[np.ndarray, ...]
    loss: np.ndarray
    curve: np.ndarray
    """The index of each row's curve."""


def rows(law: CurveLaw, curves: Sequence[Curve], lr_scale: float) -> Rows:
    parts = [law.prepare(c.lr / lr_scale, c.steps[c.fitted]) for c in curves]
    loss = np.concatenate([c.loss[c.fitted] for c in curves])
    which = np.concatenate([np.full(int(c.fitted.sum()), i) for i, c in enumerate(curves)])
    return Rows(law.join(parts), loss, which)


def check(curves: Sequence[Curve]) -> float:
    """The rates' normaliser (the largest peak) of curves fit to be fitted together."""
    if not curves:
        raise FitError("no curves to fit")
    sizes = sorted({c.size for c in curves})
    if len(sizes) > 1:
        raise FitError(f"curves of sizes {sizes} share no parameters: fit each size's curves apart")
    return float(max(c.lr.max() for c in curves))


def fit_curves(
    curves: Sequence[Curve], law: str | CurveLaw = "multi_power", fixed: Mapping[str, float] | None = None, huber_delta: float = 1e-3
) -> CurveFit:
    """The law fitted to every curve at once (their points after warmup), Huber(huber_delta) on
    log L_hat - log L; `fixed` pins parameters at values (name -> value)."""
    entry = law_of(law, fixed)
    scale = check(curves)
    data = rows(entry, curves, scale)
    fitted = fit(entry, data.X, data.loss, Loss(huber_delta))
    return summarise(entry, fitted.theta, scale, fitted.objective, curves, data)


def r_squared(y: np.ndarray, predicted: np.ndarray) -> float:
    """R^2 of predicted losses against measured ones; NaN where the measured do not vary."""
    total = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - predicted) ** 2) / total) if total > 0 else float("nan")


def summarise(law: CurveLaw, theta: np.ndarray, scale: float, objective: float, curves: Sequence[Curve], data: Rows) -> CurveFit:
    pred = law.predict(theta, *data.X)
    r2, worst = [], []
    for i in range(len(curves)):
        y, p = data.loss[data.curve == i], pred[data.curve == i]
        r2.append(r_squared(y, p))
        worst.append(float(np.max(np.abs(p / y - 1))) if len(y) else float("nan"))
    params = MappingProxyType(law.values(theta))
    return CurveFit(law, params, scale, objective, tuple(c.run for c in curves), tuple(r2), tuple(worst))
