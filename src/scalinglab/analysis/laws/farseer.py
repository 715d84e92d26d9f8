"""Farseer (Li et al. 2025, "Predictable Scale: Part II"): L(N, D) = exp(s N^q + S)
+ exp(B N^b + Q) D^-exp(A N^a + E), as a registered law. The data term's coefficient and exponent
depend on N, so a larger model may gain more from data than Chinchilla's additive form allows.
theta = (s, q, S, B, b, Q, A, a, E); exp(S) and exp(Q) are linear coefficients, projected out
over cells of the other seven drawn at random (seeded), the best polished. Its E is the data
exponent's offset, not an irreducible loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from ...sweep.types import LawName
from .base import LAWS, Law, Param
from .chinchilla import sizes_problem

WIDE = (-1e3, 1e3)
PARAMS = (
    Param("s", WIDE),
    Param("q", (-2, 1)),
    Param("S", (-30, 10)),
    Param("B", WIDE),
    Param("b", (-2, 1)),
    Param("Q", (-30, 80)),
    Param("A", WIDE),
    Param("a", (-2, 1)),
    Param("E", (-10, 3)),
)
COEFFICIENTS = (2, 5)
NONLINEAR = (0, 1, 3, 4, 6, 7, 8)
CELLS = 16384
EXPONENT_CAP = 30.0  # exp(30) as D's exponent is already beyond any fit; keeps exp() finite


@LAWS.register(LawName.FARSEER)
@dataclass(frozen=True)
class Farseer(Law):
    polish: ClassVar[int] = 10
    resample_starts: ClassVar[int | None] = 0

    @property
    def params(self) -> tuple[Param, ...]:
        return PARAMS

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def form(self) -> str:
        return "L(N,D) = exp(s N^q + S) + exp(B N^b + Q) D^-exp(A N^a + E)"

    def problem(self, X):
        return sizes_problem("farseer", X, len(PARAMS) + 1)

    @staticmethod
    def _logs(nonlinear, X):
        """The two terms' logs without their linear coefficients, s N^q and B N^b - exponent * log D,
        the data exponent exp(A N^a + E) (capped), and N^q, N^b, N^a."""
        s, q, B, b, A, a, E = (nonlinear[..., j, None] for j in range(7))
        N, lD = X[0], np.log(X[1])
        with np.errstate(over="ignore", invalid="ignore"):
            Nq, Nb, Na = N**q, N**b, N**a
            exponent = np.exp(np.minimum(A * Na + E, EXPONENT_CAP))
            return s * Nq, B * Nb - exponent * lD, exponent, (Nq, Nb, Na)

    def fitted_value(self, theta, *X):
        theta = np.asarray(theta, dtype=float)
        model, data, _, _ = self._logs(theta[..., list(NONLINEAR)], X)
        return np.logaddexp(model + theta[..., 2, None], data + theta[..., 5, None])

    def predict(self, theta, *X):
        return np.exp(self.fitted_value(theta, *X))

    def jacobian(self, theta, *X):
        return self.value_and_jacobian(theta, *X)[1]

    def value_and_jacobian(self, theta, *X):
        """One pass of the terms for both (the polish's cost): each term's derivatives weighted by
        its share of the loss (w, 1 - w)."""
        theta = np.asarray(theta, dtype=float)
        model, data, exponent, (Nq, Nb, Na) = self._logs(theta[..., list(NONLINEAR)], X)
        model, data = model + theta[..., 2, None], data + theta[..., 5, None]
        w = expit(model - data)
        s, B, A, E = (theta[..., j, None] for j in (0, 3, 6, 8))
        lN, lD = np.log(X[0]), np.log(X[1])
        live = A * Na + E < EXPONENT_CAP
        d_exp = np.where(live, -(1 - w) * exponent * lD, 0.0)  # d log L / d (A N^a + E)
        cols = (w * Nq, w * s * Nq * lN, w, (1 - w) * Nb, (1 - w) * B * Nb * lN, 1 - w, d_exp * Na, d_exp * A * Na * lN, d_exp)
        return np.logaddexp(model, data), np.stack(np.broadcast_arrays(*cols), axis=-1)

    def grid(self, X, y):
        """Random cells scaled at the runs' median N: s N^q in [-2, 4], B N^b in [-3, 3], the data
        exponent exp(A N^a + E) from e^-3.5 to e^0.5; q, b, a in [-1, 0.3]."""
        rng = np.random.default_rng(0)
        lN = np.log(np.median(X[0]))
        q, b, a = rng.uniform(-1, 0.3, (3, CELLS))
        E = rng.uniform(-3.5, 0.5, CELLS)
        s = rng.uniform(-2, 4, CELLS) * np.exp(-q * lN)
        B = rng.uniform(-3, 3, CELLS) * np.exp(-b * lN)
        A = rng.uniform(-1, 1, CELLS) * np.exp(-a * lN)
        return np.column_stack([s, q, B, b, A, a, E])

    def design(self, cells, X):
        model, data, _, _ = self._logs(cells, X)
        # A cell whose term exceeds e^50 is far off; capped there, its normal equations stay finite.
        basis = np.exp(np.clip(np.nan_to_num(np.stack([model, data], axis=-1), nan=50.0), -700.0, 50.0))
        return np.zeros(basis.shape[:2]), basis

    def assemble(self, coef, cells):
        theta = np.empty((len(coef), len(PARAMS)))
        theta[:, list(COEFFICIENTS)] = np.log(np.maximum(coef, 1e-12))
        theta[:, list(NONLINEAR)] = cells
        return theta
