"""How far to trust a fitted L(N,D): the fit over a sweep's runs with bootstrap intervals, the
compute-optimal frontier, predictions with intervals, and the extrapolation check (fit on the
smaller runs, predict the held-out larger ones). No JAX."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from ..errors import FitError, UsageError
from ..sweep.spec import FitSpec
from .laws import Fitted, Loss
from .laws.bootstrap import LEVEL, bootstrap, interval
from .laws.chinchilla import CHINCHILLA, compute_optimal, frontier_exponents
from .laws.solve import fit
from .parts import Estimate, LawFit, Skipped
from .sweepfit import Extrapolation, Frontier, HeldOut, MainLaw, Prediction

# An interval wider than this (upper / lower) does not pin its parameter: the runs leave it open.
LOOSE = 10.0
FRONTIER_POINTS = 30
FRONTIER_REACH = 100  # the frontier is drawn to 100x the largest C_6ND of the runs
T = TypeVar("T")


@dataclass(frozen=True)
class At:
    """Where to predict: at a compute C_6ND (the compute-optimal N and D there), or at (N, D)."""

    C_6ND: float | None = None
    N: float | None = None
    D: float | None = None

    @classmethod
    def parse(cls, text: str, flag: str = "--predict") -> At:
        """'C_6ND=1e21' or 'N=1e9,D=2e10'; UsageError naming the flag otherwise."""
        try:
            point = {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
        except ValueError:
            point = {}
        if set(point) == {"C"}:
            raise UsageError(
                f"{flag} {text}: the law's compute is C_6ND = 6ND, not C (the FLOPs a run computes, attention "
                f"and embeddings counted); write {flag} C_6ND={text.partition('=')[2]}"
            )
        if set(point) not in ({"C_6ND"}, {"N", "D"}) or not all(v > 0 and np.isfinite(v) for v in point.values()):
            raise UsageError(f"{flag} {text}: expected C_6ND=FLOPS or N=PARAMS,D=TOKENS with positive numbers")
        return cls(**point)


def fit_law(runs: pd.DataFrame, spec: FitSpec = FitSpec()) -> Fitted:
    """L(N,D) over the runs (columns N, D, L): Huber on log residuals with the fit section's
    threshold and solver."""
    return fit(CHINCHILLA, (runs["N"], runs["D"]), runs["L"], Loss(spec.huber_delta), spec.method)


def bootstrap_law(runs: pd.DataFrame, spec: FitSpec = FitSpec(), seed: int = 0, workers: int | None = None) -> list[Fitted]:
    """fit_law on spec.bootstrap resamples of the runs."""
    return bootstrap(CHINCHILLA, (runs["N"], runs["D"]), runs["L"], spec.bootstrap, Loss(spec.huber_delta), spec.method, seed, workers)


def attempt(f: Callable[..., T], *args) -> T | Skipped:
    """f(*args), or Skipped(why) when the data cannot support that fit: one part of a report that
    cannot be fitted does not stop the others."""
    try:
        return f(*args)
    except FitError as e:
        return Skipped(skipped=str(e))


def loose(ci: dict[str, tuple[float, float]]) -> list[str]:
    """The parameters whose interval reaches 0 or spans more than a factor LOOSE."""
    return [k for k, (lo, hi) in ci.items() if not (lo > 0 and hi <= LOOSE * lo)]


def main_law(law: Fitted, boots: list[Fitted], spec: FitSpec) -> MainLaw:
    """L(N,D) with each parameter's interval and which of them the intervals leave loose."""
    part = LawFit.of(law, boots)
    return MainLaw(**part.model_dump(), method=spec.method, n_bootstrap=len(boots), level=LEVEL, loose=loose(part.ci) if boots else None)


def _estimate(value: float, samples) -> Estimate:
    return Estimate(value=float(value), ci=interval(samples) if len(samples) else None)


def frontier(law: Fitted, boots: list[Fitted], C_6ND_runs: pd.Series) -> Frontier:
    """N_opt(C_6ND) and D_opt(C_6ND) from the runs' smallest C_6ND to FRONTIER_REACH x their largest,
    and the exponents a, b, each with bootstrap intervals."""
    C_6ND = np.geomspace(C_6ND_runs.min(), C_6ND_runs.max() * FRONTIER_REACH, FRONTIER_POINTS)
    N_opt, D_opt = compute_optimal(law, C_6ND)
    a, b = frontier_exponents(law)
    exponents = np.array([frontier_exponents(m) for m in boots]).reshape(-1, 2)
    out = {
        "a": _estimate(a, exponents[:, 0]),
        "b": _estimate(b, exponents[:, 1]),
        "C_6ND": C_6ND.tolist(),
        "N_opt": N_opt.tolist(),
        "D_opt": D_opt.tolist(),
    }
    if boots:
        samples = np.array([compute_optimal(m, C_6ND) for m in boots])  # (boots, 2, points)
        out["N_opt_ci"] = [interval(samples[:, 0, i]) for i in range(len(C_6ND))]
        out["D_opt_ci"] = [interval(samples[:, 1, i]) for i in range(len(C_6ND))]
    return Frontier(**out)


def predict(law: Fitted, boots: list[Fitted], at: At) -> Prediction:
    """At a compute C_6ND: N_opt, D_opt, tokens per parameter and loss there; or at (N, D): the
    loss. Each with its bootstrap interval."""

    def values(m: Fitted) -> dict[str, float]:
        if at.C_6ND is not None:
            n_opt, d_opt = compute_optimal(m, at.C_6ND)
            return {"N_opt": float(n_opt), "D_opt": float(d_opt), "tokens_per_param": float(d_opt / n_opt), "L": float(m(n_opt, d_opt))}
        return {"L": float(m(at.N, at.D))}

    point, samples = values(law), [values(m) for m in boots]
    return Prediction(C_6ND=at.C_6ND, N=at.N, D=at.D, **{k: _estimate(v, [s[k] for s in samples]) for k, v in point.items()})


def held_out_rows(df: pd.DataFrame, fraction: float, by: str) -> pd.DataFrame:
    """The runs in the top `fraction` of `by` (at least one): what the extrapolation checks predict."""
    if by not in df:
        raise FitError(f"extrapolation check: no column {by!r}")
    cut = df[by].quantile(1 - fraction)
    held = df[df[by] >= cut] if fraction > 0 else df.iloc[0:0]
    return df.nlargest(1, by) if held.empty else held


def extrapolation(runs: pd.DataFrame, spec: FitSpec) -> Extrapolation:
    """L(N,D) fitted without the runs in the top holdout_fraction of holdout_by (at least one run),
    predicting those, each prediction with the interval of the law refitted on resamples of the
    runs in the fit."""
    held = held_out_rows(runs, spec.holdout_fraction, spec.holdout_by)
    rest = runs.drop(held.index)
    law = fit_law(rest, spec)
    boots = bootstrap_law(rest, spec)
    pred = law(held["N"], held["D"])
    rows = [
        HeldOut(N=n, D=d, C=c, L=L, L_pred=p, rel_error=p / L - 1, L_pred_ci=interval([m(n, d) for m in boots]) if boots else None)
        for n, d, c, L, p in zip(held["N"], held["D"], held["C"], held["L"], pred)
    ]
    errors = np.abs([h.rel_error for h in rows])
    return Extrapolation(
        by=spec.holdout_by,
        fraction=spec.holdout_fraction,
        n_fit=len(rest),
        law=LawFit.of(law),
        held_out=rows,
        mean_abs_rel_error=float(errors.mean()),
        max_abs_rel_error=float(errors.max()),
    )
