"""Muennighoff et al. 2023's data-constrained law, as a registered law: Chinchilla's form at the
effective data D' and parameters N' a run had when it repeated its U unique tokens:
  U_D = min(U, D), R_D = D/U_D - 1 (repeats), D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*));
  U_N = min(N_opt(U_D), N), R_N = N/U_N - 1, N' = U_N + U_N R_N* (1 - exp(-R_N/R_N*));
  L = E + A/N'^alpha + B/D'^beta,
N_opt(U_D) the compute-optimal size for U_D tokens under the law itself. Repeated tokens are worth
less and less (R_D* repeats is their half-life scale), and so are parameters beyond what the unique
data can feed. theta = (log E, log A, log B, alpha, beta, log R_D*, log R_N*), from Chinchilla's
fit of the same runs crossed with a grid of R_D*, R_N*. Needs each run's U."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...errors import FitError
from ...sweep.types import LawName
from .base import LAWS, Law, Param
from .chinchilla import CHINCHILLA, sizes_problem
from .chinchilla import PARAMS as CHINCHILLA_PARAMS
from .solve import best_starts, varpro_starts

PARAMS = (*CHINCHILLA_PARAMS, Param("R_D", (-5, 10), log=True), Param("R_N", (-5, 10), log=True))
R_STARTS = (1.0, 5.0, 15.0, 50.0)  # Muennighoff et al. fitted R_D* 15.4, R_N* 5.3


def effective(U, R, R_star):
    """U + U R* (1 - exp(-R/R*)): what U unique units repeated R more times are worth."""
    return U + U * R_star * -np.expm1(-R / R_star)


@LAWS.register(LawName.DATA_CONSTRAINED)
@dataclass(frozen=True)
class DataConstrained(Law):
    polish: ClassVar[int] = 6
    resample_starts: ClassVar[int | None] = 2

    @property
    def params(self) -> tuple[Param, ...]:
        return PARAMS

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D", "U")

    @property
    def form(self) -> str:
        return "L = E + A/N'^alpha + B/D'^beta (N', D' under repetition of U unique tokens)"

    def problem(self, X):
        if (problem := sizes_problem("data_constrained", X, len(PARAMS) + 1)) is not None:
            return problem
        if not np.any(X[1] > X[2] * (1 + 1e-9)):
            return "data_constrained: no run repeats its data (D <= U for every run), so how repeats are worth less cannot be fitted"
        return None

    def predict(self, theta, *X):
        t = np.asarray(theta, dtype=float)[..., None]
        E, A, B, R_Ds, R_Ns = (np.exp(t[..., j, :]) for j in (0, 1, 2, 5, 6))
        alpha, beta = t[..., 3, :], t[..., 4, :]
        N, D, U = X
        U_D = np.minimum(U, D)
        # A start far off may overflow G or N_opt: its loss is then inf or nan, and it scores last.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            D_eff = effective(U_D, D / U_D - 1, R_Ds)
            G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
            N_opt = G * (G * U_D) ** (beta / alpha)  # D_opt(C) = U_D solved for C, then N_opt(C)
            U_N = np.minimum(np.nan_to_num(N_opt, nan=np.inf), N)
            N_eff = effective(U_N, N / U_N - 1, R_Ns)
            return E + A / N_eff**alpha + B / D_eff**beta

    def starts(self, X, y, loss):
        """Chinchilla's variable projection on the same runs (their N and D as if unrepeated),
        crossed with R_D*, R_N* in R_STARTS."""
        try:
            base = varpro_starts(CHINCHILLA, X[:2], y, loss)
        except FitError:
            return None
        logs = np.log(R_STARTS)
        grid = np.array([(d, n) for d in logs for n in logs])
        return best_starts(self, np.array([np.concatenate([b, g]) for b in base for g in grid]), X, y, loss)
