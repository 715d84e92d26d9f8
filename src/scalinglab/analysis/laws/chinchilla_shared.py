"""Chinchilla's L(N, D) over several sweeps at once with its exponents shared:

    L = E_g + A_g / N^alpha + B_g / D^beta,   g = 1..G the sweep a run belongs to,

so each sweep keeps its own irreducible loss and coefficients while alpha and beta are fitted on
every sweep's runs together (`compare --shared-exponents`). It is a TermsLaw like Chinchilla's:
three terms whose log coefficients are picked by the run's sweep, so for fixed (alpha, beta) the
3G coefficients are linear and variable projection searches the same (alpha, beta) grid. The
sweep is the third input, its number counted from 1 (solve.columns wants positive inputs).

Not registered in LAWS: it is not a law of one sweep's runs, so `fit --law` must not offer it
nor its backtest try it; each sweep's part of a fit is read back as a plain Chinchilla law
(`per_sweep`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Fitted, Param
from .chinchilla import CHINCHILLA, PARAMS, sizes_problem
from .terms import TermsLaw

COEFFICIENTS = ("E", "A", "B")  # each sweep's, in this order in theta
E, A, B, ALPHA, BETA = PARAMS


@dataclass(frozen=True)
class SharedChinchilla(TermsLaw):
    """groups sweeps' Chinchilla laws with one alpha and one beta; theta = (log E_1, log A_1,
    log B_1, ..., log E_G, log A_G, log B_G, alpha, beta)."""

    name: ClassVar[str] = "chinchilla_shared_exponents"
    groups: int = 2

    @property
    def params(self) -> tuple[Param, ...]:
        own = (Param(f"{p.name}_{g + 1}", p.bounds, p.log) for g in range(self.groups) for p in (E, A, B))
        return (*own, ALPHA, BETA)

    @property
    def coefficients(self) -> tuple[int, ...]:
        """Every sweep's log E, log A, log B: 3G coefficients, three per term (see design)."""
        return tuple(range(3 * self.groups))

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D", "group")

    @property
    def form(self) -> str:
        return f"L(N,D) = E_g + A_g/N^alpha + B_g/D^beta, sweep g = 1..{self.groups}"

    def problem(self, X):
        """Each sweep needs 2 distinct N and D and 3 runs (its own E, A, B), as Chinchilla's do."""
        for g, rows in enumerate(self._members(X[2]).T):
            if (why := sizes_problem(f"sweep {g + 1}", (X[0][rows], X[1][rows]), len(COEFFICIENTS))) is not None:
                return why
        return None

    def _members(self, group) -> np.ndarray:
        """(n, G): whether each point is in each sweep."""
        return np.asarray(group, dtype=float)[:, None] == np.arange(1, self.groups + 1)[None, :]

    def terms(self, X):
        """Chinchilla's three terms, each point's coefficients its own sweep's."""
        lN, lD = np.log(X[0]), np.log(X[1])
        own = 3 * (np.asarray(X[2], dtype=int) - 1)
        rows, G = np.arange(len(lN)), self.groups
        T = np.zeros((3, len(lN), 3 * G + 2))
        for k in range(3):
            T[k, rows, own + k] = 1
        T[1, :, 3 * G], T[2, :, 3 * G + 1] = -lN, -lD
        return T

    def design(self, cells, X):
        """TermsLaw's basis (one column per term) spread over the sweeps: column 3g + k is term k
        at the points of sweep g and 0 elsewhere, so the 3G coefficients are solved together (the
        normal equations are block diagonal: each sweep's three apart)."""
        offset, basis = super().design(cells, X)  # (cells, n, 3)
        spread = basis[:, :, None, :] * self._members(X[2])[None, :, :, None]  # (cells, n, G, 3)
        return offset, spread.reshape(len(cells), len(X[0]), 3 * self.groups)

    def grid(self, X, y):
        return CHINCHILLA.grid(X, y)  # the same (alpha, beta) cells

    def per_sweep(self, law: Fitted, n_points: list[int]) -> list[Fitted]:
        """Each sweep's part of a fit as Chinchilla's own law (its E, A, B and the shared alpha,
        beta), with its number of runs: what compare works on."""
        v = law.values
        shared = {"alpha": v["alpha"], "beta": v["beta"]}
        return [
            Fitted.of(CHINCHILLA, {**{c: v[f"{c}_{g + 1}"] for c in COEFFICIENTS}, **shared}, n_points=n) for g, n in enumerate(n_points)
        ]
