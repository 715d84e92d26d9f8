"""The comparison figure (`scalinglab compare --figure FILE`): loss against compute C_6ND = 6ND for
every sweep (its runs as points, its compute-optimal loss L*(C) as a line inside the bootstrap's
band), and beside it the multiplier k(C) of each sweep against the baseline with its band. No JAX."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..figstyle import plain, plt, save
from ..laws.bootstrap import LEVEL
from .multiplier import SweepLaw, compute_span, frontier_loss, multiplier

GRID = 30  # computes the lines and bands are drawn through
BANDS = 100  # resamples (pairs) a band is made of, at most: each k is a bisection per compute


def _band(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The LEVEL band over resampled curves, where they are finite; None without resamples."""
    if not curves:
        return None
    stack = np.where(np.isfinite(np.array(curves)), np.array(curves), np.nan)
    tail = 100 * (1 - LEVEL) / 2
    with np.errstate(all="ignore"):
        return np.nanpercentile(stack, tail, axis=0), np.nanpercentile(stack, 100 - tail, axis=0)


def plot_comparison(sweeps: Sequence[SweepLaw], path: Path) -> Path:
    C = np.geomspace(*compute_span(*(s.runs for s in sweeps)), GRID)
    fig, (loss, ratio) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.get_cmap("tab10")
    for i, s in enumerate(sweeps):
        color = colors(i % 10)
        loss.scatter(6 * s.runs["N"] * s.runs["D"], s.runs["L"], s=10, color=color, alpha=0.5)
        loss.plot(C, frontier_loss(s.law, C), "-", color=color, label=plain(s.name) + (" (A)" if i == 0 else ""))
        band = _band([frontier_loss(b, C) for b in s.boots[:BANDS]])
        if band is not None:
            loss.fill_between(C, *band, color=color, alpha=0.15, lw=0)
        if i == 0:
            continue
        A = sweeps[0]
        ratio.plot(C, multiplier(A.law, s.law, C), "-", color=color, label=plain(f"{s.name} against {A.name}"))
        band = _band([multiplier(a, b, C) for a, b in zip(A.boots[:BANDS], s.boots[:BANDS], strict=False)])
        if band is not None:
            ratio.fill_between(C, *band, color=color, alpha=0.15, lw=0)
    ratio.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ratio.set_yscale("log")  # k and 1/k alike
    for ax, ylabel in ((loss, "L*(C_6ND), runs' L"), (ratio, "k: A's compute for B's loss / C_6ND")):
        ax.set_xscale("log")
        ax.set_xlabel("C_6ND = 6ND (FLOPs)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    loss.set_title(f"compute-optimal loss, {LEVEL:.0%} bands", fontsize=9)
    ratio.set_title("compute multiplier k (above 1: B reaches A's loss with less)", fontsize=9)
    return save(fig, path)
