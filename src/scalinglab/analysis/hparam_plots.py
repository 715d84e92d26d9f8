"""The figure of a sweep that tunes the learning rate: loss against lr for each size, one panel per
data size, with each cell's parabola and fitted optimum (its interval as a bar); and lr* against
C with the fitted power law. No JAX."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .hparams import SAME_D, cell_D
from .plot import _finish, _save

MAX_PANELS = 4  # data sizes shown: the smallest, the largest and evenly between


def _panel(ax, runs: pd.DataFrame, cells: pd.DataFrame, colors: dict) -> None:
    for cell in cells.itertuples():
        rows = runs[(runs["N"] == cell.N) & (runs["batch_size"] == cell.batch_size)
                    & (np.abs(np.log(runs["D"] / cell.D)) <= np.log(SAME_D))]
        mean = rows.groupby("lr")["L"].mean()
        color = colors[cell.N]
        ax.plot(mean.index, mean.to_numpy(), "o", color=color, ms=4, label=f"N = {cell.N:.3g}")
        if mean.size >= 3:
            u = np.log(rows["lr"].to_numpy(float))
            xs = np.linspace(u.min(), u.max(), 60)
            ax.plot(np.exp(xs), np.polyval(np.polyfit(u, rows["L"].to_numpy(float), 2), xs), color=color, lw=1)
        err = None if cell.lr_ci is None else [[cell.lr_opt - cell.lr_ci[0]], [cell.lr_ci[1] - cell.lr_opt]]
        ax.errorbar([cell.lr_opt], [cell.L], xerr=err, fmt="*" if cell.lr_interior else "x", color=color, ms=11,
                    mec="k", capsize=3, zorder=4)


def _lr_vs_C(ax, cells: pd.DataFrame, law: dict) -> None:
    inner = cells[cells["lr_interior"]]
    ax.scatter(inner["C"], inner["lr_opt"], color="k", zorder=3, label="interior optimum")
    edge = cells[~cells["lr_interior"]]
    if len(edge):
        ax.scatter(edge["C"], edge["lr_opt"], marker="x", color="0.5", label="at the edge of grid.lr")
    if "skipped" not in law:
        C = np.geomspace(cells["C"].min() / 1.5, cells["C"].max() * 1.5, 50)
        b, ci = law["exponents"]["C"], law.get("ci", {}).get("C")
        span = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        ax.plot(C, law["a"] * C**b, "k--", lw=1, label=f"lr* = {law['a']:.3g} C^{b:.3f}{span}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C (FLOPs)")
    ax.set_ylabel("lr*")
    ax.set_title("best learning rate against compute", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_lr(runs: pd.DataFrame, hyper: dict, path: Path) -> Path:
    """loss_vs_lr.png from the runs and fit.json's "hyperparameters" section."""
    cells = pd.DataFrame(hyper["cells"])
    cells["cell_D"] = cell_D(cells["D"])
    Ds = np.sort(cells["cell_D"].unique())
    shown = Ds[np.unique(np.linspace(0, len(Ds) - 1, min(MAX_PANELS, len(Ds))).round().astype(int))]
    sizes = np.sort(cells["N"].unique())
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))))
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4.2 * (len(shown) + 1), 4.2), squeeze=False)
    for ax, D in zip(axes[0], shown):
        _panel(ax, runs, cells[cells["cell_D"] == D], colors)
        _finish(ax, "learning rate", f"D = {D:.3g}")
        ax.set_yscale("linear")  # a parabola's few percent of loss
    _lr_vs_C(axes[0][-1], cells, hyper["laws"].get("lr_C", {"skipped": "lr not tuned"}))
    fig.suptitle("loss against learning rate per size: * the fitted optimum (bar: its interval), x an optimum at the edge of grid.lr", fontsize=9)
    return _save(fig, path)
