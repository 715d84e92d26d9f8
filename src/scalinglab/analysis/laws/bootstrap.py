"""The bootstrap every law shares: one convention for drawing resamples, and a law refitted on each
(all at once where resample.py can, else one by one spread over processes). No JAX."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ...errors import FitError
from ...sweep.types import Method
from .base import Fitted, Law, Loss
from .resample import fit_resamples
from .solve import SQUARES, batches, columns, fit
from .terms import TermsLaw

LEVEL = 0.95  # of every interval
RESAMPLES_PER_WORKER = 100  # fewer do not repay a worker's start (~2 s of imports); by default, that is
# From this many points on, all resamples are solved at once (resample.py): on Chinchilla's 240
# the same intervals as refitting each, ~20x faster. Small sweeps' objectives have flat valleys
# where the batched solver and L-BFGS-B stop at different points, so there each is refitted.
BATCHED_MIN_RUNS = 100
# Resamples x points solved together: a resample holds ~200 arrays of the points (its shortlisted
# cells' residuals, resample.SHORTLIST, and its Newton starts' derivatives), so a batch ~200 MB at
# most. Chinchilla's 240 points: 546 resamples a batch; 100,000 points: 1.
BATCH_POINTS = 2**17


def interval(values, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` interval of resampled values (NaNs ignored)."""
    lo, hi = np.nanquantile(np.asarray(values, dtype=float), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def seeds(n: int, seed: int = 0) -> list[int]:
    """The seeds of n resamples; the same n and seed, the same resamples."""
    return [seed * 1_000_003 + i for i in range(n)]


def draw(n_points: int, seed: int) -> np.ndarray:
    """The indices of one resample (with replacement) of n_points: every bootstrap's convention."""
    return np.random.default_rng(seed).integers(0, n_points, n_points)


def counts(n_points: int, seed_list: list[int]) -> np.ndarray:
    """(len(seed_list), n_points): how often each point is in each resample (the draws above)."""
    return np.stack([np.bincount(draw(n_points, s), minlength=n_points) for s in seed_list]).astype(float)


def bootstrap(
    law: Law, X, y, n: int, loss: Loss = SQUARES, method: Method = Method.VARPRO, seed: int = 0, workers: int | None = None
) -> list[Fitted]:
    """The law refitted on n resamples of the points: all at once from BATCHED_MIN_RUNS points on
    (laws whose derivatives come batched), else one by one spread over processes (`method` and
    `workers` are theirs). Resamples too degenerate to fit are dropped."""
    if n <= 0:
        return []
    X, y = columns(law, X), np.asarray(y, dtype=float)
    seed_list = seeds(n, seed)
    if len(y) >= BATCHED_MIN_RUNS and isinstance(law, TermsLaw) and loss.delta is not None and law.grid(X, y) is not None:
        return _batched(law, X, y, seed_list, loss)
    warm = None
    if law.resample_starts is not None:
        try:
            warm = fit(law, X, y, loss, method).theta
        except FitError:  # too few distinct values: so has every resample
            return []
    workers = max(1, min(workers or min(len(os.sched_getaffinity(0)), n // RESAMPLES_PER_WORKER), n))
    return in_processes(_refits, [(law, X, y, c, loss, method, warm) for c in seed_chunks(seed_list, workers)])


def _refits(law: Law, X, y, seed_list: list[int], loss: Loss, method: Method, warm: np.ndarray | None) -> list[Fitted]:
    out = []
    for s in seed_list:
        idx = draw(len(y), s)
        try:
            out.append(fit(law, tuple(x[idx] for x in X), y[idx], loss, method, warm))
        except FitError:
            continue
    return out


def _batched(law: TermsLaw, X, y, seed_list, loss) -> list[Fitted]:
    """bootstrap's resamples solved together from variable projection's starts and the full fit, a
    batch of them at a time: the memory is the batch's, not the number of resamples'."""
    try:
        full = fit(law, X, y, loss)
    except FitError:  # too few distinct values: so has every resample
        return []
    out = []
    for batch in batches(len(seed_list), len(y), BATCH_POINTS):
        c = counts(len(y), seed_list[batch])
        c = c[[law.problem(tuple(x[row > 0] for x in X)) is None for row in c]]
        if len(c):
            p, f = fit_resamples(law, full.theta, X, y, c, loss)
            out += [Fitted(law, theta, float(o), len(y)) for theta, o in zip(p, f)]
    return out


def seed_chunks(seed_list: list[int], workers: int) -> list[list[int]]:
    """Contiguous chunks, one per worker: the results stay in seed order."""
    return [[int(s) for s in c] for c in np.array_split(seed_list, max(1, min(workers, len(seed_list)))) if len(c)]


@contextlib.contextmanager
def _single_threaded_children():
    """One BLAS thread per worker process. With one process per core, OpenBLAS's own threads
    spin against each other: 1,000 resamples took over 10 minutes instead of under one."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def in_processes(fn, calls: list[tuple]) -> list:
    """fn(*call) for each call, each in a worker process (one BLAS thread each) when there are
    several; the lists they return, joined in order."""
    if len(calls) == 1:
        return fn(*calls[0])
    # spawn, not fork: the caller may hold JAX's threads, which do not survive a fork.
    with _single_threaded_children(), ProcessPoolExecutor(len(calls), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [r for part in pool.map(fn, *zip(*calls)) for r in part]
