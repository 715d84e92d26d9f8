"""What every figure shares: matplotlib without a display, log axes labelled for losses that span
well under a decade, the span a curve is drawn over, a law's title, saving. No JAX."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works with no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .laws import Fitted

__all__ = ["Figure", "bars", "finish", "law_title", "plain", "plt", "save", "span"]


def span(values: pd.Series, pad: float = 1.5) -> np.ndarray:
    """100 points from the smallest value / pad to the largest * pad, evenly in log."""
    return np.geomspace(values.min() / pad, values.max() * pad, 100)


def bars(values, intervals) -> np.ndarray | None:
    """Interval bars for matplotlib's errorbar: lengths below and above each value (2, n); None
    without intervals. A value is the fit to the data itself, not the resamples' median, and may lie
    outside its interval: matplotlib takes no negative lengths, so those are 0."""
    if intervals is None or pd.isna(pd.Series(list(intervals), dtype=object)).all():
        return None
    values, ci = np.asarray(values, dtype=float), np.array(list(intervals), dtype=float)
    return np.clip([values - ci[:, 0], ci[:, 1] - values], 0, None)


def plain(name: str) -> str:
    """A name read from results (a task, a strategy) as a title or label shows it, letter for letter:
    its $ escaped, as two of them would start mathtext, which fails to draw on a stray backslash.
    Matplotlib turns each \\$ back into $ in text with no unescaped $."""
    return str(name).replace("$", r"\$")


def law_title(law: Fitted | None) -> str:
    if law is None:
        return "no law of the loss fitted"
    v = law.values
    if law.law.name != "chinchilla":
        return f"{law.law.name}: " + ", ".join(f"{k} = {x:.3g}" for k, x in v.items())
    return f"L = {v['E']:.3g} + {v['A']:.3g}/N^{v['alpha']:.3f} + {v['B']:.3g}/D^{v['beta']:.3f}"


def finish(ax, xlabel: str, title: str) -> None:
    """Log axes, loss labelled with plain numbers (minor ticks too), a grid and the legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    lo, hi = ax.get_xlim()
    if hi / lo < 100:  # under two decades: too few major ticks to read values off
        ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e+0", "e")))
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("L (validation loss, nats/token)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
