"""Power laws as a registered law: y = a * prod_j x_j^b_j, or with an irreducible term, y = E + a * x^b
(L against N, D or C; an optimum's law in C, or in N and D). Without E the law is linear in log
space and solved exactly; with it, least squares on log residuals from starts at E = 10%, 50%,
80% and 95% of the smallest y."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import LAWS, Param
from .terms import TermsLaw

E_STARTS = (0.1, 0.5, 0.8, 0.95)
FREE = (-np.inf, np.inf)


@LAWS.register("power")
@dataclass(frozen=True)
class PowerLaw(TermsLaw):
    x: tuple[str, ...] = ("C",)
    """The columns the law runs along."""
    irreducible: bool = False
    """With E, the level y approaches (one column only)."""
    y: str = "L"
    """What the law predicts (for its form): L, N_opt, lr*, ..."""

    def __post_init__(self):
        if self.irreducible and len(self.x) != 1:
            raise ValueError("a power law with an irreducible term runs along one column")

    @property
    def params(self) -> tuple[Param, ...]:
        exponents = [Param("b" if len(self.x) == 1 else f"b_{x}", FREE) for x in self.x]
        return ((Param("E", FREE, log=True),) if self.irreducible else ()) + (Param("a", FREE, log=True), *exponents)

    @property
    def coefficients(self) -> tuple[int, ...]:
        return (0, 1) if self.irreducible else (0,)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.x

    @property
    def form(self) -> str:
        body = "a*" + "*".join(f"{x}^{p.name}" for x, p in zip(self.x, self.params[-len(self.x) :]))
        return f"{self.y} = E + {body}" if self.irreducible else f"{self.y} = {body}"

    def problem(self, X):
        if len(self.x) == 1:
            distinct, need = len(np.unique(X[0])), len(self.params)
            return (
                f"power law in {self.x[0]}: need at least {need} distinct {self.x[0]} values, got {distinct}" if distinct < need else None
            )
        design = self.terms(X)[0]
        if len(design) <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
            return f"power law in {', '.join(self.x)}: needs more points than {len(design)}, at distinct {', '.join(self.x)}"
        return None

    def terms(self, X):
        logs = [np.log(x) for x in X]
        P, n = len(self.params), len(logs[0])
        T = np.zeros((len(self.coefficients), n, P))
        T[-1, :, self.coefficients[-1]] = 1  # the a term: log a + sum_j b_j log x_j
        for j, lx in enumerate(logs):
            T[-1, :, P - len(logs) + j] = lx
        if self.irreducible:
            T[0, :, 0] = 1
        return T

    def grid(self, X, y):
        """With E: exponents from -2 to 2 (the batched bootstrap's variable projection)."""
        return np.linspace(-2, 2, 40)[:, None] if self.irreducible else None

    def starts(self, X, y, loss):
        return line_starts(X[0], y)


def line_starts(x, y, E_values=None) -> np.ndarray:
    """Starts (log E, log a, b) of y = E + a x^b: E each of E_values (by default E_STARTS shares
    of the smallest y), a and b then from a line through log(y - E) against log x."""
    y = np.asarray(y, dtype=float)
    E_values = [share * float(np.min(y)) for share in E_STARTS] if E_values is None else E_values
    return np.array([[np.log(E0), *np.polyfit(np.log(x), np.log(y - E0), 1)[::-1]] for E0 in E_values])
