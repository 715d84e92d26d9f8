"""The compute-optimal allocation any law of the loss in N and D implies: N_opt, D_opt minimising
L(N, D) subject to 6ND = C_6ND, and the exponents of N_opt ~ C_6ND^a, D_opt ~ C_6ND^b. In closed
form for Chinchilla's law; for any other, on a grid of tokens per parameter refined by a parabola
through the best cell and its neighbours. No JAX."""

from __future__ import annotations

import numpy as np

from ...errors import FitError
from .base import Fitted
from .chinchilla import Chinchilla
from .chinchilla import compute_optimal as closed_form
from .chinchilla import frontier_exponents as closed_exponents

RATIOS = np.geomspace(1e-3, 1e6, 721)  # D/N searched: far beyond any compute-optimal ratio published


def compute_optimal(law: Fitted, C_6ND) -> tuple[np.ndarray, np.ndarray]:
    """N_opt, D_opt at each C_6ND (FitError for a law that does not read N and D)."""
    if isinstance(law.law, Chinchilla):
        return closed_form(law, C_6ND)
    if not {"N", "D"} <= set(law.law.inputs):
        raise FitError(f"{law.law.name} predicts the loss of a compute ({law.law.form}), not of N and D: no compute-optimal allocation")
    C = np.atleast_1d(np.asarray(C_6ND, dtype=float))[:, None]
    log_N = 0.5 * (np.log(C / 6) - np.log(RATIOS))  # N D = C/6 and D/N = ratio
    N = np.exp(log_N)
    with np.errstate(all="ignore"):
        L = np.nan_to_num(np.log(law.at(N=N, D=C / (6 * N))), nan=np.inf)
    i = np.clip(np.argmin(L, axis=1), 1, len(RATIOS) - 2)
    rows = np.arange(len(C))
    y0, y1, y2 = L[rows, i - 1], L[rows, i], L[rows, i + 1]
    curvature = y0 - 2 * y1 + y2
    shift = np.where(curvature > 0, 0.5 * (y0 - y2) / np.where(curvature > 0, curvature, 1), 0.0)
    step = log_N[rows, i + 1] - log_N[rows, i]
    N_opt = np.exp(log_N[rows, i] + np.clip(shift, -1, 1) * step)
    N_opt = N_opt.reshape(np.shape(C_6ND))
    return N_opt, np.asarray(C_6ND, dtype=float) / (6 * N_opt)


def frontier_exponents(law: Fitted, C_6ND) -> tuple[float, float]:
    """a, b of N_opt ~ C_6ND^a and D_opt ~ C_6ND^b: in closed form for Chinchilla's law; otherwise
    the slope of log N_opt over the span of C_6ND given (a law may bend), and b = 1 - a."""
    if isinstance(law.law, Chinchilla):
        return closed_exponents(law)
    C = np.asarray(C_6ND, dtype=float)
    a = float(np.polyfit(np.log(C), np.log(compute_optimal(law, C)[0]), 1)[0])
    return a, 1 - a
