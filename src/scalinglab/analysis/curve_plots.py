"""The figure of one size's curve fit (figures/curves_N<N>.png): each run's measured loss as
points and the law's loss along its schedule as a line, against the step (linear: the cooldowns,
where the schedules differ, sit at the end), and the runs' schedules in a small panel below."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .curve_text import size_name
from .curves.sizes import SizeCurveFit
from .figstyle import plain, plt, save

LINE_POINTS = 400  # steps the fitted line is drawn through, per run


def plot_size(size: SizeCurveFit, path: Path, loss: str) -> Path:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.get_cmap("tab10")
    fitted_losses = []
    for i, (curve, r2) in enumerate(zip(size.curves, size.fit.r2, strict=True)):
        color = colors(i % 10)
        after = curve.fitted
        line = np.unique(np.linspace(max(curve.warmup, curve.skip) + 1, len(curve.lr), LINE_POINTS).astype(int))
        name = plain(curve.label or curve.run)
        top.plot(curve.steps[after], curve.loss[after], ".", ms=3, color=color, alpha=0.6, label=f"{name} (R² {r2:.3f})")
        top.plot(curve.steps[~after], curve.loss[~after], ".", ms=3, color=color, alpha=0.15)
        top.plot(line, size.fit.predict(curve.lr, line), "-", lw=1.2, color=color)
        bottom.plot(np.arange(1, len(curve.lr) + 1), curve.lr, "-", lw=1, color=color)
        fitted_losses.append(curve.loss[after])
    measured = np.concatenate(fitted_losses) if fitted_losses else np.array([1.0])
    low, high = float(np.min(measured)), float(np.percentile(measured, 99))
    top.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))  # the warmup's losses off the top
    top.set_ylabel(f"{plain(loss)} loss (nats/token)")
    params = ", ".join(f"{k} = {v:.3g}" for k, v in size.fit.params.items())
    top.set_title(plain(f"{size_name(size.N)}: {size.fit.name}, {params}"), fontsize=8)
    top.grid(True, alpha=0.3)
    top.legend(fontsize=6, title="points measured, lines fitted", title_fontsize=6)
    bottom.set_xlabel("step")
    bottom.set_ylabel("lr")
    bottom.grid(True, alpha=0.3)
    return save(fig, path)
