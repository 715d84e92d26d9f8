"""Choosing the law of the loss (fit.law): each candidate family fitted on the runs up to each of
several rolling origins (by compute, or by N or D) and scored on the runs beyond it, as a ladder is
validated by fitting the small rungs and predicting the next; the lowest mean out-of-sample error
wins, and AICc (on the fit over every run) only breaks ties. Every candidate is also fitted over
all the runs, with bootstrap intervals and its residual scale. No JAX."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..choices import pick
from ..errors import FitError
from ..sweep.spec import FitSpec
from ..sweep.types import LawName
from .laws import LAWS, LOSS_LAWS, Fitted, Law, Loss
from .laws.base import named_inputs
from .laws.bootstrap import bootstrap
from .laws.solve import fit
from .lawtable import Candidate, LawChoice, Origin
from .parts import LawFit, Skipped

TIE = 0.05  # backtest scores within 5% of the best are a tie, which AICc breaks
# The first origin fits on at least two thirds of the runs: each law is scored where it has most
# of the data it will predict from. From half, the first origin's fit on the two smallest of 4
# sizes dominated the mean, and chose a 3-parameter power law that missed the next model by 11%.
MIN_FIT_SHARE = 2 / 3
MAD_TO_SIGMA = 1.4826  # a normal's standard deviation from its median absolute deviation


def candidates(spec: FitSpec, allocating: bool = False) -> list[Law]:
    """The families fit.law names (auto: every one); allocating: only laws of N and D, which imply a
    compute-optimal allocation (FitError when fit.law names none)."""
    names = LOSS_LAWS if spec.law == [LawName.AUTO] else spec.law
    laws = [pick(LAWS[name], spec) for name in names]
    if allocating:
        laws = [law for law in laws if {"N", "D"} <= set(law.inputs)]
        if not laws:
            raise FitError(f"fit.law {', '.join(names)}: a law of compute alone has no compute-optimal N and D; name a law of N and D")
    return laws


def law_inputs(law: Law, runs: pd.DataFrame) -> tuple:
    """The law's input columns from a runs frame (N, D and U where it has one)."""
    return named_inputs(law, runs["N"].to_numpy(float), runs["D"].to_numpy(float), runs["U"].to_numpy(float) if "U" in runs else None)


def fit_on(law: Law, runs: pd.DataFrame, spec: FitSpec) -> Fitted:
    return fit(law, law_inputs(law, runs), runs["L"].to_numpy(float), Loss(spec.huber_delta), spec.method)


def predict_runs(law: Fitted, runs: pd.DataFrame) -> np.ndarray:
    return np.asarray(law(*law_inputs(law.law, runs)), dtype=float)


def log_residuals(law: Fitted, runs: pd.DataFrame) -> np.ndarray:
    """log L predicted - log L measured, per run."""
    return np.log(predict_runs(law, runs)) - np.log(runs["L"].to_numpy(float))


def noise(law: Fitted, runs: pd.DataFrame) -> float:
    """The residual scale of log L about the law: a robust standard deviation (median absolute
    residual, scaled), corrected for the parameters fitted."""
    r = log_residuals(law, runs)
    dof = max(len(r) - len(law.theta), 1)
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))) * np.sqrt(len(r) / dof))


def aicc(law: Fitted, runs: pd.DataFrame) -> float | None:
    """AICc of the log residuals as Gaussian (None when there are too few runs for it)."""
    r = log_residuals(law, runs)
    n, k = len(r), len(law.theta)
    if n - k - 1 <= 0:
        return None
    return float(n * np.log(max(np.mean(r**2), 1e-300)) + 2 * k + 2 * k * (k + 1) / (n - k - 1))


def origins(runs: pd.DataFrame, by: str, count: int) -> list[float]:
    """Up to `count` thresholds of `by`, evenly among the distinct values that leave at least
    MIN_FIT_SHARE of the runs in the fit and one run beyond: fit on by <= threshold, predict the rest."""
    values = np.sort(runs[by].unique())
    # The share of runs at or below each value, by one sort (a pass over the runs per value: 100,000 runs, minutes).
    share = np.searchsorted(np.sort(runs[by].to_numpy()), values[:-1], side="right") / len(runs)
    usable = list(values[:-1][share >= MIN_FIT_SHARE - 1e-9])  # 6 of 9 is two thirds
    if not usable:
        return []
    picks = np.unique(np.round(np.linspace(0, len(usable) - 1, min(count, len(usable)))).astype(int))
    return [float(usable[i]) for i in picks]


def backtest(
    law: Law, runs: pd.DataFrame, by: str, cuts: list[float], spec: FitSpec, derived: pd.DataFrame | None = None
) -> list[float | None]:
    """Per origin: the mean |relative error| of the law's prediction of the runs beyond it (None:
    the runs up to it cannot fit the law). Derived points (analysis.curvepoints) are never
    predicted; they join the fit at an origin that holds every trained run of their size."""
    errors: list[float | None] = []
    for cut in cuts:
        inside, beyond = runs[runs[by] <= cut], runs[runs[by] > cut]
        try:
            fitted = fit_on(law, with_derived(inside, derived_within(runs, derived, by, cut)), spec)
        except FitError:
            errors.append(None)
            continue
        pred = predict_runs(fitted, beyond)
        errors.append(float(np.mean(np.abs(pred / beyond["L"].to_numpy(float) - 1))))
    return errors


def with_derived(runs: pd.DataFrame, derived: pd.DataFrame | None) -> pd.DataFrame:
    """The runs and the derived points as one frame to fit (the runs alone without points)."""
    return runs if derived is None or derived.empty else pd.concat([runs, derived], ignore_index=True)


def derived_within(runs: pd.DataFrame, derived: pd.DataFrame | None, by: str, cut: float) -> pd.DataFrame | None:
    """The derived points of the sizes whose trained runs all lie at or below the origin: a size's
    points come from a curve law fitted on all its runs, so a size with a run beyond would leak it."""
    if derived is None or derived.empty:
        return derived
    return derived[derived["N"].map(runs.groupby("N")[by].max()) <= cut]


@dataclass(frozen=True)
class Scores:
    """A fitted candidate's backtest errors by origin, their mean, AICc and residual scale."""

    errors: list[float | None]
    score: float | None
    aicc: float | None
    noise: float


@dataclass(frozen=True)
class Chosen:
    """The choice as fit.json keeps it, the chosen law with its resamples and residual scale, and
    the runner-up (None when nothing else fitted), callable."""

    table: LawChoice
    law: Fitted
    boots: list[Fitted]
    noise: float
    runner_up: Fitted | None


@dataclass(frozen=True)
class Scored:
    """Every candidate fitted over the runs (and any derived points) and backtested, best first."""

    cuts: list[float]
    fits: dict[str, Fitted]
    scores: dict[str, Scores]
    skipped: dict[str, Skipped]
    order: list[str]
    why: str

    @property
    def score(self) -> float | None:
        """The backtest error of the law ranked first (None: no backtest could score it)."""
        return self.scores[self.order[0]].score


def choose(
    runs: pd.DataFrame, spec: FitSpec, all_intervals: bool = True, allocating: bool = False, derived: pd.DataFrame | None = None
) -> Chosen:
    """The candidates of spec.law (laws of N and D alone where allocating) fitted, backtested and
    one chosen; FitError when none fits. Bootstrap intervals for the chosen law, and for every
    candidate with all_intervals. derived: points the laws are also fitted on, never scored on."""
    return settle(score_laws(runs, spec, allocating, derived), runs, spec, all_intervals, derived)


def score_laws(runs: pd.DataFrame, spec: FitSpec, allocating: bool = False, derived: pd.DataFrame | None = None) -> Scored:
    """Each candidate fitted over the runs and the derived points, backtested on the runs, ranked;
    FitError when none fits. AICc and the residual scale are of the trained runs."""
    by = spec.holdout_by
    cuts = origins(runs, by, spec.backtest_origins)
    fits: dict[str, Fitted] = {}
    scores: dict[str, Scores] = {}
    skipped: dict[str, Skipped] = {}
    for law in candidates(spec, allocating):
        try:
            full = fits[law.name] = fit_on(law, with_derived(runs, derived), spec)
        except FitError as e:
            skipped[law.name] = Skipped(skipped=str(e))
            continue
        errors = backtest(law, runs, by, cuts, spec, derived)
        score = float(np.mean([e for e in errors if e is not None])) if cuts and None not in errors else None
        scores[law.name] = Scores(errors, score, aicc(full, runs), noise(full, runs))
    if not fits:
        raise FitError("; ".join(s.skipped for s in skipped.values()))
    order, why = rank(scores, by, len(cuts))
    return Scored(cuts, fits, scores, skipped, order, why)


def settle(scored: Scored, runs: pd.DataFrame, spec: FitSpec, all_intervals: bool = True, derived: pd.DataFrame | None = None) -> Chosen:
    """The scored choice with its bootstrap intervals (over the rows it was fitted on) and its table."""
    by, cuts, fits, scores, order = spec.holdout_by, scored.cuts, scored.fits, scored.scores, scored.order
    rows_fitted = with_derived(runs, derived)
    L, loss = rows_fitted["L"].to_numpy(float), Loss(spec.huber_delta)
    boots = {
        n: bootstrap(fits[n].law, law_inputs(fits[n].law, rows_fitted), L, spec.bootstrap, loss, spec.method)
        for n in order[: None if all_intervals else 1]
    }
    rows = [
        Candidate(name=n, fit=LawFit.of(fits[n], boots.get(n, [])), errors=s.errors, score=s.score, aicc=s.aicc, noise=s.noise)
        for n, s in scores.items()
    ] + [Candidate(name=n, fit=s, errors=[]) for n, s in scored.skipped.items()]
    table = LawChoice(
        by=by,
        origins=[Origin(at=c, n_fit=int((runs[by] <= c).sum()), n_held=int((runs[by] > c).sum())) for c in cuts],
        candidates=rows,
        chosen=order[0],
        runner_up=order[1] if len(order) > 1 else None,
        why=scored.why,
    )
    return Chosen(table, fits[order[0]], boots[order[0]], scores[order[0]].noise, fits[order[1]] if len(order) > 1 else None)


def rank(scores: dict[str, Scores], by: str, n_origins: int) -> tuple[list[str], str]:
    """The fitted candidates best first, and why the first: the lowest backtest score (ties within
    TIE broken by AICc), or the lowest AICc where no backtest could score them."""
    scored = sorted((n for n, s in scores.items() if s.score is not None), key=lambda n: scores[n].score or 0.0)
    unscored = sorted((n for n, s in scores.items() if s.score is None), key=lambda n: _aicc_key(scores[n]))
    if len(scores) == 1:
        name, s = next(iter(scores.items()))
        err = f", backtest error {s.score:.2%}" if s.score is not None else ""
        return [name], f"{name}: the only law named in fit.law that these runs fit{err}"
    if not scored:
        return unscored, f"{unscored[0]}: lowest AICc; too few runs for a backtest by {by}"
    best = scores[scored[0]].score or 0.0
    tied = [n for n in scored if (scores[n].score or 0.0) <= best * (1 + TIE)]
    first = min(tied, key=lambda n: _aicc_key(scores[n]))
    order = [first] + [n for n in scored if n != first] + unscored
    if len(tied) > 1:
        others = ", ".join(f"{n} {scores[n].score:.2%}" for n in tied if n != first)
        return (
            order,
            f"{first}: backtest error {scores[first].score:.2%} ties ({TIE:.0%}) with {others}; lowest AICc ({scores[first].aicc:.1f})",
        )
    runner = order[1]
    tail = f"; runner-up {runner} {scores[runner].score:.2%}" if runner in scored else ""
    return (
        order,
        f"{first}: lowest backtest error, {best:.2%} mean |relative error| over {n_origins} origin{'s' * (n_origins > 1)} by {by}{tail}",
    )


def _aicc_key(s: Scores) -> float:
    return np.inf if s.aicc is None else s.aicc
