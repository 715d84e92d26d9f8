"""L = E + a C_6ND^b, a power law in the laws' compute with an irreducible loss E, fitted or pinned
(a value from a larger study, say), as a registered law. It predicts the loss of a compute, not of
an allocation: it has no compute-optimal N and D. Fitted from starts at E = 10%, 50%, 80% and 95%
of the smallest loss (or at the pinned E), a and b from a line through log(L - E)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...errors import FitError
from ...sweep.types import LawName
from .base import LAWS, Law, Param
from .power import FREE, line_starts


@LAWS.register(LawName.POWER_C)
@dataclass(frozen=True)
class PowerC(Law):
    polish: ClassVar[int] = 4
    pin_E: float | None = None
    """The irreducible loss, pinned at this value (fit.pin_E); None: fitted."""

    @property
    def params(self) -> tuple[Param, ...]:
        free = (Param("a", FREE, log=True), Param("b", FREE))
        return free if self.pin_E is not None else (Param("E", FREE, log=True), *free)

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("C_6ND",)

    @property
    def form(self) -> str:
        return "L = E + a*C_6ND^b" + ("" if self.pin_E is None else f" (E pinned at {self.pin_E:g})")

    def problem(self, X):
        distinct, need = len(np.unique(X[0])), len(self.params) + 1
        if distinct < need:
            return f"power_C: need at least {need} distinct C_6ND, got {distinct}"
        return None

    def _parts(self, theta):
        t = np.asarray(theta, dtype=float)[..., None]
        if self.pin_E is not None:
            return self.pin_E, t[..., 0, :], t[..., 1, :]
        with np.errstate(over="ignore"):  # a sampled start's E may overflow: that start scores inf
            return np.exp(t[..., 0, :]), t[..., 1, :], t[..., 2, :]

    def predict(self, theta, *X):
        E, log_a, b = self._parts(theta)
        with np.errstate(over="ignore"):
            return E + np.exp(log_a + b * np.log(X[0]))

    def jacobian(self, theta, *X):
        E, log_a, b = self._parts(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            term = np.exp(log_a + b * np.log(X[0]))
            share = term / (E + term)  # d log L / d log a
        cols = [share, share * np.log(X[0])]
        if self.pin_E is None:
            cols.insert(0, 1 - share)  # d log L / d log E
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def starts(self, X, y, loss):
        if self.pin_E is None:
            return line_starts(X[0], y)
        if not np.min(y) > self.pin_E:  # L = E + a C^b stays above E
            raise FitError(f"power_C: the pinned E {self.pin_E:g} is not below every loss (the smallest is {np.min(y):.4g}); pin a lower E")
        return line_starts(X[0], y, [self.pin_E])[:, 1:]
