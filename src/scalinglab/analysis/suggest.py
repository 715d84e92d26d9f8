"""The next runs worth training: those expected to shrink the uncertainty of the loss predicted at
a target compute C_6ND the most per FLOP of 6ND. Pure functions over the fitted law; no JAX.

The quantity: the log loss at the law's compute-optimal (N, D) for C_6ND (what `fit --predict C_6ND=...`
reports), in log space, where the fit's noise is. Its uncertainty is read from the fit's
linearisation (the delta method): with J the gradient of each run's log loss in the parameters
(log E, log A, log B, alpha, beta) and s2 the residual variance, the parameters' covariance is
s2 (J'J)^-1, and S, the covariance of (target, every candidate's log loss), is G s2 (J'J)^-1 G'
for their gradients G. (By the envelope theorem the optimum's own move with the parameters adds
nothing to first order.) Training candidate x, whose measured log loss carries variance s2, is
expected to cut the target's variance by S[t,x]^2 / (S[x,x] + s2) (an exact Gaussian update).
Picks are greedy, by that cut per FLOP of 6ND (C_6ND); after each pick S is conditioned on it, so the
next pick counts only what this one leaves unknown. Greedy by ratio alone can starve one
expensive, decisive run, so the plain greedy (largest cut that fits what is left) runs too and
the better of the two is kept (Krause & Guestrin 2005's budgeted rule).
Why the linearisation and not the bootstrap fits' disagreement (the rule up to commit 05d81ff):
on the same 100 simulated campaigns of experiments/bench_suggest.py (campaigns 0-99, both rules
with the bench's shared noise), it did as well in 4 rounds (median error 0.96% against 1.00%,
lower in 56) and better all at once (1.67% against 2.18%, lower in 62), and it needs no refits:
milliseconds instead of a bootstrap per suggestion.
Its limits: a parameter the fit made vanish (E -> 0) has no gradient, so its uncertainty goes
unseen (`vanished`; the command warns). And the covariance is least squares', while the fit's
Huber loss (delta 1e-3) acts like least absolute deviations on noise of ~1%: refits then spread
~1.2x wider than the spread reported, which scales every candidate's cut alike but weighs a new
run's noise a little too heavily against what the law does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import FitError
from .choose import log_residuals
from .laws import Fitted
from .laws.optimum import compute_optimal

GRID_POINTS = 16  # candidate values per axis of the (N, D) log grid
RCOND = 1e-10  # singular values of the column-scaled J'J below this share of the largest: directions no run tells apart
VANISHED = 1e-9  # a parameter whose gradient is this small beside the largest has no effect left (E -> 0)


@dataclass(frozen=True)
class Pick:
    N: float
    D: float
    cost: float
    """C_6ND = 6ND of the run (its FLOPs in the law's convention)."""
    share: float
    """The part of today's variance of the target's log loss this run is expected to remove."""


@dataclass(frozen=True)
class Suggestion:
    picks: list[Pick]
    spread: float
    """Today's standard deviation of the target's log loss (linearised)."""
    left: float
    """The share of the variance expected to remain after every pick."""
    unseen: list[str]
    """Parameters the fit made vanish (E -> 0): their uncertainty the rule cannot see."""


def log_loss_gradient(law: Fitted, N, D) -> np.ndarray:
    """d log L(N, D) / d theta (the law's own Jacobian; a law of repeated data at no repetition), a row per (N, D)."""
    N, D = np.atleast_1d(np.asarray(N, float)), np.atleast_1d(np.asarray(D, float))
    return law.law.jacobian(law.theta, *law.columns(N, D))


def noise_variance(law: Fitted, runs: pd.DataFrame) -> float:
    """The runs' squared log residuals around the law over the degrees of freedom the fit left:
    the noise a new run's loss carries."""
    r = log_residuals(law, runs)
    P = len(law.law.params)
    if len(r) <= P:
        raise FitError(f"suggest: {len(r)} runs leave no degrees of freedom to estimate the noise; it needs more than {P}")
    return float(r @ r / (len(r) - P))


def vanished(J: np.ndarray) -> np.ndarray:
    """Per parameter: True where its gradient J at every run is nil beside the largest (a term the
    fit made vanish, E -> 0). Its uncertainty cannot be seen from here: the rule's blind spot."""
    norm = np.linalg.norm(J, axis=0)
    return norm <= VANISHED * norm.max()


def parameter_covariance(J: np.ndarray, s2: float) -> np.ndarray:
    """s2 (J'J)^+, J the runs' log-loss gradients at the fitted law. J's columns are scaled to unit
    norm first, so the cutoff drops what the runs cannot tell apart, not a parameter in other units;
    vanished parameters stay out (zero rows and columns)."""
    live = ~vanished(J)
    norm = np.linalg.norm(J[:, live], axis=0)
    Js = J[:, live] / norm
    cov = np.zeros((J.shape[1], J.shape[1]))
    cov[np.ix_(live, live)] = s2 * np.linalg.pinv(Js.T @ Js, rcond=RCOND, hermitian=True) / np.outer(norm, norm)
    return cov


def candidate_grid(runs: pd.DataFrame, law: Fitted, C_6ND: float, budget: float, n: int = GRID_POINTS, sizes: np.ndarray | None = None):
    """(N, D) on a log grid from the smallest run to the larger of the largest run and the
    target's compute-optimal allocation (N: `sizes` instead, where the sweep's sizes are fixed),
    each with 6ND <= budget and tokens per parameter D/N
    within the span of the runs' and the target's: the law is trusted where it was fitted, and
    a tiny model on endless (repeated) data tests a regime the target does not need."""
    N_opt, D_opt = compute_optimal(law, C_6ND)
    axes = [np.geomspace(runs[k].min(), max(runs[k].max(), opt), n) for k, opt in (("N", N_opt), ("D", D_opt))]
    N, D = (a.ravel() for a in np.meshgrid(axes[0] if sizes is None else sizes, axes[1], indexing="ij"))
    ratios = np.append(runs["D"] / runs["N"], D_opt / N_opt)
    keep = (budget >= 6 * N * D) & (ratios.min() <= D / N) & (ratios.max() >= D / N)
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


def suggest(law: Fitted, runs: pd.DataFrame, C_6ND: float, budget: float, N: np.ndarray, D: np.ndarray) -> Suggestion:
    """The candidates (N, D) to train within `budget` FLOPs of 6ND (C_6ND), chosen as the module says.
    Candidates at the (N, D) of a run already done are left out: planned again, they would be it."""
    done = np.isclose(N[:, None], runs["N"].to_numpy()) & np.isclose(D[:, None], runs["D"].to_numpy())
    N, D = N[~done.any(axis=1)], D[~done.any(axis=1)]
    cost = 6 * N * D
    s2, J = noise_variance(law, runs), log_loss_gradient(law, runs["N"], runs["D"])
    unseen = [k for k, gone in zip(law.law.names, vanished(J)) if gone]
    G = np.vstack([log_loss_gradient(law, *compute_optimal(law, C_6ND)), log_loss_gradient(law, N, D)])
    S = G @ parameter_covariance(J, s2) @ G.T
    var0 = float(S[0, 0])
    if not var0 > 0:  # the runs fix the target (a law through every point): nothing to narrow
        return Suggestion([], 0.0, 1.0, unseen)
    picked, cuts, var_left = min((_greedy(S, cost, budget, s2, per_flop) for per_flop in (True, False)), key=lambda g: g[2])
    picks = [Pick(float(N[j]), float(D[j]), float(cost[j]), c / var0) for j, c in zip(picked, cuts)]
    return Suggestion(picks, var0**0.5, var_left / var0, unseen)
