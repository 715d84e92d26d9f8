"""A law refitted on many bootstrap resamples at once, in numpy with no loop over resamples, for laws
whose objective derivatives come batched (terms.TermsLaw: L(N,D), power laws) under a Huber loss.

A resample is the full data with integer weights (how often each point was drawn: draws.counts),
so all resamples share one set of arrays. Each resample is solved from the starts a refit of it
would use, variable projection's best cells (found for all resamples at once from weighted normal
equations), and from the full data's optimum; the lowest end wins. The solver is a batched Newton
method on the exact objective (Levenberg-Marquardt damping, a variable at a bound held there while
its gradient pushes against it): on Chinchilla's data a dozen steps, where L-BFGS-B spends hundreds
of evaluations per start."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import Law, Loss
from .solve import batches

SHORTLIST = 16  # cells per resample, by least squares, scored by the objective (all 625 of L(N,D): 10 s)
ITERATIONS = 100
TOLERANCE = 1e-13  # an undamped Newton step that changes the objective less (relative) than this: converged


def fit_resamples(law: Law, p0: np.ndarray, X, y, counts: np.ndarray, loss: Loss) -> tuple[np.ndarray, np.ndarray]:
    """The minimiser of each resample's objective (rows of counts), (B, P), and the objectives (B,).
    Resamples are split over the cores in threads (numpy releases the GIL in its loops)."""
    chunks = np.array_split(np.arange(len(counts)), max(1, min(len(os.sched_getaffinity(0)), len(counts))))
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = list(pool.map(lambda rows: _fit(law, p0, X, y, counts[rows], loss), chunks))
    return np.concatenate([p for p, _ in parts]), np.concatenate([f for _, f in parts])


def _fit(law, p0, X, y, counts, loss):
    """fit_resamples on some resamples: Newton from each start, the lowest end kept."""
    P = len(p0)
    starts = np.concatenate([np.broadcast_to(p0, (len(counts), 1, P)), _cell_starts(law, X, y, counts, loss)], axis=1)
    B, S, _ = starts.shape
    p, f = _newton(law, starts.reshape(B * S, P), X, law.observed(y), np.repeat(counts, S, axis=0), loss)
    best = f.reshape(B, S).argmin(axis=1)
    return p.reshape(B, S, P)[np.arange(B), best], f.reshape(B, S)[np.arange(B), best]


def _cell_starts(law, X, y, counts, loss):
    """Variable projection's starts for each resample, (B, polish, P): per cell of the law's grid,
    its coefficients by weighted least squares on relative residuals, the best cells by the
    objective. Scoring every cell of every resample is most of the work, so only each resample's
    SHORTLIST cells with the smallest squares are scored."""
    cells = law.grid(X, y)
    K = len(law.coefficients)
    parts = [_cell_solutions(law, cells[b], X, y, counts) for b in batches(len(cells), len(y) * K * K)]
    coef, rss = np.concatenate([c for c, _ in parts]), np.concatenate([r for _, r in parts])
    short = np.argpartition(rss, min(SHORTLIST, len(cells)) - 1, axis=0)[:SHORTLIST]  # (SHORTLIST, B)
    cols = np.arange(len(counts))
    p = law.assemble(coef[short, cols].reshape(-1, K), cells[short].reshape(-1, cells.shape[1])).reshape(*short.shape, -1)
    r = law.fitted_value(p, *X) - law.observed(y)
    scores = (counts * loss.value(r)).sum(-1)  # (SHORTLIST, B)
    order = np.argsort(scores, axis=0, kind="stable")[: law.polish]
    return p[order, cols].transpose(1, 0, 2)


def _cell_solutions(law, cells, X, y, counts):
    """Per cell and resample, the coefficients by weighted least squares and their squares."""
    _, basis = law.design(cells, X)
    A = basis / y[:, None]  # relative residuals; the target is then 1 at every point
    k, n, K = A.shape
    # Sums over points are products with the counts: G = sum c a a^T, h = sum c a, per cell and resample.
    AA = (A[..., :, None] * A[..., None, :]).transpose(0, 2, 3, 1).reshape(k * K * K, n)
    G = (AA @ counts.T).reshape(k, K, K, len(counts)).transpose(0, 3, 1, 2)
    h = (A.transpose(0, 2, 1).reshape(k * K, n) @ counts.T).reshape(k, K, len(counts)).transpose(0, 2, 1)
    return _nnls(G, h)


def _nnls(G, h):
    """Non-negative least squares from the normal equations (..., K, K), (..., K): the solutions
    and their squares (less the constant sum of counts)."""
    K = G.shape[-1]
    G = G + 1e-12 * np.eye(K)  # as solve.linear_solutions: a singular cell stays solvable
    x = np.linalg.solve(G, h[..., None])[..., 0]
    rss = -np.einsum("...i,...i->...", x, h)
    bad = (x < 0).any(-1)
    x[bad], rss[bad] = _nnls_by_subsets(G[bad], h[bad])
    return x, rss


def _nnls_by_subsets(G, h):
    """With few unknowns, the non-negative solution is the best of the unconstrained solutions on
    each subset of them that come out non-negative (scipy's nnls, one system at a time, is slow)."""
    K = G.shape[-1]
    best, low = np.zeros_like(h), np.zeros(h.shape[:-1])  # the empty subset: all zero
    for m in (np.array(m) for m in itertools.product((0.0, 1.0), repeat=K) if any(m)):
        x = np.linalg.solve(G * np.outer(m, m) + np.diag(1 - m), (h * m)[..., None])[..., 0]
        rss = np.einsum("...i,...i->...", x, (G @ x[..., None])[..., 0] - 2 * h)
        take = (x >= 0).all(-1) & (rss < low)
        best[take], low[take] = x[take], rss[take]
    return best, low


def _newton(law, p, X, observed, counts, loss):
    """Each row of p to its resample's minimum; the solutions and their objectives. Damped Newton
    steps (saddle-free: the Hessian's negative curvature taken as positive, so every step descends)
    in coordinates scaled by the Gauss-Newton diagonal. A row stops when an almost undamped step
    no longer changes its objective, or no step lowers it."""
    f, g, H, scale = law.objective_derivatives(p, X, observed, counts, loss)
    damping = np.full(len(p), 1e-3)
    done = np.zeros(len(p), bool)
    for _ in range(ITERATIONS):
        i = np.flatnonzero(~done)  # the work shrinks as rows converge
        if not len(i):
            break
        trial = _step(law, p[i], g[i], H[i], scale[i], damping[i])
        new = law.objective_derivatives(trial, X, observed, counts[i], loss)
        better = new[0] < f[i]
        still = np.abs(f[i] - new[0]) <= TOLERANCE * f[i]
        done[i] = still & (damping[i] <= 1e-2) | ~better & (damping[i] >= 1e10)
        k = i[better]
        new_f, new_g, new_H, new_scale = new
        p[k], f[k], g[k], H[k], scale[k] = trial[better], new_f[better], new_g[better], new_H[better], new_scale[better]
        damping[i] = np.where(better, np.maximum(damping[i] / 3, 1e-6), damping[i] * 4)
    return p, f


def _step(law, p, g, H, scale, damping):
    """p + the damped saddle-free Newton step, clipped into the bounds; a variable at a bound that
    its gradient pushes against is held there (its row of the Newton system decoupled)."""
    lo, hi = np.array(law.bounds).T
    P = p.shape[1]
    free = ~((p <= lo) & (g > 0) | (p >= hi) & (g < 0))
    d = np.sqrt(np.maximum(scale, 1e-20 * scale.max(-1, keepdims=True)))
    Hs = np.where(free[:, :, None] & free[:, None, :], H / (d[:, :, None] * d[:, None, :]), np.eye(P))
    mu, V = np.linalg.eigh(Hs)
    gs = np.where(free, g / d, 0)[..., None]
    step = -V @ ((V.transpose(0, 2, 1) @ gs) / (np.abs(mu) + damping[:, None])[..., None])
    return np.clip(p + step[..., 0] / d, lo, hi)
