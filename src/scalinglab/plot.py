"""Figures from a results DataFrame and the fits: loss vs N, D and C, and training curves. No JAX."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .fit import Chinchilla, PowerLaw  # noqa: E402

LAW_FIELDS = ("E", "A", "B", "alpha", "beta", "objective", "n_points")


def _chinchilla(fits: dict) -> Chinchilla | None:
    return Chinchilla(**{k: fits[k] for k in LAW_FIELDS}) if "alpha" in fits else None


def _power_law(fits: dict, x: str, irreducible: bool) -> PowerLaw | None:
    for law in fits.get("power_laws", []):
        if law["x"] == x and bool(law["E"]) == irreducible:
            return PowerLaw(**{k: v for k, v in law.items() if k != "form"})
    return None


def _span(values: pd.Series, pad: float = 1.5) -> np.ndarray:
    return np.geomspace(values.min() / pad, values.max() * pad, 100)


def _law_title(law: Chinchilla | None) -> str:
    if law is None:
        return "L(N,D) not fitted"
    return f"L = {law.E:.3g} + {law.A:.3g}/N^{law.alpha:.3f} + {law.B:.3g}/D^{law.beta:.3f}"


def _loss_vs(df: pd.DataFrame, fits: dict, x: str, by: str, path: Path) -> Path:
    """Loss against x, one colour per value of `by`, with the L(N,D) curve for each."""
    law = _chinchilla(fits)
    groups = sorted(df[by].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(groups)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for value, color in zip(groups, colors):
        rows = df[df[by] == value].sort_values(x)
        ax.scatter(rows[x], rows["L"], color=color, label=f"{by} = {value:.3g}", zorder=3)
        if law is not None:
            xs = _span(df[x])
            ax.plot(xs, law(xs, value) if x == "N" else law(value, xs), color=color, lw=1.2)
    pl = _power_law(fits, x, irreducible=True) or _power_law(fits, x, irreducible=False)
    if pl is not None:
        xs = _span(df[x])
        ax.plot(xs, pl(xs), "k--", lw=1, label=f"{pl.form}, b = {pl.b:.3f} ({pl.at})")
    _finish(ax, x, f"loss vs {x}\n{_law_title(law)}")
    return _save(fig, path)


def _loss_vs_C(df: pd.DataFrame, fits: dict, path: Path) -> Path:
    law = _chinchilla(fits)
    sizes = sorted(df["N"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for N, color in zip(sizes, colors):
        rows = df[df["N"] == N]
        ax.scatter(rows["C"], rows["L"], color=color, label=f"N = {N:.3g}", zorder=3)
        if law is not None:
            flops_per_token = float((rows["C"] / rows["D"]).iloc[0])
            Ds = _span(df["D"])
            ax.plot(Ds * flops_per_token, law(N, Ds), color=color, lw=1.2)
    pl = _power_law(fits, "C", irreducible=True) or _power_law(fits, "C", irreducible=False)
    if pl is not None:
        Cs = _span(df["C"])
        ax.plot(Cs, pl(Cs), "k--", lw=1, label=f"frontier: {pl.form}, b = {pl.b:.3f}")
    _finish(ax, "C (training FLOPs)", f"loss vs compute\n{_law_title(law)}")
    return _save(fig, path)


def _curves(evals: pd.DataFrame, path: Path) -> Path:
    """Validation loss during training against FLOPs spent, one line per run, coloured by N."""
    sizes = sorted(evals["N"].unique())
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for (run_id, N), rows in evals.groupby(["run_id", "N"]):
        rows = rows.sort_values("step")
        ax.plot(rows["tokens"] * rows["flops_per_token"], rows["L"], color=colors[N], lw=1, alpha=0.8)
    for N in sizes:
        ax.plot([], [], color=colors[N], label=f"N = {N:.3g}")
    _finish(ax, "C so far (training FLOPs)", "validation loss during training")
    return _save(fig, path)


def _finish(ax, xlabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Loss spans well under a decade: label it with plain numbers, minor ticks included.
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


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_all(runs: pd.DataFrame, fits: dict, out_dir: Path, evals: pd.DataFrame | None = None) -> list[Path]:
    """Writes every figure the data supports into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        _loss_vs(runs, fits, "N", "D", out_dir / "loss_vs_N.png"),
        _loss_vs(runs, fits, "D", "N", out_dir / "loss_vs_D.png"),
        _loss_vs_C(runs, fits, out_dir / "loss_vs_C.png"),
    ]
    if evals is not None and len(evals):
        paths.append(_curves(evals, out_dir / "training_curves.png"))
    return paths
