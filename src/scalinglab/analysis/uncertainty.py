"""How far to trust a fitted law of the loss: the fit over a sweep's runs with bootstrap intervals,
the compute-optimal frontier, predictions with intervals (the law's, and for a new run's measured
loss, one that admits the runs' noise too), and the extrapolation check (the law chosen and fitted
on the smaller runs, predicting the held-out larger ones). No JAX."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import FitError, UsageError
from ..sweep.spec import FitSpec
from .choose import choose, fit_on, law_inputs, predict_runs
from .laws import Fitted, Law, Loss
from .laws.bootstrap import LEVEL, bootstrap, interval
from .laws.chinchilla import CHINCHILLA
from .laws.optimum import compute_optimal, frontier_exponents
from .parts import Estimate, LawFit, Skipped
from .sweepfit import Extrapolation, Frontier, HeldOut, MainLaw, Prediction

# An interval wider than this (upper / lower) does not pin its parameter: the runs leave it open.
LOOSE = 10.0
FRONTIER_POINTS = 30
FRONTIER_REACH = 100  # the frontier is drawn to 100x the largest C_6ND of the runs
T = TypeVar("T")


@dataclass(frozen=True)
class At:
    """Where to predict: at a compute C_6ND (the compute-optimal N and D there), or at (N, D), with
    U unique tokens (a law of repeated data; without U, none repeated)."""

    C_6ND: float | None = None
    N: float | None = None
    D: float | None = None
    U: float | None = None
    flag: str = "--predict"
    text: str = ""
    """As the user wrote it (parse), for messages; else written from the values."""

    def __str__(self) -> str:
        point = ",".join(f"{k}={v:g}" for k in ("C_6ND", "N", "D", "U") if (v := getattr(self, k)) is not None)
        return f"{self.flag} {self.text or point}"

    def refuse_non_finite(self, values: dict[str, float], law: str) -> None:
        """UsageError naming this point where a law's prediction there is not a finite number (an
        overflow far beyond the runs), rather than printing nan or inf as if it were a prediction."""
        for k, v in values.items():
            if not np.isfinite(v):
                raise UsageError(f"{self}: {law} predicts {k} = {v:g} there, not a finite number; predict nearer the runs' sizes")

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
        if set(point) not in ({"C_6ND"}, {"N", "D"}, {"N", "D", "U"}) or not all(v > 0 and np.isfinite(v) for v in point.values()):
            raise UsageError(f"{flag} {text}: expected C_6ND=FLOPS or N=PARAMS,D=TOKENS[,U=UNIQUE_TOKENS] with positive numbers")
        return cls(**point, flag=flag, text=text)


def fit_law(runs: pd.DataFrame, spec: FitSpec = FitSpec(), law: Law = CHINCHILLA) -> Fitted:
    """One law over the runs (columns N, D, L; U where it reads it): Huber on log residuals with
    the fit section's threshold and solver."""
    return fit_on(law, runs, spec)


def bootstrap_law(
    runs: pd.DataFrame, spec: FitSpec = FitSpec(), seed: int = 0, workers: int | None = None, law: Law = CHINCHILLA
) -> list[Fitted]:
    """fit_law on spec.bootstrap resamples of the runs."""
    return bootstrap(law, law_inputs(law, runs), runs["L"], spec.bootstrap, Loss(spec.huber_delta), spec.method, seed, workers)


def prediction_interval(point, samples, noise: float | None, level: float = LEVEL) -> tuple[float, float]:
    """Where a new run's measured loss should fall: the law's bootstrap interval about the point
    prediction widened, on log L, by the runs' residual scale (each side's half-width and the
    noise's added in quadrature)."""
    z, centre = _z(level), float(np.log(point))
    lo, hi = interval(np.log(samples)) if len(samples) else (centre, centre)
    spread = z * (noise or 0.0)
    return float(np.exp(centre - np.hypot(centre - lo, spread))), float(np.exp(centre + np.hypot(hi - centre, spread)))


@functools.cache
def _z(level: float) -> float:
    """The normal quantile of a two-sided level (once: 20,000 held-out runs took ~2 s of ppf)."""
    return float(norm.ppf((1 + level) / 2))


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


def main_law(law: Fitted, boots: list[Fitted], spec: FitSpec, noise: float | None = None) -> MainLaw:
    """The law with each parameter's interval, which of them the intervals leave loose, and the
    runs' residual scale about it."""
    part = LawFit.of(law, boots)
    return MainLaw(
        **part.model_dump(), method=spec.method, n_bootstrap=len(boots), level=LEVEL, loose=loose(part.ci) if boots else None, noise=noise
    )


def _estimate(value: float, samples) -> Estimate:
    return Estimate(value=float(value), ci=interval(samples) if len(samples) else None)


def frontier(law: Fitted, boots: list[Fitted], C_6ND_runs: pd.Series) -> Frontier:
    """N_opt(C_6ND) and D_opt(C_6ND) from the runs' smallest C_6ND to FRONTIER_REACH x their largest,
    and the exponents a, b, each with bootstrap intervals."""
    C_6ND = np.geomspace(C_6ND_runs.min(), C_6ND_runs.max() * FRONTIER_REACH, FRONTIER_POINTS)
    N_opt, D_opt = compute_optimal(law, C_6ND)
    a, b = frontier_exponents(law, C_6ND)
    exponents = np.array([frontier_exponents(m, C_6ND) for m in boots]).reshape(-1, 2)
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


def predict(law: Fitted, boots: list[Fitted], at: At, noise: float | None = None) -> Prediction:
    """At a compute C_6ND: N_opt, D_opt, tokens per parameter and loss there (a law of compute
    alone: the loss); or at (N, D): the loss. Each with its bootstrap interval, and the loss with
    the prediction interval of a run's measured loss."""

    def values(m: Fitted) -> dict[str, float]:
        if at.C_6ND is not None and "N" not in m.law.inputs:
            return {"L": float(m(at.C_6ND))}
        if at.C_6ND is not None:
            n_opt, d_opt = compute_optimal(m, at.C_6ND)
            return {"N_opt": float(n_opt), "D_opt": float(d_opt), "tokens_per_param": float(d_opt / n_opt), "L": float(m.at(n_opt, d_opt))}
        return {"L": float(m.at(at.N, at.D, at.U))}

    point = values(law)
    at.refuse_non_finite(point, law.law.name)
    samples = [values(m) for m in boots]
    estimates = {k: _estimate(v, [s[k] for s in samples]) for k, v in point.items()}
    L_pi = prediction_interval(point["L"], [s["L"] for s in samples], noise)
    return Prediction(C_6ND=at.C_6ND, N=at.N, D=at.D, U=at.U, law=law.law.name, L_pi=L_pi, **estimates)


def held_out_rows(df: pd.DataFrame, fraction: float, by: str) -> pd.DataFrame:
    """The runs in the top `fraction` of `by` (at least one): what the extrapolation checks predict."""
    if by not in df:
        raise FitError(f"extrapolation check: no column {by!r}")
    cut = df[by].quantile(1 - fraction)
    held = df[df[by] >= cut] if fraction > 0 else df.iloc[0:0]
    return df.nlargest(1, by) if held.empty else held


def extrapolation(runs: pd.DataFrame, spec: FitSpec) -> Extrapolation:
    """The law chosen (fit.law, backtested on these runs alone) and fitted without the runs in the
    top holdout_fraction of holdout_by (at least one run), predicting those: each prediction with
    the law's bootstrap interval and the prediction interval of the measured loss; and the
    runner-up's predictions beside it."""
    held = held_out_rows(runs, spec.holdout_fraction, spec.holdout_by)
    rest = runs.drop(held.index)
    chosen = choose(rest, spec, all_intervals=False)
    law, boots = chosen.law, chosen.boots
    pred = predict_runs(law, held)
    samples = np.array([predict_runs(m, held) for m in boots]).reshape(len(boots), len(held))
    rows = [
        HeldOut(
            N=n, D=d, C=c, L=L, L_pred=p, rel_error=p / L - 1,
            L_pred_ci=interval(samples[:, i]) if boots else None,
            L_pred_pi=prediction_interval(p, samples[:, i], chosen.noise),
        )
        for i, (n, d, c, L, p) in enumerate(zip(held["N"], held["D"], held["C"], held["L"], pred))
    ]  # fmt: skip
    errors = np.abs([h.rel_error for h in rows])
    return Extrapolation(
        by=spec.holdout_by,
        fraction=spec.holdout_fraction,
        n_fit=len(rest),
        law=LawFit.of(law),
        why=chosen.table.why,
        runner_up=LawFit.of(chosen.runner_up) if chosen.runner_up is not None else None,
        held_out=rows,
        mean_abs_rel_error=float(errors.mean()),
        max_abs_rel_error=float(errors.max()),
    )
