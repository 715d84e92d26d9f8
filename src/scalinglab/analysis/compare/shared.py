"""`compare --shared-exponents`: the sweeps compared again with Chinchilla's exponents shared. Every
sweep's runs are fitted together as L = E_g + A_g/N^alpha + B_g/D^beta (laws/chinchilla_shared.py,
fitted by the one solver, laws/solve.py), each sweep's part read back as its own Chinchilla law, and
compare_pair run on those exactly as on the separate fits. Sharing alpha and beta pools every
sweep's runs into the two parameters that make k(C) extrapolate, so its interval narrows where the
sweeps do scale alike; it cannot show a difference in how they scale (then the separate fits can).

The bootstrap keeps each sweep's runs apart: resample b draws each sweep's runs on their own, with
the seed its separate bootstrap uses for its resample b (so both ways rest on the same draws), and
the joint law is refitted on the resamples together. No JAX."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ...errors import FitError
from ...sweep.spec import FitSpec
from ..laws import Fitted, Loss
from ..laws.bootstrap import RESAMPLES_PER_WORKER, draw, in_processes, seed_chunks, seeds
from ..laws.chinchilla_shared import COEFFICIENTS, SharedChinchilla
from ..laws.solve import fit
from ..parts import Estimate
from .multiplier import Comparison, SharedExponents, SharedSweep, SweepLaw, compare_pair
from .points import estimate

WHY = "Chinchilla's form with alpha and beta shared across the sweeps"
Columns = tuple[np.ndarray, np.ndarray, np.ndarray]


def stacked(sweeps: Sequence[SweepLaw]) -> tuple[Columns, np.ndarray]:
    """The joint law's inputs (N, D, the sweep's number from 1) and losses over every sweep's runs."""
    runs = [s.runs for s in sweeps]
    group = np.concatenate([np.full(len(r), g + 1.0) for g, r in enumerate(runs)])
    N, D, L = (np.concatenate([r[c].to_numpy(float) for r in runs]) for c in ("N", "D", "L"))
    return (N, D, group), L


def resample_rows(sizes: Sequence[int], n: int) -> list[np.ndarray]:
    """n joint resamples, as rows of the stacked runs: in resample b, sweep g's runs are drawn as its
    own bootstrap draws its resample b (seeds(n, g), the seed compare's sweep g gets)."""
    offsets = np.cumsum([0, *sizes[:-1]])
    per_sweep = [seeds(n, g) for g in range(len(sizes))]
    return [np.concatenate([o + draw(size, s[b]) for o, size, s in zip(offsets, sizes, per_sweep)]) for b in range(n)]


def _refits(law: SharedChinchilla, X: Columns, y: np.ndarray, rows: list[np.ndarray], loss: Loss, method) -> list[Fitted]:
    """The joint law refitted on each resample; one too degenerate to fit is dropped (for every
    sweep at once, so each sweep's list stays paired with the others')."""
    out = []
    for r in rows:
        try:
            out.append(fit(law, tuple(x[r] for x in X), y[r], loss, method))
        except FitError:
            continue
    return out


def joint_bootstrap(law: SharedChinchilla, sweeps: Sequence[SweepLaw], spec: FitSpec) -> list[Fitted]:
    """spec.bootstrap joint refits, spread over processes as laws/bootstrap.py spreads refits
    (~0.1 s each on two 24-run sweeps: a worker repays its start from RESAMPLES_PER_WORKER on)."""
    n = spec.bootstrap
    if n <= 0:
        return []
    X, y = stacked(sweeps)
    rows = resample_rows([len(s.runs) for s in sweeps], n)
    workers = max(1, min(len(os.sched_getaffinity(0)), n // RESAMPLES_PER_WORKER))
    chunks = seed_chunks(list(range(n)), workers)
    return in_processes(_refits, [(law, X, y, [rows[b] for b in c], Loss(spec.huber_delta), spec.method) for c in chunks])


def shared_exponents(sweeps: Sequence[SweepLaw], spec: FitSpec, at: Sequence[float] = ()) -> SharedExponents:
    """The joint fit with its intervals, and every sweep against the first (sweeps[0]) on their
    parts of it, each verdict labelled as the shared exponents'. spec: the baseline's fit settings
    (Huber threshold, solver, resamples)."""
    law = SharedChinchilla(len(sweeps))
    X, y = stacked(sweeps)
    try:
        full = fit(law, X, y, Loss(spec.huber_delta), spec.method)
    except FitError as e:
        raise FitError(f"--shared-exponents: {e} (sweeps numbered in order, the baseline 1)") from None
    boots = joint_bootstrap(law, sweeps, spec)
    sizes = [len(s.runs) for s in sweeps]
    parts = [law.per_sweep(f, sizes) for f in (full, *boots)]
    shared = [SweepLaw(s.name, s.runs, parts[0][g], [p[g] for p in parts[1:]], WHY) for g, s in enumerate(sweeps)]

    def param(name: str) -> Estimate:
        return estimate(full[name], [b[name] for b in boots])

    return SharedExponents(
        form=law.form,
        alpha=param("alpha"),
        beta=param("beta"),
        sweeps=[
            SharedSweep(name=s.name, n_runs=n, **{c: param(f"{c}_{g + 1}") for c in COEFFICIENTS})
            for g, (s, n) in enumerate(zip(sweeps, sizes))
        ],
        n_bootstrap=len(boots),
        comparisons=[_labelled(compare_pair(shared[0], b, at)) for b in shared[1:]],
    )


def _labelled(c: Comparison) -> Comparison:
    """The verdict says it is the shared exponents' (a line read alone is not mistaken for the other)."""
    return c.model_copy(update={"verdict": f"shared exponents: {c.verdict}"})
