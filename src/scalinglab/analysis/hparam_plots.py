"""The figure of a sweep that tunes the learning rate: loss against lr for each size, one panel per
data size, with each cell's parabola and fitted optimum (its interval as a bar), as the fit found
them; and lr* against C with the fitted power law. No JAX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .figstyle import Figure, finish, plt
from .hparams import SAME_D, cell_D
from .parts import LawFit, Skipped
from .sweepfit import Cell, Hyperparameters

MAX_PANELS = 4  # data sizes shown: the smallest, the largest and evenly between


def _panel(ax, runs: pd.DataFrame, cells: list[Cell], colors: dict) -> None:
    for cell in cells:
        rows = runs[
            (runs["N"] == cell.N) & (runs["batch_size"] == cell.batch_size) & (np.abs(np.log(runs["D"] / cell.D)) <= np.log(SAME_D))
        ]
        mean = rows.groupby("lr")["L"].mean()
        color = colors[cell.N]
        ax.plot(mean.index, mean.to_numpy(), "o", color=color, ms=4, label=f"N = {cell.N:.3g}")
        if cell.lr_parabola is not None:
            u = np.log(rows["lr"].to_numpy(float))
            xs = np.linspace(u.min(), u.max(), 60)
            ax.plot(np.exp(xs), np.polyval(cell.lr_parabola, xs), color=color, lw=1)
        err = None if cell.lr_ci is None else [[cell.lr_opt - cell.lr_ci[0]], [cell.lr_ci[1] - cell.lr_opt]]
        ax.errorbar(
            [cell.lr_opt], [cell.L], xerr=err, fmt="*" if cell.lr_interior else "x", color=color, ms=11, mec="k", capsize=3, zorder=4
        )


def _lr_vs_C(ax, cells: list[Cell], law: LawFit | Skipped) -> None:
    inner = [c for c in cells if c.lr_interior]
    ax.scatter([c.C for c in inner], [c.lr_opt for c in inner], color="k", zorder=3, label="interior optimum")
    edge = [c for c in cells if not c.lr_interior]
    if edge:
        ax.scatter([c.C for c in edge], [c.lr_opt for c in edge], marker="x", color="0.5", label="at the edge of grid.lr")
    if isinstance(law, LawFit):
        C = np.geomspace(min(c.C for c in cells) / 1.5, max(c.C for c in cells) * 1.5, 50)
        b, ci = law.params["b"], law.ci.get("b")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        ax.plot(C, law.fitted()(C), "k--", lw=1, label=f"lr* = {law.params['a']:.3g} C^{b:.3f}{interval}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C (FLOPs the runs computed)")
    ax.set_ylabel("lr*")
    ax.set_title("best learning rate against compute", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def lr_figure(runs: pd.DataFrame, hyper: Hyperparameters) -> Figure:
    """loss_vs_lr.png from the runs and what tuning found."""
    cells = hyper.cells
    D_cell = cell_D(pd.Series([c.D for c in cells])).to_numpy()
    Ds = np.unique(D_cell)
    shown = Ds[np.unique(np.linspace(0, len(Ds) - 1, min(MAX_PANELS, len(Ds))).round().astype(int))]
    sizes = np.unique([c.N for c in cells])
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))))
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4.2 * (len(shown) + 1), 4.2), squeeze=False)
    for ax, D in zip(axes[0], shown):
        _panel(ax, runs, [c for c, d in zip(cells, D_cell) if d == D], colors)
        finish(ax, "learning rate", f"D = {D:.3g}")
        ax.set_yscale("linear")  # a parabola's few percent of loss
    _lr_vs_C(axes[0][-1], cells, hyper.laws.get("lr_C", Skipped(skipped="lr not tuned")))
    fig.suptitle(
        "loss against learning rate per size: * the fitted optimum (bar: its interval), x an optimum at the edge of grid.lr", fontsize=9
    )
    return fig
