"""Hoffmann et al.'s Approaches 1 and 2 and the plain power laws: the compute frontier, L against
N, D and C, IsoFLOP parabolas, the lower envelope of training curves. These read the runs' own C
(the FLOPs they computed), not the laws' C_6ND. Pure functions; no JAX."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..errors import FitError
from .laws.power import PowerLaw
from .laws.solve import fit
from .parts import LawFit
from .sweepfit import Budget, Envelope, IsoFLOP, PowerLawFit


def _best_slice(df: pd.DataFrame, x: str, other: str) -> tuple[pd.DataFrame, str]:
    """The rows at the value of `other` with the most distinct x values (ties: the largest)."""
    counts = df.groupby(other)[x].nunique()
    value = max(counts.index, key=lambda v: (counts[v], v))
    return df[df[other] == value], f"{other}={value:.3g}"


def frontier(df: pd.DataFrame) -> pd.DataFrame:
    """Compute-efficient runs: lower loss than every run with less compute."""
    df = df.sort_values(["C", "L"])
    return df[df["L"] < df["L"].cummin().shift(fill_value=np.inf)]


def power_laws(df: pd.DataFrame) -> list[PowerLawFit]:
    """L vs N (at the D with most sizes), vs D (at the N with most data sizes) and vs C (on the
    compute frontier), each with and without E, wherever the data has enough points."""
    laws = []
    slices = [(*_best_slice(df, "N", "D"), "N"), (*_best_slice(df, "D", "N"), "D"), (frontier(df), "compute frontier", "C")]
    for (rows, at, x), irreducible in itertools.product(slices, (False, True)):
        try:
            law = fit(PowerLaw((x,), irreducible), (rows[x],), rows["L"])
        except FitError:
            continue
        laws.append(PowerLawFit(**LawFit.of(law).model_dump(), at=at))
    return laws


def isoflop_groups(df: pd.DataFrame, gap_decades: float = 0.05) -> list[pd.DataFrame]:
    """Runs clustered by compute budget: a new budget starts where sorted log10 C jumps by more
    than gap_decades (planned IsoFLOP runs land within rounding of their budget)."""
    df = df.sort_values("C")
    budget = (np.diff(np.log10(df["C"].to_numpy()), prepend=-np.inf) > gap_decades).cumsum()
    return [g for _, g in df.groupby(budget)]


def _budget(g: pd.DataFrame) -> Budget | None:
    """A parabola of L in log N over one budget's runs; its minimum gives N_opt, and D_opt is read
    off the budget's own log D - log N line there. None without a minimum inside the sizes tried."""
    lN = np.log(g["N"].to_numpy())
    p2, p1, p0 = np.polyfit(lN, g["L"].to_numpy(), 2)
    x = -p1 / (2 * p2) if p2 > 0 else np.nan
    if not lN.min() < x < lN.max():  # N_opt not bracketed
        return None
    slope, icpt = np.polyfit(lN, np.log(g["D"].to_numpy()), 1)
    return Budget(
        C=float(np.exp(np.log(g["C"]).mean())),
        N_opt=float(np.exp(x)),
        D_opt=float(np.exp(icpt + slope * x)),
        L_min=float(p0 + p1 * x + p2 * x * x),
        parabola=(float(p2), float(p1), float(p0)),
        N=g["N"].tolist(),
        L=g["L"].tolist(),
    )


def fit_isoflop(df: pd.DataFrame) -> IsoFLOP:
    """Approach 2: per budget with >= 3 sizes, its parabola (_budget); then power laws N_opt = a C^b
    and D_opt = a C^b across budgets."""
    budgets = [b for g in isoflop_groups(df) if g["N"].nunique() >= 3 and (b := _budget(g)) is not None]
    if len(budgets) < 2:
        raise FitError(f"IsoFLOP: need 2 budgets with >= 3 model sizes and a minimum, found {len(budgets)}")
    C = [b.C for b in budgets]
    laws = {k: fit(PowerLaw(("C",), y=k), (C,), [getattr(b, k) for b in budgets]) for k in ("N_opt", "D_opt")}
    return IsoFLOP(budgets=budgets, N_opt=LawFit.of(laws["N_opt"]), D_opt=LawFit.of(laws["D_opt"]))


def fit_envelope(evals: pd.DataFrame, n_grid: int = 40) -> Envelope:
    """Approach 1: the lower envelope of all training curves (L against FLOPs so far, each
    curve interpolated in log-log). At each C the run on the envelope gives N_opt(C); then
    N_opt = a C^b. evals: one row per evaluation with run_id, N, C_seen, flops_per_token and L."""
    curves = [
        (g["N"].iloc[0], g["flops_per_token"].iloc[0], np.log(g["C_seen"].to_numpy()), np.log(g["L"].to_numpy()))
        for _, g in evals.sort_values("C_seen").groupby("run_id")
        if len(g) >= 2
    ]
    if len(curves) < 2:
        raise FitError("envelope: need training curves of at least 2 runs")
    grid = np.linspace(min(c[2][0] for c in curves), max(c[2][-1] for c in curves), n_grid)
    lL = np.array([np.interp(grid, lc, ll, left=np.nan, right=np.nan) for _, _, lc, ll in curves])
    ok = ~np.all(np.isnan(lL), axis=0)
    best = np.nanargmin(lL[:, ok], axis=0)
    N_opt = np.array([curves[i][0] for i in best], dtype=float)
    C = np.exp(grid[ok])
    law = fit(PowerLaw(("C",), y="N_opt"), (C,), N_opt)  # raises when the envelope never changes size
    D = C / np.array([curves[i][1] for i in best], dtype=float)
    return Envelope(
        C=C.tolist(), N_opt=N_opt.tolist(), D=D.tolist(), L=np.exp(lL[best, np.flatnonzero(ok)]).tolist(), N_opt_law=LawFit.of(law)
    )
