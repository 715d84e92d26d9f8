"""Sweeps compared as a compute multiplier (`scalinglab compare`). Each sweep's law of the loss in N
and D gives its compute-optimal frontier L*(C_6ND) = min over 6ND = C_6ND of L(N, D); for each
sweep B against the baseline A (the first),

    k(C_6ND) = C_A(L*_B(C_6ND)) / C_6ND,

how many times the compute A needs to reach the loss B reaches with C_6ND (the glossary's k): k > 1,
B is better (A needs more); k < 1, B is worse. C_A inverts A's frontier, which falls with compute.
Beside k: the loss difference L*_B - L*_A at equal compute, the log-slope d ln k / d ln C_6ND over
the runs' compute, and bootstrap intervals, each sweep's runs resampled on their own. No JAX."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field

from ...errors import FitError
from ...sweep.spec import FitSpec
from ...sweep.types import CurvePoints
from ..analyze import core
from ..choose import Chosen
from ..laws import Fitted
from ..laws.bootstrap import LEVEL
from ..laws.optimum import compute_optimal
from ..parts import CI, Estimate, LawFit, Part, Skipped
from ..uncertainty import bootstrap_law
from .points import Where, estimate, paired
from .tasks import SweepTasks, TaskComparison, compare_tasks

CONVENTION = (
    "k(C_6ND) = C_A(L*_B(C_6ND)) / C_6ND: how many times the compute the baseline A needs to reach the loss "
    "B reaches with C_6ND = 6ND (k > 1: B is better; k < 1: B is worse)"
)
SPAN = 1e12  # A's compute is searched from C_6ND/SPAN to C_6ND*SPAN; beyond: k is 0 or infinite
HALVINGS = 64  # bisection steps in ln C_6ND: the 55-wide bracket to 3e-18
SLOPE_POINTS = 9  # C_6ND values, evenly in ln C_6ND over the runs' range, that d ln k / d ln C_6ND is fitted on


@dataclass(frozen=True)
class SweepLaw:
    """One sweep's chosen law of N and D, fitted on its runs, and the law refitted on resamples."""

    name: str
    runs: pd.DataFrame
    law: Fitted
    boots: list[Fitted]
    why: str
    tasks: SweepTasks | None = None
    """Its task laws, where it scores tasks (results folders; a table's groups have none)."""


class SweepSummary(Part):
    name: str
    n_runs: int
    law: LawFit
    why: str
    """Why this law (fit.law's choice among the candidates)."""


class AtCompute(Part):
    """At one compute: each sweep's compute-optimal loss, their difference and the multiplier."""

    C_6ND: float
    where: Where
    L_A: Estimate
    L_B: Estimate
    dL: Estimate
    """L*_B - L*_A at equal compute (negative: B is better)."""
    k: Estimate
    """inf (JSON null): A's frontier never reaches L*_B, which is below what A's law can reach."""


class Comparison(Part):
    baseline: str
    sweep: str
    C_6ND_range: CI
    """The lowest and highest C_6ND of the two sweeps' runs: where the slope is fitted."""
    points: list[AtCompute]
    slope: Estimate
    """d ln k / d ln C_6ND over C_6ND_range (positive: B's advantage grows with compute)."""
    n_bootstrap: int
    """Resample pairs the intervals are made of (each sweep's runs resampled on their own)."""
    verdict: str
    tasks: dict[str, TaskComparison | Skipped] = Field(default_factory=dict)
    """Per task either sweep scores: B's accuracy against A's at the same computes, or why not."""


class SharedSweep(Part):
    """One sweep's own parameters in the fit with shared exponents."""

    name: str
    n_runs: int
    E: Estimate
    A: Estimate
    B: Estimate


class SharedExponents(Part):
    """--shared-exponents: every sweep's runs fitted together with Chinchilla's form, alpha and beta
    shared (analysis/compare/shared.py), and the comparisons made again with each sweep's part."""

    form: str
    alpha: Estimate
    beta: Estimate
    sweeps: list[SharedSweep]
    n_bootstrap: int
    """Joint resamples (each sweep's runs resampled on their own, then refitted together)."""
    comparisons: list[Comparison]


class CompareReport(Part):
    convention: str = CONVENTION
    level: float = LEVEL
    sweeps: list[SweepSummary]
    comparisons: list[Comparison]
    """Each sweep's own law against the baseline's."""
    shared: SharedExponents | None = None
    """With --shared-exponents: the same comparisons with alpha and beta shared (else None)."""


def sweep_law(name: str, runs: pd.DataFrame, spec: FitSpec, seed: int) -> SweepLaw:
    """fit.law's choice among the laws of N and D for one sweep's runs (each tuned cell's optimum
    where it tunes lr or batch size), and spec.bootstrap refits of it on resamples drawn from `seed`
    (each sweep its own seed, so that two sweeps' resamples are independent)."""
    plain = spec.model_copy(update={"bootstrap": 0, "curve_points": CurvePoints.OFF})
    c = core(runs, plain, allocating=True)
    if not isinstance(c.chosen, Chosen):
        raise FitError(f"{name}: no law of N and D fits its {len(runs)} runs: {c.chosen.skipped}")
    law = c.chosen.law
    return SweepLaw(name, c.runs, law, bootstrap_law(c.runs, spec, seed, law=law.law), c.chosen.table.why)


def frontier_loss(law: Fitted, C_6ND) -> np.ndarray:
    """L*(C_6ND): the law at its compute-optimal N and D."""
    N, D = compute_optimal(law, np.asarray(C_6ND, dtype=float))
    with np.errstate(all="ignore"):
        return np.asarray(law.at(N=N, D=D), dtype=float)


def compute_for(law: Fitted, L, C_6ND) -> np.ndarray:
    """The compute at which the law's frontier reaches each loss L, by bisection in ln C_6ND between
    C_6ND/SPAN and C_6ND*SPAN: inf where the frontier is still above L at the top (L at or below what
    the law reaches, its irreducible loss), 0 where it is already below L at the bottom."""
    L, C = np.asarray(L, dtype=float), np.asarray(C_6ND, dtype=float)
    lo, hi = np.log(C) - math.log(SPAN), np.log(C) + math.log(SPAN)
    never, already = frontier_loss(law, np.exp(hi)) > L, frontier_loss(law, np.exp(lo)) <= L
    for _ in range(HALVINGS):
        mid = (lo + hi) / 2
        above = frontier_loss(law, np.exp(mid)) > L
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    out = np.where(never, np.inf, np.where(already, 0.0, np.exp((lo + hi) / 2)))
    return np.where(np.isfinite(L), out, np.nan)


def multiplier(A: Fitted, B: Fitted, C_6ND) -> np.ndarray:
    """k at each C_6ND: A's compute for B's compute-optimal loss there, over C_6ND."""
    C = np.asarray(C_6ND, dtype=float)
    return compute_for(A, frontier_loss(B, C), C) / C


def slope(A: Fitted, B: Fitted, span: CI) -> float:
    """d ln k / d ln C_6ND: the least-squares slope over SLOPE_POINTS computes across span (NaN where
    k is 0 or infinite at any of them)."""
    C = np.geomspace(span[0], span[1], SLOPE_POINTS)
    k = multiplier(A, B, C)
    if not np.all(np.isfinite(k) & (k > 0)) or span[0] == span[1]:
        return math.nan
    return float(np.polyfit(np.log(C), np.log(k), 1)[0])


def compute_span(*runs: pd.DataFrame) -> CI:
    """The lowest and highest C_6ND = 6ND of these sweeps' runs."""
    C = 6 * pd.concat([r["N"] * r["D"] for r in runs]).to_numpy(float)
    return float(C.min()), float(C.max())


def _points(A: SweepLaw, B: SweepLaw, computes: list[tuple[float, Where]]) -> list[AtCompute]:
    """Each compute's losses, difference and multiplier, with intervals from the resample pairs."""
    C = np.array([c for c, _ in computes])

    def values(a: Fitted, b: Fitted) -> np.ndarray:
        LA, LB = frontier_loss(a, C), frontier_loss(b, C)
        return np.stack([LA, LB, LB - LA, multiplier(a, b, C)])

    rows = paired(values, (A.law, B.law), zip(A.boots, B.boots))
    return [AtCompute(C_6ND=c, where=where, L_A=L_A, L_B=L_B, dL=dL, k=k) for (c, where), (L_A, L_B, dL, k) in zip(computes, rows)]


def compare_pair(A: SweepLaw, B: SweepLaw, at: Sequence[float] = ()) -> Comparison:
    """B against the baseline A at the runs' lowest, middle and highest compute and at each of `at`."""
    span = compute_span(A.runs, B.runs)
    mid = math.sqrt(span[0] * span[1])
    computes = [(span[0], Where.RUNS_LOW), (mid, Where.RUNS_MID), (span[1], Where.RUNS_HIGH), *((c, Where.AT) for c in at)]
    points = _points(A, B, computes)
    s = estimate(slope(A.law, B.law, span), [slope(a, b, span) for a, b in zip(A.boots, B.boots)])
    n = min(len(A.boots), len(B.boots))
    return Comparison(
        baseline=A.name,
        sweep=B.name,
        C_6ND_range=span,
        points=points,
        slope=s,
        n_bootstrap=n,
        verdict=verdict(A, B, points[1], s),
        tasks=compare_tasks((A.name, A.tasks), (B.name, B.tasks), computes, middle=1),
    )


def compare(sweeps: Sequence[SweepLaw], at: Sequence[float] = ()) -> CompareReport:
    """Every sweep after the first against the first."""
    summaries = [SweepSummary(name=s.name, n_runs=len(s.runs), law=LawFit.of(s.law, s.boots), why=s.why) for s in sweeps]
    return CompareReport(sweeps=summaries, comparisons=[compare_pair(sweeps[0], b, at) for b in sweeps[1:]])


def _ci(e: Estimate, fmt: str) -> str:
    return f" [{e.ci[0]:{fmt}}, {e.ci[1]:{fmt}}]" if e.ci else ""


def verdict(A: SweepLaw, B: SweepLaw, p: AtCompute, s: Estimate) -> str:
    """One plain line: how much compute B is worth against A at the runs' middle compute, and how
    that changes with compute."""
    where = f"at C_6ND = {p.C_6ND:.3g}"
    if p.k.value == math.inf:
        return f"{B.name} vs {A.name} {where}: {B.name}'s loss {p.L_B.value:.4g} is below any loss {A.name}'s law reaches; k is infinite"
    if not p.k.value > 0:
        tiny = f"under 1/{SPAN:g} of the compute"
        return f"{B.name} vs {A.name} {where}: {A.name} reaches {B.name}'s loss {p.L_B.value:.4g} with {tiny}; k is 0"
    better = "no interval to tell better from worse: --bootstrap 0"
    if p.k.ci:
        lo, hi = p.k.ci
        better = "better" if lo > 1 else "worse" if hi < 1 else "no different within the interval"
    line = (
        f"{B.name} vs {A.name} {where}: {A.name} needs {p.k.value:.3g}x{_ci(p.k, '.3g')} the compute to reach "
        f"the loss {B.name} reaches ({B.name} {better})"
    )
    if not math.isfinite(s.value):
        return line + "; no trend with compute (k is 0 or infinite somewhere in the runs' range)"
    trend = "shows no clear trend with compute"
    if s.ci and (s.ci[0] > 0 or s.ci[1] < 0):
        trend = "grows with compute" if s.ci[0] > 0 else "shrinks with compute"
    elif not s.ci:
        trend = "changes with compute as the slope says, without an interval"
    return f"{line}; k {trend} (d ln k / d ln C_6ND = {s.value:.3g}{_ci(s, '.3g')})"
