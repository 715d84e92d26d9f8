"""A task's accuracy as a sigmoid, as a registered law: acc = chance + (ceiling - chance) *
expit(+-k (x - x0)), between chance and a fitted ceiling (at most 1), by least squares on the
accuracy itself. `falling`: accuracy falls as x grows (x a task loss), else it rises (x log compute).
For fixed k and x0 the ceiling enters linearly: variable projection over a grid of (k, x0) spanning
the data, then the best cell polished; cheap enough per bootstrap resample, and it does not depend
on where a local search happens to start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from .base import LAWS, Law, Param, Space

K_GRID = np.geomspace(0.3, 100, 12)  # slopes, per unit of the data's span of x
X0_CELLS = 25  # midpoints, from a span below the data to a span above it


@LAWS.register("sigmoid")
@dataclass(frozen=True)
class Sigmoid(Law):
    chance: float = 0.0
    """The floor: accuracy as the sigmoid's argument moves against it."""
    falling: bool = False
    x: str = "x"
    """What the law runs along (for its form and its records)."""

    space: ClassVar = Space.LINEAR
    positive_inputs: ClassVar = False
    polish: ClassVar = 1

    @property
    def params(self) -> tuple[Param, ...]:
        return (Param("ceiling", (self.chance, 1.0)), Param("k", (0.0, np.inf)), Param("x0", (-np.inf, np.inf)))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.x,)

    @property
    def form(self) -> str:
        sign = "" if self.falling else "-"
        return f"acc = chance + (ceiling - chance) / (1 + exp({sign}k ({self.x} - x0)))"

    @property
    def sign(self) -> float:
        return -1.0 if self.falling else 1.0

    def problem(self, X):
        distinct = len(np.unique(X[0]))
        return f"acc sigmoid: need at least 4 distinct points, got {distinct}" if distinct < 4 else None

    def _s(self, theta, x):
        theta = np.asarray(theta, dtype=float)
        return expit(self.sign * theta[..., 1, None] * (x - theta[..., 2, None]))

    def predict(self, theta, *X):
        theta = np.asarray(theta, dtype=float)
        return self.chance + (theta[..., 0, None] - self.chance) * self._s(theta, X[0])

    def jacobian(self, theta, *X):
        theta = np.asarray(theta, dtype=float)
        x, s = X[0], self._s(theta, X[0])
        slope = (theta[..., 0, None] - self.chance) * s * (1 - s) * self.sign
        return np.stack([s, slope * (x - theta[..., 2, None]), -slope * theta[..., 1, None]], axis=-1)

    def grid(self, X, y):
        x = X[0]
        scale = float(np.ptp(x)) or 1.0
        k, x0 = np.meshgrid(K_GRID / scale, np.linspace(x.min() - scale, x.max() + scale, X0_CELLS))
        return np.column_stack([k.ravel(), x0.ravel()])

    def design(self, cells, X):
        s = expit(self.sign * cells[:, 0, None] * (X[0] - cells[:, 1, None]))
        return np.full(s.shape, self.chance), s[..., None]

    def coefficient_bounds(self):
        return 1e-6, 1 - self.chance

    def assemble(self, coef, cells):
        return np.column_stack([self.chance + coef[:, 0], cells])

    def level(self, theta) -> tuple[float, float]:
        """(a, b) of acc = a / (1 + exp(-k (x - x0))) + b: b the level as x -> -inf, a + b as x -> +inf."""
        ceiling = float(np.asarray(theta)[0])
        return (self.chance - ceiling, ceiling) if self.falling else (ceiling - self.chance, self.chance)
