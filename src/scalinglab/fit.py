"""Scaling laws fitted with scipy in log space. Pure functions over arrays and DataFrames; no JAX.

- L = a * X^b and L = E + a * X^b against any column X (N, D, C, ...).
- L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Approach 3): Huber loss on
  log-loss residuals with the law written as a log-sum-exp, L-BFGS-B with an analytic gradient.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize

# Hoffmann et al.'s grid of starting points: alpha, beta, log E, log A, log B.
START_GRID = (
    np.arange(0, 2.01, 0.5),
    np.arange(0, 2.01, 0.5),
    np.arange(-1, 1.01, 0.5),
    np.arange(0, 25.1, 5),
    np.arange(0, 25.1, 5),
)
REFINED_STARTS = 32  # L-BFGS-B runs from the best grid points, not all 4,500 (seconds, not minutes)


class FitError(ValueError):
    """Not enough, or unsuitable, data for the requested law."""


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


def _huber_objective(p, lN, lD, lL, delta):
    """Sum of Huber(log L_pred - log L) and its gradient, for p = (log A, log B, log E, alpha, beta).
    Vectorised over leading axes of p (shape (..., 5)) for scoring many starts at once."""
    a, b, e, alpha, beta = np.moveaxis(np.asarray(p, dtype=float), -1, 0)
    terms = np.stack(
        np.broadcast_arrays(e[..., None], a[..., None] - alpha[..., None] * lN, b[..., None] - beta[..., None] * lD)
    )
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    r = top + np.log(total) - lL
    huber = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    g = np.clip(r, -delta, delta) / total  # dHuber/dr times 1/sum(w): w/total are the softmax weights
    grad = np.stack(
        [(g * w[1]).sum(-1), (g * w[2]).sum(-1), (g * w[0]).sum(-1), -(g * w[1] * lN).sum(-1), -(g * w[2] * lD).sum(-1)],
        axis=-1,
    )
    return huber.sum(-1), grad


def fit_chinchilla(N, D, L, huber_delta: float = 1e-3) -> Chinchilla:
    lN, lD, lL = _logs(N, D, L)
    if len(np.unique(lN)) < 2 or len(np.unique(lD)) < 2 or len(lL) < 5:
        raise FitError("L(N,D): need at least 2 distinct N, 2 distinct D and 5 runs")
    alpha, beta, e, a, b = (g.ravel() for g in np.meshgrid(*START_GRID, indexing="ij"))
    starts = np.stack([a, b, e, alpha, beta], axis=-1)
    scores, _ = _huber_objective(starts, lN, lD, lL, huber_delta)
    best = None
    for p0 in starts[np.argsort(scores)[:REFINED_STARTS]]:
        r = minimize(
            _huber_objective,
            p0,
            args=(lN, lD, lL, huber_delta),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12},
        )
        if best is None or r.fun < best.fun:
            best = r
    a, b, e, alpha, beta = best.x
    return Chinchilla(
        float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta), float(best.fun), len(lL)
    )


def _best_slice(df: pd.DataFrame, x: str, other: str) -> tuple[pd.DataFrame, str]:
    """The rows at the value of `other` with the most distinct x values (ties: the largest)."""
    counts = df.groupby(other)[x].nunique()
    value = max(counts.index, key=lambda v: (counts[v], v))
    return df[df[other] == value], f"{other}={value:.3g}"


def frontier(df: pd.DataFrame) -> pd.DataFrame:
    """Compute-efficient runs: lower loss than every run with less compute."""
    df = df.sort_values(["C", "L"])
    return df[df["L"] < df["L"].cummin().shift(fill_value=np.inf)]


def fit_all(df: pd.DataFrame, huber_delta: float = 1e-3) -> dict:
    """Every law the data supports: L(N,D), and L vs N, D and C both with and without E.
    df needs columns N, D, C and L. Returns a JSON-ready dict (L(N,D) parameters at top level)."""
    out: dict = {}
    try:
        out.update(asdict(fit_chinchilla(df["N"], df["D"], df["L"], huber_delta)))
        out["law"] = "L(N,D) = E + A/N^alpha + B/D^beta"
    except FitError as e:
        out["skipped"] = str(e)
    laws = []
    slices = [(*_best_slice(df, "N", "D"), "N"), (*_best_slice(df, "D", "N"), "D"), (frontier(df), "compute frontier", "C")]
    for (rows, at, x), irreducible in itertools.product(slices, (False, True)):
        try:
            law = fit_power_law(rows[x], rows["L"], irreducible, name=x, at=at)
        except FitError:
            continue
        laws.append({**asdict(law), "form": law.form})
    out["power_laws"] = laws
    return out


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
