"""The task figures of a sweep, from its task scores and the fitted TaskReport: emergence (each
task's discontinuous and continuous metric against N and C), strategies against scale, and the
two-step law's steps with the held-out runs. No JAX."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .figstyle import Figure, bars, plain, plt, save, span
from .parts import LawFit, Skipped
from .task_laws import final_rows
from .task_report import report_rows
from .taskfit import Spread, TaskExtrapolation, TaskReport, TwoStepFit

PANEL = (5.2, 3.6)  # inches per panel


def _grid(n_rows: int, n_cols: int):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(PANEL[0] * n_cols, PANEL[1] * n_rows), squeeze=False)
    return fig, axes


def _style(ax, xlabel: str, ylabel: str, title: str, chance: float | None = None, logx: bool = True) -> None:
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", lw=1, label=f"chance ({chance:.3g})")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)


def emergence(rows: pd.DataFrame, report: TaskReport) -> Figure | None:
    """Per task: its discontinuous and continuous metric against N (left) and C (right)."""
    tasks = [(name, t) for name, t in report.tasks.items() if not isinstance(t.emergence, Skipped)]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), 2)
    for (left, right), (task, t) in zip(axes, tasks):
        em = t.emergence
        assert not isinstance(em, Skipped)
        finals = final_rows(rows[rows["task"] == task])
        for part, color in ((em.discontinuous, "C0"), (em.continuous, "C1")):
            kind = "discontinuous" if part is em.discontinuous else "continuous"
            for ax, x in ((left, "N"), (right, "C")):
                ax.scatter(
                    finals[x],
                    finals[part.metric],
                    color=color,
                    s=14,
                    alpha=0.7,
                    zorder=3,
                    label=f"{part.metric} ({kind}, sharpness {part.sharpness:.2f}: {part.shape})",
                )
            left.plot(part.N, part.values, color=color, lw=1)
        _style(left, "N (parameters)", "metric at the final evaluation", f"{plain(task)}: {em.verdict}", t.chance)
        _style(right, "C (FLOPs the runs computed)", "metric at the final evaluation", f"{plain(task)} against compute", t.chance)
    return fig


def strategies(report: TaskReport) -> Figure | None:
    """Accuracy against N per strategy, one panel per (task, shots), with 95% intervals over items."""
    panels = [
        (task, shots, [c for c in s.curves if c.shots == shots])
        for task, s in report.strategy_vs_scale.items()
        for shots in sorted({c.shots for c in s.curves})
    ]
    panels = [p for p in panels if len(p[2]) >= 2]
    if not panels:
        return None
    n_cols = min(3, len(panels))
    fig, axes = _grid(-(-len(panels) // n_cols), n_cols)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (task, shots, curves) in zip(axes.flat, panels):
        for curve in curves:
            ax.errorbar(
                curve.N,
                curve.acc,
                yerr=bars(curve.acc, curve.acc_ci),
                marker="o",
                ms=4,
                capsize=3,
                lw=1,
                label=plain(curve.strategy),
            )
        spread = next((s for s in report.strategy_vs_scale[task].spread if s.shots == shots), None)
        finding = "" if spread is None else spread.finding if isinstance(spread, Spread) else spread.skipped
        chance = report.tasks[task].chance if task in report.tasks else None
        _style(ax, "N (parameters)", "accuracy (final evaluation)", f"{plain(task)}, {shots}-shot: {finding}", chance)
    return fig


def _step1(ax, fitted: pd.DataFrame, held: pd.DataFrame, step1: LawFit) -> None:
    law = step1.fitted()
    finals = final_rows(fitted)
    Ds = np.sort(np.unique(np.concatenate([finals["D"], held["D"]])))
    colors = dict(zip(Ds, plt.cm.viridis(np.linspace(0, 0.9, len(Ds)))))
    Ns = span(pd.concat([finals["N"], held["N"]]), pad=1.2)
    for D, color in colors.items():
        ax.plot(Ns, law(Ns, D), color=color, lw=1)
    ax.scatter(finals["N"], finals["task_loss"], c=[colors[d] for d in finals["D"]], s=16, zorder=3, label="runs in the fit (final)")
    if len(held):
        ax.scatter(held["N"], held["task_loss"], facecolors="none", edgecolors="k", s=60, zorder=4, label="held out: measured")
        ax.scatter(held["N"], held["task_loss_pred"], marker="x", color="C3", s=40, zorder=5, label="held out: predicted")
    _style(ax, "N (parameters)", "task loss (final checkpoint)", "step 1: task loss = E + A/N^alpha + B/D^beta, a line per D")


def _step2(ax, fitted: pd.DataFrame, held: pd.DataFrame, step2: LawFit, chance: float) -> None:
    sigmoid, v = step2.fitted(), step2.params
    ax.scatter(fitted["task_loss"], fitted["acc"], s=5, alpha=0.3, color="C0", label="checkpoints of the runs in the fit")
    L = np.linspace(
        min(fitted["task_loss"].min(), held["task_loss"].min() if len(held) else np.inf) * 0.95, fitted["task_loss"].max() * 1.02, 200
    )
    ax.plot(
        L, sigmoid(L), "k-", lw=1.2, label=f"acc = {chance:.3g} + {v['ceiling'] - chance:.3g} / (1 + exp({v['k']:.3g} (L - {v['x0']:.3g})))"
    )
    if len(held):
        ax.scatter(held["task_loss"], held["acc"], facecolors="none", edgecolors="k", s=60, zorder=4, label="held out: measured")
        yerr = bars(held["acc_pred"], held["acc_pred_ci"])
        ax.errorbar(
            held["task_loss_pred"],
            held["acc_pred"],
            yerr=yerr,
            fmt="x",
            color="C3",
            capsize=3,
            zorder=5,
            label="held out: predicted (both steps), 95% interval",
        )
    _style(ax, "task loss", "accuracy", "step 2: accuracy against task loss", chance, logx=False)


def two_step(rows: pd.DataFrame, report: TaskReport) -> Figure | None:
    tasks = [(name, t) for name, t in report.tasks.items() if isinstance(t.two_step, TwoStepFit)]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), 2)
    for (left, right), (task, t) in zip(axes, tasks):
        assert isinstance(t.two_step, TwoStepFit)
        data = rows[rows["task"] == task].dropna(subset=["task_loss", "acc"])
        ext = t.extrapolation
        held = pd.DataFrame([h.model_dump() for h in ext.held_out]) if isinstance(ext, TaskExtrapolation) else pd.DataFrame()
        if held.empty:
            held = pd.DataFrame(columns=["run_id", "N", "D", "acc", "task_loss", "acc_pred_ci"], dtype=float)
        fitted = data[~data["run"].isin(held["run_id"])]
        _step1(left, fitted, held, t.two_step.step1)
        _step2(right, fitted, held, t.two_step.step2, t.chance)
        left.set_title(f"{plain(task)} — {left.get_title()}", fontsize=8)
    return fig


def task_figures(frame: pd.DataFrame, report: TaskReport) -> dict[str, Figure]:
    """tasks_emergence.png, tasks_strategies.png and tasks_two_step.png, each where the data and
    fits support it."""
    rows = report_rows(frame, report.shots, report.strategy)
    built = {
        "tasks_emergence.png": emergence(rows, report),
        "tasks_strategies.png": strategies(report),
        "tasks_two_step.png": two_step(rows, report),
    }
    return {name: fig for name, fig in built.items() if fig is not None}


def plot_tasks(frame: pd.DataFrame, report: TaskReport, out_dir: Path) -> list[Path]:
    """Writes the task figures into out_dir; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save(fig, out_dir / name) for name, fig in task_figures(frame, report).items()]
