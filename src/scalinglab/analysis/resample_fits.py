"""L(N,D) refitted on many bootstrap resamples at once, in numpy with no loop over resamples.

A resample is the full data with integer weights (how often each point was drawn; the draws of
uncertainty.bootstrap's seeds), so all resamples share one set of arrays. Each resample is solved
from the starts a refit of it would use, laws._varpro's best cells (found for all resamples at
once from weighted normal equations), and from the full data's optimum; the lowest end wins.
The solver is a batched Newton method on the exact Huber objective (Levenberg-Marquardt damping,
a variable at a bound of laws.BOUNDS held there while its gradient pushes against it): on
Chinchilla's data a dozen steps, where L-BFGS-B spends hundreds of evaluations per start."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .laws import BOUNDS, VARPRO_POLISH, _huber, _residuals, _varpro_design

SHORTLIST = 16  # cells per resample, by least squares, scored by the Huber objective (all 625: 10 s)
ITERATIONS = 100
TOLERANCE = 1e-13  # an undamped Newton step that changes the objective less (relative) than this: converged
SUBSETS = np.array([m for m in itertools.product((0.0, 1.0), repeat=3) if any(m)])  # of E, A, B


def resample_counts(n: int, seeds: list[int]) -> np.ndarray:
    """(len(seeds), n): how often each point is in each resample (uncertainty's draws)."""
    return np.stack([np.bincount(np.random.default_rng(s).integers(0, n, n), minlength=n) for s in seeds]).astype(float)


def fit_resamples(p0: np.ndarray, lN, lD, lL, counts: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The minimiser of each resample's objective (rows of counts), (B, 5), and the objectives (B,).
    Resamples are split over the cores in threads (numpy releases the GIL in its loops)."""
    chunks = np.array_split(np.arange(len(counts)), max(1, min(len(os.sched_getaffinity(0)), len(counts))))
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = list(pool.map(lambda rows: _fit(p0, lN, lD, lL, counts[rows], delta), chunks))
    return np.concatenate([p for p, _ in parts]), np.concatenate([f for _, f in parts])


def _fit(p0, lN, lD, lL, counts, delta):
    """fit_resamples on some resamples: Newton from each start, the lowest end kept."""
    starts = np.concatenate([np.broadcast_to(p0, (len(counts), 1, 5)), _cell_starts(lN, lD, lL, counts, delta)], axis=1)
    B, S, _ = starts.shape
    p, f = _newton(starts.reshape(B * S, 5), lN, lD, lL, np.repeat(counts, S, axis=0), delta)
    best = f.reshape(B, S).argmin(axis=1)
    return p.reshape(B, S, 5)[np.arange(B), best], f.reshape(B, S)[np.arange(B), best]


def _cell_starts(lN, lD, lL, counts, delta):
    """laws._varpro's starts for each resample, (B, VARPRO_POLISH, 5): per cell of the (alpha, beta)
    grid, E, A, B >= 0 by weighted least squares on relative residuals; the best cells by the Huber
    objective. Scoring every cell of every resample is most of the work, so only each resample's
    SHORTLIST cells with the smallest squares are scored."""
    alpha, beta, X = _varpro_design(lN, lD, lL)
    k, n, _ = X.shape
    # Sums over points are products with the counts: G = sum c x x^T, h = sum c x, per cell and resample.
    XX = (X[..., :, None] * X[..., None, :]).transpose(0, 2, 3, 1).reshape(k * 9, n)
    G = (XX @ counts.T).reshape(k, 3, 3, len(counts)).transpose(0, 3, 1, 2)
    h = (X.transpose(0, 2, 1).reshape(k * 3, n) @ counts.T).reshape(k, 3, len(counts)).transpose(0, 2, 1)
    coef, rss = _nnls(G, h)
    short = np.argpartition(rss, SHORTLIST - 1, axis=0)[:SHORTLIST]  # (SHORTLIST, B)
    cols = np.arange(len(counts))
    p = np.concatenate([np.log(np.maximum(coef[short, cols], 1e-12)), alpha[short, None], beta[short, None]], axis=-1)
    r, _, _ = _residuals(p, lN, lD, lL)
    scores = (counts * _huber(r, delta)).sum(-1)  # (SHORTLIST, B)
    order = np.argsort(scores, axis=0, kind="stable")[:VARPRO_POLISH]
    return p[order, cols].transpose(1, 0, 2)


def _nnls(G, h):
    """Non-negative least squares from the normal equations (..., 3, 3), (..., 3): the solutions
    and their squares (less the constant sum of counts)."""
    G = G + 1e-12 * np.eye(3)  # as laws._varpro: a singular cell stays solvable
    x = np.linalg.solve(G, h[..., None])[..., 0]
    rss = -np.einsum("...i,...i->...", x, h)
    bad = (x < 0).any(-1)
    x[bad], rss[bad] = _nnls_by_subsets(G[bad], h[bad])
    return x, rss


def _nnls_by_subsets(G, h):
    """With 3 unknowns, the non-negative solution is the best of the unconstrained solutions on
    each subset of them that come out non-negative (scipy's nnls, one system at a time, is slow)."""
    best, low = np.zeros_like(h), np.zeros(h.shape[:-1])  # the empty subset: all zero
    for m in SUBSETS:
        x = np.linalg.solve(G * np.outer(m, m) + np.diag(1 - m), (h * m)[..., None])[..., 0]
        rss = np.einsum("...i,...i->...", x, (G @ x[..., None])[..., 0] - 2 * h)
        take = (x >= 0).all(-1) & (rss < low)
        best[take], low[take] = x[take], rss[take]
    return best, low


def _newton(p, lN, lD, lL, counts, delta):
    """Each row of p to its resample's minimum; the solutions and their objectives. Damped Newton
    steps (saddle-free: the Hessian's negative curvature taken as positive, so every step descends)
    in coordinates scaled by the Gauss-Newton diagonal. A row stops when an almost undamped step
    no longer changes its objective, or no step lowers it."""
    f, g, H, scale = _derivatives(p, lN, lD, lL, counts, delta)
    damping = np.full(len(p), 1e-3)
    done = np.zeros(len(p), bool)
    for _ in range(ITERATIONS):
        i = np.flatnonzero(~done)  # the work shrinks as rows converge
        if not len(i):
            break
        trial = _step(p[i], g[i], H[i], scale[i], damping[i])
        new = _derivatives(trial, lN, lD, lL, counts[i], delta)
        better = new[0] < f[i]
        still = np.abs(f[i] - new[0]) <= TOLERANCE * f[i]
        done[i] = still & (damping[i] <= 1e-2) | ~better & (damping[i] >= 1e10)
        k = i[better]
        p[k], f[k], g[k], H[k], scale[k] = trial[better], *(x[better] for x in new)
        damping[i] = np.where(better, np.maximum(damping[i] / 3, 1e-6), damping[i] * 4)
    return p, f


def _derivatives(p, lN, lD, lL, counts, delta):
    """Objective (B,), gradient (B, 5), exact Hessian (B, 5, 5) and Gauss-Newton diagonal (B, 5)
    at each row of p. In q = (log E, log A, log B, -alpha, -beta), with s the softmax of the law's
    terms, dr/dq = u = (s0, s1, s2, s1 lN, s2 lD) and the Hessian of sum c h(r) is
    sum c [h''(r) u u^T + h'(r) (M - u u^T)], M the softmax-weighted second moments of the
    terms' derivatives: s0, s1, s2 on the diagonal, s1 lN and s2 lD off it, s1 lN^2, s2 lD^2."""
    r, w, total = _residuals(p, lN, lD, lL)
    s = w / total
    u = np.stack([s[0], s[1], s[2], s[1] * lN, s[2] * lD], axis=1)  # (B, 5, n)
    psi = counts * np.clip(r, -delta, delta)
    g = (u @ psi[..., None])[..., 0]
    H = (u * (counts * (np.abs(r) <= delta) - psi)[:, None]) @ u.transpose(0, 2, 1)
    rows, cols = [0, 1, 2, 3, 4, 1, 3, 2, 4], [0, 1, 2, 3, 4, 3, 1, 4, 2]
    H[:, rows, cols] += np.column_stack([g[:, :3], (u[:, 3] * psi) @ lN, (u[:, 4] * psi) @ lD, g[:, [3, 3, 4, 4]]])
    sign = np.array([1.0, 1, 1, -1, -1])
    scale = np.einsum("bkn,bkn,bn->bk", u, u, counts)
    return (counts * _huber(r, delta)).sum(-1), g * sign, H * np.outer(sign, sign), scale


def _step(p, g, H, scale, damping):
    """p + the damped saddle-free Newton step, clipped into the bounds; a variable at a bound that
    its gradient pushes against is held there (its row of the Newton system decoupled)."""
    lo, hi = np.array(BOUNDS).T
    free = ~((p <= lo) & (g > 0) | (p >= hi) & (g < 0))
    d = np.sqrt(np.maximum(scale, 1e-20 * scale.max(-1, keepdims=True)))
    Hs = np.where(free[:, :, None] & free[:, None, :], H / (d[:, :, None] * d[:, None, :]), np.eye(5))
    mu, V = np.linalg.eigh(Hs)
    gs = np.where(free, g / d, 0)[..., None]
    step = -V @ ((V.transpose(0, 2, 1) @ gs) / (np.abs(mu) + damping[:, None])[..., None])
    return np.clip(p + step[..., 0] / d, lo, hi)
