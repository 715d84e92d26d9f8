"""The multi-power law (Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across
Learning Rate Schedules"):

    L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t),
    LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),  S_k(t) = sum_{tau=k..t} eta_tau,
    G(x) = 1 - (C x + 1)^-beta.

S1 here sums every step's rate, warmup included, so the paper's S_W (the warmup's sum, its S1
counting from the end of warmup) is 0. The decrements count from the first fall of the rate
(areas.py), and LD's sum is taken over blocks of steps (areas.drop_blocks), not step by step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..laws.base import Param
from . import areas
from .law import CURVE_LAWS, CurveLaw, CurveLawName

LOG_BOUNDS = {"L0": (1e-2, 1e2), "A": (1e-6, 1e6), "alpha": (1e-3, 3.0), "B": (1e-6, 1e6),
              "C": (1e-8, 1e4), "beta": (1e-2, 10.0), "gamma": (1e-2, 3.0)}  # fmt: skip


@CURVE_LAWS.register(CurveLawName.MULTI_POWER)
@dataclass(frozen=True)
class MultiPower(CurveLaw):
    all_params = tuple(Param(n, (np.log(lo), np.log(hi)), log=True) for n, (lo, hi) in LOG_BOUNDS.items())
    linear = ("L0", "A", "B")
    # C is the inverse of the area (in steps at the peak rate) over which a decay's gain saturates
    grid_values: ClassVar[dict[str, tuple[float, ...]]] = {
        "alpha": tuple(np.geomspace(0.05, 1.5, 8)),
        "C": tuple(np.geomspace(1e-5, 1.0, 6)),
        "beta": (0.25, 0.5, 1.0, 2.0),
        "gamma": (0.25, 0.5, 1.0),
    }

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("S1", "D", "Delta", "log_rate")

    @property
    def form(self) -> str:
        return "L0 + A*S1^-alpha - B*sum_k (eta_{k-1}-eta_k)*(1 - (C*eta_k^-gamma*S_k(t) + 1)^-beta)"

    def prepare(self, lr, steps):
        return (areas.area(lr)[steps - 1], *areas.drop_blocks(lr, steps))

    def basis(self, values, X):
        S1 = X[0]
        keys = np.stack([values["C"], values["beta"], values["gamma"]], axis=-1)
        unique, which = np.unique(keys, axis=0, return_inverse=True)
        drops = np.stack([_drop(*k, X)[0] for k in unique])[which.ravel()]  # shared by the cells' alphas
        power = S1[None, :] ** -values["alpha"][:, None]
        return np.stack([np.ones_like(power), power, -drops], axis=-1)

    def scaled_gradient(self, v, X):
        S1 = X[0]
        power = v["A"] * S1 ** -v["alpha"]
        drop, dC, dbeta, dgamma = _drop(v["C"], v["beta"], v["gamma"], X, gradient=True)
        pred = v["L0"] + power - v["B"] * drop
        B = v["B"]
        grads = {"L0": np.full_like(S1, v["L0"]), "A": power, "alpha": -v["alpha"] * np.log(S1) * power,
                 "B": -B * drop, "C": -B * dC, "beta": -B * dbeta, "gamma": -B * dgamma}  # fmt: skip
        return pred, np.stack([grads[n] for n in self.names], axis=-1)


def _drop(C, beta, gamma, X, gradient=False) -> tuple[np.ndarray, ...]:
    """LD / B at each row, and with `gradient` p * d(LD / B)/dp for p = C, beta, gamma."""
    _, D, delta, log_rate = X
    z = C * np.exp(-gamma * log_rate) * delta
    log1p = np.log1p(z)
    Q = np.exp(-beta * log1p)  # (1 + z)^-beta
    drop = np.sum(D * (1 - Q), axis=-1)
    if not gradient:
        return (drop,)
    R = D * beta * Q * z / (1 + z)  # C d/dC of D (1 - Q)
    return drop, R.sum(-1), np.sum(D * beta * Q * log1p, axis=-1), -gamma * np.sum(R * log_rate, axis=-1)
