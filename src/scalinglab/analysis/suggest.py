"""The next runs worth training: those expected to shrink the uncertainty of the loss predicted at
a target compute C the most per FLOP. Pure functions over the bootstrap fits; no JAX.

The quantity: each bootstrap law's loss at its own compute-optimal (N, D) for C (what
`fit --predict C=...` reports with an interval), in log space, where the fit's noise is. The rule
is a linearised expected variance reduction (an ensemble Kalman update): read the bootstrap laws
as a Gaussian over (target, every candidate's log loss) with their sample covariance S. Training
candidate x, whose measured log loss carries the fit's residual variance s2, is expected to cut
the target's variance by S[t,x]^2 / (S[x,x] + s2): a run teaches about the target as much as the
laws that disagree there also disagree about the run, discounted where noise would drown that.
Picks are greedy, by that cut per FLOP (C = 6ND); after each pick S is conditioned on it
(exact for a Gaussian), so the next pick counts only what this one leaves unknown. Greedy by
ratio alone can starve one expensive, decisive run, so the plain greedy (largest cut that fits
what is left) runs too and the better of the two is kept (Krause & Guestrin 2005's budgeted
rule). Why this and not a refit per candidate: one bootstrap, then linear algebra on a
(candidates + 1)^2 matrix, scores hundreds of candidates in milliseconds, while simulating each
candidate's outcome would cost a bootstrap each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import FitError
from .laws import Chinchilla, compute_optimal

GRID_POINTS = 16  # candidate values per axis of the (N, D) log grid
MIN_LAWS = 10  # fewer bootstrap fits cannot estimate the covariance the rule reads


@dataclass(frozen=True)
class Pick:
    N: float
    D: float
    cost: float
    """C = 6ND of the run."""
    share: float
    """The part of today's variance of the target's log loss this run is expected to remove."""


@dataclass(frozen=True)
class Suggestion:
    picks: list[Pick]
    spread: float
    """Today's standard deviation of the target's log loss over the bootstrap laws."""
    left: float
    """The share of the variance expected to remain after every pick."""


def target_log_loss(laws: list[Chinchilla], C: float) -> np.ndarray:
    """Each law's log loss at its own compute-optimal (N, D) for C."""
    return np.array([np.log(m(*compute_optimal(m, C))) for m in laws])


def noise_variance(law: Chinchilla, runs: pd.DataFrame) -> float:
    """Mean squared log residual of the runs around the law: the noise a new run's loss carries."""
    return float(np.mean(np.log(runs["L"] / law(runs["N"], runs["D"])) ** 2))


def candidate_grid(runs: pd.DataFrame, law: Chinchilla, C: float, budget: float, n: int = GRID_POINTS,
                   sizes: np.ndarray | None = None):
    """(N, D) on a log grid from the smallest run to the larger of the largest run and the
    target's compute-optimal allocation (N: `sizes` instead, where the sweep's sizes are fixed),
    each with 6ND <= budget and tokens per parameter D/N
    within the span of the runs' and the target's: the law is trusted where it was fitted, and
    a tiny model on endless (repeated) data tests a regime the target does not need."""
    N_opt, D_opt = compute_optimal(law, C)
    axes = [np.geomspace(runs[k].min(), max(runs[k].max(), opt), n) for k, opt in (("N", N_opt), ("D", D_opt))]
    N, D = (a.ravel() for a in np.meshgrid(axes[0] if sizes is None else sizes, axes[1], indexing="ij"))
    ratios = np.append(runs["D"] / runs["N"], D_opt / N_opt)
    keep = (6 * N * D <= budget) & (D / N >= ratios.min()) & (D / N <= ratios.max())
    return N[keep], D[keep]


def _greedy(S: np.ndarray, cost: np.ndarray, budget: float, s2: float, per_flop: bool) -> tuple[list[int], list[float], float]:
    """Indices picked, each one's variance cut, and the target's variance left (S[0, 0] after)."""
    S, left, open_ = S.copy(), budget, np.ones(len(cost), bool)
    picked, cuts = [], []
    while (fits := open_ & (cost <= left)).any():
        cut = S[0, 1:] ** 2 / (np.diag(S)[1:] + s2)
        j = int(np.argmax(np.where(fits, cut / cost if per_flop else cut, -np.inf)))
        picked.append(j)
        cuts.append(float(cut[j]))
        gain = S[:, j + 1] / (S[j + 1, j + 1] + s2)
        S -= np.outer(gain, S[j + 1])  # condition on observing candidate j
        open_[j], left = False, left - cost[j]
    return picked, cuts, float(S[0, 0])


def suggest(law: Chinchilla, boots: list[Chinchilla], runs: pd.DataFrame, C: float, budget: float,
            N: np.ndarray, D: np.ndarray) -> Suggestion:
    """The candidates (N, D) to train within `budget` FLOPs (C = 6ND), chosen as the module says.
    Candidates at the (N, D) of a run already done are left out: planned again, they would be it."""
    if len(boots) < MIN_LAWS:
        raise FitError(f"suggest: only {len(boots)} bootstrap fits succeeded; it needs at least {MIN_LAWS}")
    done = np.isclose(N[:, None], runs["N"].to_numpy()) & np.isclose(D[:, None], runs["D"].to_numpy())
    N, D = N[~done.any(axis=1)], D[~done.any(axis=1)]
    cost = 6 * N * D
    outcomes = np.log([m(N, D) for m in boots])  # (laws, candidates)
    S = np.atleast_2d(np.cov(np.column_stack([target_log_loss(boots, C), outcomes.reshape(len(boots), -1)]), rowvar=False))
    s2 = noise_variance(law, runs)
    best = min((_greedy(S, cost, budget, s2, per_flop) for per_flop in (True, False)), key=lambda g: g[2])
    picked, cuts, var_left = best
    var0 = float(S[0, 0])
    picks = [Pick(float(N[j]), float(D[j]), float(cost[j]), c / var0) for j, c in zip(picked, cuts)]
    return Suggestion(picks, var0**0.5, var_left / var0 if var0 > 0 else 1.0)
