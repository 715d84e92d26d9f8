"""Scaling laws fitted with scipy in log space. Pure functions over arrays and DataFrames; no JAX.

- L = a * X^b and L = E + a * X^b against any column X (N, D, C, ...).
- L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Approach 3): Huber loss on
  log-loss residuals with the law written as a log-sum-exp, minimised two ways that agree:
  "grid", the published recipe (L-BFGS-B from each of Hoffmann's 4,500 starting points), and
  "varpro", variable projection (for fixed alpha, beta the law is linear in E, A, B: solve that
  part by non-negative least squares, search alpha, beta on a grid, then polish all five
  parameters with L-BFGS-B on the same Huber objective) — the same optimum, ~100x faster.
- Compute-optimal allocation under C = 6ND, from L(N,D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize, nnls

from ..errors import FitError
from ..sweep.spec import FitSpec

# The five parameters of L(N,D), in the one order used everywhere: the Chinchilla fields, fit.json,
# the optimizer's vector (log E, log A, log B, alpha, beta), its bounds and starting grid.
PARAMS = ("E", "A", "B", "alpha", "beta")
DEFAULTS = FitSpec()  # the fit section's defaults, the one source of them
# Hoffmann et al.'s grid of starting points: log E, log A, log B, alpha, beta.
START_GRID = (
    np.arange(-1, 1.01, 0.5),
    np.arange(0, 25.1, 5),
    np.arange(0, 25.1, 5),
    np.arange(0, 2.01, 0.5),
    np.arange(0, 2.01, 0.5),
)
# Variable projection: the (alpha, beta) search grid and how many of its best cells to polish.
VARPRO_GRID = np.arange(0.04, 2.001, 0.08)
VARPRO_POLISH = 3
METHODS = ("varpro", "grid")


@dataclass(frozen=True)
class PowerLaw:
    """L = E + a * X^b (E = 0 when fitted without an irreducible term)."""

    x: str
    E: float
    a: float
    b: float
    n_points: int
    at: str = ""  # which slice of the data it was fitted on, e.g. "D=1.0e+06"

    def __call__(self, x):
        return self.E + self.a * np.asarray(x, dtype=float) ** self.b

    @property
    def form(self) -> str:
        return f"L = E + a*{self.x}^b" if self.E else f"L = a*{self.x}^b"


@dataclass(frozen=True)
class Chinchilla:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    n_points: int

    def __call__(self, N, D):
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta


def _logs(*cols) -> list[np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):  # reported below, as one error
        out = [np.log(np.asarray(c, dtype=float)) for c in cols]
    if not all(np.all(np.isfinite(c)) for c in out):
        raise FitError("every value must be positive and finite")
    return out


def fit_power_law(x, L, irreducible: bool = False, name: str = "X", at: str = "") -> PowerLaw:
    lx, lL = _logs(x, L)
    need = 3 if irreducible else 2
    if len(np.unique(lx)) < need:
        raise FitError(f"L vs {name}: need at least {need} distinct {name} values, got {len(np.unique(lx))}")
    if not irreducible:
        b, log_a = np.polyfit(lx, lL, 1)
        return PowerLaw(name, 0.0, float(np.exp(log_a)), float(b), len(lx), at)

    def residuals(p):
        e, log_a, b = p
        return np.logaddexp(e, log_a + b * lx) - lL

    best = None
    for frac in (0.1, 0.5, 0.8, 0.95):  # starts: E as a fraction of the smallest loss
        E0 = frac * float(np.exp(lL.min()))
        b0, log_a0 = np.polyfit(lx, np.log(np.exp(lL) - E0), 1)
        r = least_squares(residuals, [np.log(E0), log_a0, b0])
        if best is None or r.cost < best.cost:
            best = r
    e, log_a, b = best.x
    return PowerLaw(name, float(np.exp(e)), float(np.exp(log_a)), float(b), len(lx), at)


def _residuals(p, lN, lD, lL):
    """log L_pred - log L for p = (log E, log A, log B, alpha, beta), the law written as a
    log-sum-exp of its three terms; with the terms' exp(term - max) (3, ..., n) and their sum, whose
    ratio is the softmax that derivatives need. Vectorised over leading axes of p (shape (..., 5))."""
    e, a, b, alpha, beta = np.moveaxis(np.asarray(p, dtype=float), -1, 0)
    terms = np.stack(
        np.broadcast_arrays(e[..., None], a[..., None] - alpha[..., None] * lN, b[..., None] - beta[..., None] * lD)
    )
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    return top + np.log(total) - lL, w, total


def _huber(r, delta):
    return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def _huber_objective(p, lN, lD, lL, delta):
    """Sum of Huber(log L_pred - log L) and its gradient, for p = (log E, log A, log B, alpha, beta).
    Vectorised over leading axes of p (shape (..., 5)) for scoring many starts at once."""
    r, w, total = _residuals(p, lN, lD, lL)
    g = np.clip(r, -delta, delta) / total  # dHuber/dr times 1/sum(w): w/total are the softmax weights
    grad = np.stack(
        [(g * w[0]).sum(-1), (g * w[1]).sum(-1), (g * w[2]).sum(-1), -(g * w[1] * lN).sum(-1), -(g * w[2] * lD).sum(-1)],
        axis=-1,
    )
    return _huber(r, delta).sum(-1), grad


# Box for (log E, log A, log B, alpha, beta): wide enough to hold every published fit inside,
# tight enough that a degenerate resample (say, one data size) stops at a wall instead of
# walking A or B off to 1e40 over thousands of iterations.
BOUNDS = [(-30, 10), (-20, 60), (-20, 60), (0, 4), (0, 4)]


def _lbfgs(p0, lN, lD, lL, delta):
    return minimize(
        _huber_objective,
        np.clip(p0, *np.array(BOUNDS).T),
        args=(lN, lD, lL, delta),
        jac=True,
        method="L-BFGS-B",
        bounds=BOUNDS,
        options={"maxiter": 10_000, "ftol": 1e-12, "gtol": 1e-10},
    )


def _grid_recipe(lN, lD, lL, delta):
    starts = np.stack([g.ravel() for g in np.meshgrid(*START_GRID, indexing="ij")], axis=-1)
    return [_lbfgs(p0, lN, lD, lL, delta) for p0 in starts]


def _varpro_design(lN, lD, lL):
    """VARPRO_GRID's cells (alpha, beta), and for each the linear part's design (cells, points, 3):
    columns 1, N^-alpha, D^-beta for E, A, B, rows divided by L so that residuals are relative."""
    alpha, beta = (g.ravel() for g in np.meshgrid(VARPRO_GRID, VARPRO_GRID, indexing="ij"))
    X = np.stack(np.broadcast_arrays(1.0, np.exp(-alpha[:, None] * lN), np.exp(-beta[:, None] * lD)), axis=-1)
    return alpha, beta, X / np.exp(lL)[:, None]


def _varpro(lN, lD, lL, delta):
    """For each (alpha, beta) on VARPRO_GRID: E, A, B >= 0 by least squares on relative residuals
    (L_pred - L) / L, which approximate the log residuals; score by the Huber objective; polish
    the best few cells with L-BFGS-B on all five parameters."""
    L = np.exp(lL)
    alpha, beta, X = _varpro_design(lN, lD, lL)
    # All cells at once by the normal equations; cells whose solution leaves the feasible set
    # (a negative E, A or B) are solved again, one by one, with NNLS.
    coef = np.linalg.solve(X.transpose(0, 2, 1) @ X + 1e-12 * np.eye(3), X.sum(axis=1)[..., None])[..., 0]
    for i in np.flatnonzero((coef < 0).any(axis=1)):
        coef[i] = nnls(X[i], np.ones_like(L))[0]
    starts = np.column_stack([np.log(np.maximum(coef, 1e-12)), alpha, beta])  # coef: E, A, B
    scores, _ = _huber_objective(starts, lN, lD, lL, delta)
    return [_lbfgs(p0, lN, lD, lL, delta) for p0 in starts[np.argsort(scores)[:VARPRO_POLISH]]]


def fit_chinchilla(N, D, L, huber_delta: float = DEFAULTS.huber_delta, method: str = DEFAULTS.method) -> Chinchilla:
    lN, lD, lL = _logs(N, D, L)
    if len(np.unique(lN)) < 2 or len(np.unique(lD)) < 2 or len(lL) < 5:
        raise FitError(
            f"L(N,D): need at least 2 distinct N, 2 distinct D and 5 runs (5 parameters); got "
            f"{len(np.unique(lN))} N, {len(np.unique(lD))} D, {len(lL)} runs"
        )
    if method not in METHODS:
        raise FitError(f"L(N,D): method {method!r} is not one of {', '.join(METHODS)}")
    solver = _varpro if method == "varpro" else _grid_recipe
    best = min(solver(lN, lD, lL, huber_delta), key=lambda r: r.fun)
    e, a, b, alpha, beta = best.x
    return Chinchilla(*np.exp([e, a, b]).tolist(), float(alpha), float(beta), float(best.fun), len(lL))


def frontier_exponents(law: Chinchilla) -> tuple[float, float]:
    """a, b of N_opt ~ C^a and D_opt ~ C^b under C = 6ND: beta/(alpha+beta), alpha/(alpha+beta)."""
    return law.beta / (law.alpha + law.beta), law.alpha / (law.alpha + law.beta)


def compute_optimal(law: Chinchilla, C):
    """N_opt, D_opt minimising law(N, D) subject to C = 6 N D (Hoffmann et al. 2022, eq. 4)."""
    C = np.asarray(C, dtype=float)
    a, _ = frontier_exponents(law)
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    N_opt = G * (C / 6) ** a
    return N_opt, C / (6 * N_opt)


def from_columns(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """A user's table -> columns N, D, C, L. mapping: our name -> their column. D = C / (6N)
    when only C is given, C = 6ND when only D is."""
    renamed = df.rename(columns={theirs: ours for ours, theirs in mapping.items()})
    missing = [c for c in ("N", "L") if c not in renamed]
    if missing or ("D" not in renamed and "C" not in renamed):
        need = ", ".join(missing + ([] if ("D" in renamed or "C" in renamed) else ["D or C"]))
        raise FitError(f"the table has no column for {need}; columns are {list(df.columns)}; map one with --map N=COLUMN")
    if "D" not in renamed:
        renamed["D"] = renamed["C"] / (6 * renamed["N"])
    if "C" not in renamed:
        renamed["C"] = 6 * renamed["N"] * renamed["D"]
    out = renamed[["N", "D", "C", "L"]].astype(float)
    bad = ~np.isfinite(out).all(axis=1) | (out <= 0).any(axis=1)
    if bad.any():
        raise FitError(f"row {int(np.flatnonzero(bad)[0])}: N, D, C and L must be positive numbers")
    return out
