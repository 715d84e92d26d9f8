"""Kaplan et al. 2020's L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, as a registered law:
no irreducible loss; a power law in N and one in D, joined so that the scarcer limits the loss.
theta = (log N_c, log D_c, alpha_N, alpha_D); log L = alpha_D * logaddexp of the two terms' logs,
fitted from sampled starts (it has no linear coefficients to project out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from ...sweep.types import LawName
from .base import LAWS, Law, Param
from .chinchilla import sizes_problem

PARAMS = (
    Param("N_c", (0, 80), log=True),
    Param("D_c", (0, 80), log=True),
    Param("alpha_N", (1e-3, 3)),
    Param("alpha_D", (1e-3, 3)),
)
# Kaplan et al.'s own fit (N_c 8.8e13, D_c 5.4e13, alpha_N 0.076, alpha_D 0.095) lies inside.
START_BOX = ((5, 50), (5, 50), (0.02, 1.0), (0.02, 1.0))


@LAWS.register(LawName.KAPLAN)
@dataclass(frozen=True)
class Kaplan(Law):
    polish: ClassVar[int] = 8
    resample_starts: ClassVar[int | None] = 2

    @property
    def params(self) -> tuple[Param, ...]:
        return PARAMS

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def form(self) -> str:
        return "L(N,D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"

    def problem(self, X):
        return sizes_problem("kaplan", X, len(PARAMS))

    def fitted_value(self, theta, *X):
        t = np.asarray(theta, dtype=float)[..., None]
        log_Nc, log_Dc, alpha_N, alpha_D = (t[..., j, :] for j in range(4))
        lN, lD = np.log(X[0]), np.log(X[1])
        return alpha_D * np.logaddexp(alpha_N / alpha_D * (log_Nc - lN), log_Dc - lD)

    def predict(self, theta, *X):
        return np.exp(self.fitted_value(theta, *X))

    def jacobian(self, theta, *X):
        """With u, v the two terms' logs and w the softmax weight of u: log L = alpha_D lse(u, v)."""
        t = np.asarray(theta, dtype=float)[..., None]
        log_Nc, log_Dc, alpha_N, alpha_D = (t[..., j, :] for j in range(4))
        lN, lD = np.log(X[0]), np.log(X[1])
        u, v = alpha_N / alpha_D * (log_Nc - lN), log_Dc - lD
        w = expit(u - v)
        cols = (w * alpha_N, alpha_D * (1 - w), w * (log_Nc - lN), np.logaddexp(u, v) - w * u)
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def start_box(self, X, y):
        return np.array(START_BOX)
