"""How far to trust a fitted L(N,D): bootstrap intervals, predictions with intervals, and the
extrapolation check (fit on the smaller runs, predict the held-out larger ones). No JAX."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from ..errors import FitError
from .laws import DEFAULTS, PARAMS, Chinchilla, compute_optimal, fit_chinchilla, frontier_exponents
from .resample_fits import fit_resamples, resample_counts

LEVEL = 0.95
# An interval wider than this (upper / lower) does not pin its parameter: the runs leave it open.
LOOSE = 10.0
RESAMPLES_PER_WORKER = 100  # fewer do not repay a worker's start (~2 s of imports); by default, that is
# From this many runs on, all resamples are solved at once (resample_fits.py): on Chinchilla's 240
# the same intervals as refitting each, ~20x faster. Small sweeps' objectives have flat valleys
# where the batched solver and L-BFGS-B stop at different points, so there each is refitted.
BATCHED_MIN_RUNS = 100


def _resample_fits(N, D, L, seeds, huber_delta, method) -> list[tuple | None]:
    """Fits on bootstrap resamples of the runs, one per seed (None where a resample is degenerate)."""
    out = []
    for seed in seeds:
        idx = np.random.default_rng(seed).integers(0, len(L), len(L))
        try:
            law = fit_chinchilla(N[idx], D[idx], L[idx], huber_delta, method)
        except FitError:
            out.append(None)
            continue
        out.append(tuple(getattr(law, k) for k in PARAMS))
    return out


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


def bootstrap(df: pd.DataFrame, n: int = DEFAULTS.bootstrap, huber_delta: float = DEFAULTS.huber_delta,
              method: str = DEFAULTS.method, seed: int = 0, workers: int | None = None) -> list[Chinchilla]:
    """L(N,D) refitted on n resamples of the runs (with replacement): all at once from
    BATCHED_MIN_RUNS runs on, else one by one spread over processes (`method` and `workers` are
    theirs). Resamples with too few distinct N or D to fit are dropped."""
    if n <= 0:
        return []
    N, D, L = (df[c].to_numpy(dtype=float) for c in ("N", "D", "L"))
    seeds = [seed * 1_000_003 + i for i in range(n)]
    if len(L) >= BATCHED_MIN_RUNS:
        return _batched(N, D, L, seeds, huber_delta)
    workers = max(1, min(workers or min(len(os.sched_getaffinity(0)), n // RESAMPLES_PER_WORKER), n))
    rows = in_processes(_resample_fits, [(N, D, L, c, huber_delta, method) for c in seed_chunks(seeds, workers)])
    return [Chinchilla(*r, objective=float("nan"), n_points=len(L)) for r in rows if r is not None]


def _batched(N, D, L, seeds, huber_delta) -> list[Chinchilla]:
    """bootstrap's resamples solved together from variable projection's starts and the full fit."""
    try:
        law = fit_chinchilla(N, D, L, huber_delta)
    except FitError:  # too few distinct N or D: so has every resample
        return []
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    counts = resample_counts(len(L), seeds)
    counts = counts[[min(len(np.unique(lN[c > 0])), len(np.unique(lD[c > 0]))) >= 2 for c in counts]]
    if not len(counts):
        return []
    start = np.array([np.log(law.E), np.log(law.A), np.log(law.B), law.alpha, law.beta])
    p, f = fit_resamples(start, lN, lD, lL, counts, huber_delta)
    return [Chinchilla(*np.exp(x[:3]).tolist(), float(x[3]), float(x[4]), objective=float(o), n_points=len(L))
            for x, o in zip(p, f)]


def seed_chunks(seeds: list[int], workers: int) -> list[list[int]]:
    """Contiguous chunks, one per worker: the results stay in seed order."""
    return [list(c) for c in np.array_split(seeds, max(1, min(workers, len(seeds)))) if len(c)]


def in_processes(fn, calls: list[tuple]) -> list:
    """fn(*call) for each call, each in a worker process (one BLAS thread each) when there are
    several; the lists they return, joined in order."""
    if len(calls) == 1:
        return fn(*calls[0])
    with _single_threaded_children():
        # spawn, not fork: the caller may hold JAX's threads, which do not survive a fork.
        with ProcessPoolExecutor(len(calls), mp_context=multiprocessing.get_context("spawn")) as pool:
            return [r for part in pool.map(fn, *zip(*calls)) for r in part]


def attempt(f, *args) -> dict:
    """f(*args), or {"skipped": why} when the data cannot support that fit: one part of a report
    that cannot be fitted does not stop the others."""
    try:
        return f(*args)
    except FitError as e:
        return {"skipped": str(e)}


def interval(values, level: float = LEVEL) -> list[float]:
    lo, hi = np.nanquantile(np.asarray(values, dtype=float), [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def loose(ci: dict) -> list[str]:
    """The L(N,D) parameters whose interval reaches 0 or spans more than a factor LOOSE."""
    return [k for k in PARAMS if k in ci and not (ci[k][0] > 0 and ci[k][1] <= LOOSE * ci[k][0])]


def summarize(law: Chinchilla, boots: list[Chinchilla]) -> dict:
    """Point estimates and bootstrap intervals of the parameters and of the compute-optimal
    exponents N_opt ~ C^a, D_opt ~ C^b (a = beta/(alpha+beta), b = alpha/(alpha+beta)), and
    which parameters the intervals leave loose."""
    a, b = frontier_exponents(law)
    out = {"n_bootstrap": len(boots), "level": LEVEL, "a": a, "b": b, "ci": {}}
    if boots:
        out["ci"] = {k: interval([getattr(m, k) for m in boots]) for k in PARAMS}
        exponents = np.array([frontier_exponents(m) for m in boots])
        out["ci"]["a"], out["ci"]["b"] = interval(exponents[:, 0]), interval(exponents[:, 1])
        out["loose"] = loose(out["ci"])
    return out


def predict(law: Chinchilla, boots: list[Chinchilla], C: float | None = None, N: float | None = None,
            D: float | None = None) -> dict:
    """At a compute budget C: N_opt, D_opt, tokens per parameter and loss there; or at (N, D):
    the loss. Each with its bootstrap interval."""
    def at(m: Chinchilla) -> dict:
        if C is not None:
            n_opt, d_opt = compute_optimal(m, C)
            return {"N_opt": float(n_opt), "D_opt": float(d_opt), "tokens_per_param": float(d_opt / n_opt),
                    "L": float(m(n_opt, d_opt))}
        return {"L": float(m(N, D))}

    point = at(law)
    samples = [at(m) for m in boots]
    return {
        **({"C": C} if C is not None else {"N": N, "D": D}),
        **{k: {"value": v, "ci": interval([s[k] for s in samples]) if samples else None} for k, v in point.items()},
    }


def held_out_rows(df: pd.DataFrame, fraction: float = DEFAULTS.holdout_fraction, by: str = DEFAULTS.holdout_by) -> pd.DataFrame:
    """The runs in the top `fraction` of `by` (at least one): what the extrapolation checks predict."""
    if by not in df:
        raise FitError(f"extrapolation check: no column {by!r}")
    cut = df[by].quantile(1 - fraction)
    held = df[df[by] >= cut] if fraction > 0 else df.iloc[0:0]
    return df.nlargest(1, by) if held.empty else held


def extrapolation_check(df: pd.DataFrame, fraction: float = DEFAULTS.holdout_fraction, by: str = DEFAULTS.holdout_by,
                        huber_delta: float = DEFAULTS.huber_delta, method: str = DEFAULTS.method) -> pd.DataFrame:
    """Fits L(N,D) without the runs in the top `fraction` of `by` (at least one run), then
    predicts those. Returns the held-out runs with L_pred and the relative error."""
    held = held_out_rows(df, fraction, by)
    fit_rows = df.drop(held.index)
    law = fit_chinchilla(fit_rows["N"], fit_rows["D"], fit_rows["L"], huber_delta, method)
    out = held[["N", "D", "C", "L"]].copy()
    out["L_pred"] = law(out["N"], out["D"])
    out["rel_error"] = out["L_pred"] / out["L"] - 1
    out.attrs["law"] = law
    out.attrs["n_fit"] = len(fit_rows)
    return out
