"""The annealing law (Tissue et al. 2024, "Scaling Law with Learning Rate Annealing"):

    L(s) = L0 + A S1(s)^-alpha - C S2(s),  S2(s) = sum_{i<=s} m_i,  m_i = decay m_{i-1} + (eta_{i-1} - eta_i),

S1 the forward area (every step's rate, warmup included) and S2 the annealing area, its
momentum `decay` (the paper's lambda) a setting of the entry, not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..laws.base import Param
from . import areas
from .law import CURVE_LAWS, CurveLaw, CurveLawName

LOG_BOUNDS = {"L0": (1e-2, 1e2), "A": (1e-6, 1e6), "alpha": (1e-3, 3.0), "C": (1e-8, 1e4)}


@CURVE_LAWS.register(CurveLawName.ANNEALING)
@dataclass(frozen=True)
class Annealing(CurveLaw):
    all_params = tuple(Param(n, (np.log(lo), np.log(hi)), log=True) for n, (lo, hi) in LOG_BOUNDS.items())
    linear = ("L0", "A", "C")
    grid_values: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": tuple(np.geomspace(0.02, 2.0, 40))}

    decay: float = 0.999

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("S1", "S2")

    @property
    def form(self) -> str:
        return "L0 + A*S1^-alpha - C*S2"

    def prepare(self, lr, steps):
        return areas.area(lr)[steps - 1], areas.momentum_area(lr, self.decay)[steps - 1]

    def basis(self, values, X):
        S1, S2 = X
        power = S1[None, :] ** -values["alpha"][:, None]
        return np.stack([np.ones_like(power), power, np.broadcast_to(-S2, power.shape)], axis=-1)

    def scaled_gradient(self, v, X):
        S1, S2 = X
        power = v["A"] * S1 ** -v["alpha"]
        grads = {"L0": np.full_like(S1, v["L0"]), "A": power, "alpha": -v["alpha"] * np.log(S1) * power, "C": -v["C"] * S2}
        return v["L0"] + power - v["C"] * S2, np.stack([grads[n] for n in self.names], axis=-1)
