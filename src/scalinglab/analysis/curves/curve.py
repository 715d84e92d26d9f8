"""One run's loss curve, as the curve laws read it: its learning rate at every step and its
losses at the observed steps. Checked where it is made: a bad curve raises FitError naming the
run and what is wrong."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import FitError


@dataclass(frozen=True, eq=False)
class Curve:
    run: str
    size: float
    """N: the group key of a joint fit (the runs of one size share a law's parameters)."""
    lr: np.ndarray
    """The learning rate at every step 1..T (lr[t - 1] at step t)."""
    steps: np.ndarray
    """The observed steps (1..T, increasing)."""
    loss: np.ndarray
    """The loss at each observed step (> 0)."""
    warmup: int
    """Steps of warmup: the points at or before it are not fitted."""
    skip: int = 0
    """Steps at the start whose points are not fitted either (skipping's early phase)."""
    label: str = ""
    """Its schedule in a few words (a sweep's runs: Schedule.label), for tables and figures."""

    def __post_init__(self) -> None:
        lr, steps, loss = (np.asarray(x, dtype=float) for x in (self.lr, self.steps, self.loss))
        where = f"run {self.run}"
        if lr.ndim != 1 or not len(lr) or not np.all(np.isfinite(lr) & (lr >= 0)) or lr.max() <= 0:
            raise FitError(f"{where}: the learning rate must be one finite, non-negative value per step, not all 0")
        if steps.shape != loss.shape or steps.ndim != 1:
            raise FitError(f"{where}: {len(steps)} observed steps but {len(loss)} losses")
        if np.any(steps != np.round(steps)) or np.any(np.diff(steps) <= 0):
            raise FitError(f"{where}: observed steps must be whole numbers, increasing")
        outside = steps[(steps < 1) | (steps > len(lr))]
        if len(outside):
            raise FitError(f"{where}: observed step {int(outside[0])} is outside its schedule's steps 1..{len(lr)}")
        bad = ~(np.isfinite(loss) & (loss > 0))
        if bad.any():
            raise FitError(f"{where}: losses must be positive and finite; step {int(steps[bad][0])} has {loss[bad][0]}")
        if not 0 <= self.warmup < len(lr):
            raise FitError(f"{where}: warmup of {self.warmup} steps outside its schedule's {len(lr)}")
        for name, value in (("lr", lr), ("steps", steps.astype(int)), ("loss", loss)):
            object.__setattr__(self, name, value)

    @property
    def fitted(self) -> np.ndarray:
        """Which observed points a fit reads: those after warmup and the skipped start."""
        return self.steps > max(self.warmup, self.skip)

    def skipping(self, share: float) -> Curve:
        """The curve with the points of its first `share` of steps left out of fits: the fast early
        phase of a small model (its first byte and word statistics), which a power law of the
        rates' area does not describe (results/schedules: R^2 0.94-0.97 with it, 0.98-0.99 without)."""
        return dataclasses.replace(self, skip=round(share * len(self.lr)))
