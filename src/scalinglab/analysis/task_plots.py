"""Figures of a sweep's downstream tasks, from its evaluations (results.load(path, tasks=True)) and
task_laws.task_report's dict: emergence, accuracy per demonstration strategy against N, and the
two steps with the held-out runs' predictions. A figure the data cannot support is left out. No JAX."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .laws import PARAMS, Chinchilla  # noqa: E402
from .plot import _save, _span  # noqa: E402
from .task_laws import Sigmoid, final_rows, report_rows  # noqa: E402

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


def _emergence(rows: pd.DataFrame, fits: dict, path: Path) -> Path | None:
    """Per task: its discontinuous and continuous metric against N (left) and C (right)."""
    tasks = [t for t, f in fits["tasks"].items() if "verdict" in f["emergence"]]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), 2)
    for (left, right), task in zip(axes, tasks):
        em, chance = fits["tasks"][task]["emergence"], fits["tasks"][task]["chance"]
        finals = final_rows(rows[rows["task"] == task])
        for part, color in (("discontinuous", "C0"), ("continuous", "C1")):
            name = em[part]["metric"]
            for ax, x in ((left, "N"), (right, "C")):
                ax.scatter(finals[x], finals[name], color=color, s=14, alpha=0.7, zorder=3,
                           label=f"{name} ({part}, sharpness {em[part]['sharpness']:.2f}: {em[part]['shape']})")
            left.plot(em[part]["N"], em[part]["values"], color=color, lw=1)
        _style(left, "N (parameters)", "metric at the final evaluation", f"{task}: {em['verdict']}", chance)
        _style(right, "C (training FLOPs)", "metric at the final evaluation", f"{task} against compute", chance)
    return _save(fig, path)


def _strategies(fits: dict, path: Path) -> Path | None:
    """Accuracy against N per strategy, one panel per (task, shots), with 95% intervals over items."""
    panels = [(task, shots, [c for c in s["curves"] if c["shots"] == shots])
              for task, s in fits["strategy_vs_scale"].items() for shots in sorted({c["shots"] for c in s["curves"]})]
    panels = [p for p in panels if len(p[2]) >= 2]
    if not panels:
        return None
    n_cols = min(3, len(panels))
    fig, axes = _grid(-(-len(panels) // n_cols), n_cols)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (task, shots, curves) in zip(axes.flat, panels):
        for curve in curves:
            acc, ci = np.array(curve["acc"]), np.array(curve["acc_ci"])
            ax.errorbar(curve["N"], acc, yerr=np.clip([acc - ci[:, 0], ci[:, 1] - acc], 0, None), marker="o", ms=4,
                        capsize=3, lw=1, label=curve["strategy"])
        spread = next((s for s in fits["strategy_vs_scale"][task]["spread"] if s["shots"] == shots), {})
        chance = fits["tasks"].get(task, {}).get("chance")
        _style(ax, "N (parameters)", "accuracy (final evaluation)", f"{task}, {shots}-shot: {spread.get('finding', spread.get('skipped', ''))}", chance)
    return _save(fig, path)


def _step1(ax, fitted: pd.DataFrame, held: pd.DataFrame, s1: dict) -> None:
    law = Chinchilla(**{k: s1[k] for k in PARAMS}, objective=float("nan"), n_points=s1["n_points"])
    finals = final_rows(fitted)
    Ds = np.sort(np.unique(np.concatenate([finals["D"], held["D"]])))
    colors = dict(zip(Ds, plt.cm.viridis(np.linspace(0, 0.9, len(Ds)))))
    Ns = _span(pd.concat([finals["N"], held["N"]]), pad=1.2)
    for D, color in colors.items():
        ax.plot(Ns, law(Ns, D), color=color, lw=1)
    ax.scatter(finals["N"], finals["task_loss"], c=[colors[d] for d in finals["D"]], s=16, zorder=3, label="runs in the fit (final)")
    if len(held):
        ax.scatter(held["N"], held["task_loss"], facecolors="none", edgecolors="k", s=60, zorder=4, label="held out: measured")
        ax.scatter(held["N"], held["task_loss_pred"], marker="x", color="C3", s=40, zorder=5, label="held out: predicted")
    _style(ax, "N (parameters)", "task loss (final checkpoint)", "step 1: task loss = E + A/N^alpha + B/D^beta, a line per D")


def _step2(ax, fitted: pd.DataFrame, held: pd.DataFrame, s2: dict, chance: float) -> None:
    sigmoid = Sigmoid(s2["a"], s2["b"], s2["k"], s2["L0"], s2["n_points"])
    ax.scatter(fitted["task_loss"], fitted["acc"], s=5, alpha=0.3, color="C0", label="checkpoints of the runs in the fit")
    L = np.linspace(min(fitted["task_loss"].min(), held["task_loss"].min() if len(held) else np.inf) * 0.95,
                    fitted["task_loss"].max() * 1.02, 200)
    ax.plot(L, sigmoid(L), "k-", lw=1.2, label=f"acc = {s2['a']:.3g} / (1 + exp(-{s2['k']:.3g} (L - {s2['L0']:.3g}))) + {s2['b']:.3g}")
    if len(held):
        ax.scatter(held["task_loss"], held["acc"], facecolors="none", edgecolors="k", s=60, zorder=4, label="held out: measured")
        yerr = None
        if "acc_pred_ci" in held:
            ci = np.array(held["acc_pred_ci"].tolist())
            yerr = np.clip([held["acc_pred"] - ci[:, 0], ci[:, 1] - held["acc_pred"]], 0, None)
        ax.errorbar(held["task_loss_pred"], held["acc_pred"], yerr=yerr, fmt="x", color="C3", capsize=3, zorder=5,
                    label="held out: predicted (both steps), 95% interval")
    _style(ax, "task loss", "accuracy", "step 2: accuracy against task loss", chance, logx=False)


def _two_step(rows: pd.DataFrame, fits: dict, path: Path) -> Path | None:
    tasks = [t for t, f in fits["tasks"].items() if "step1" in f["two_step"]]
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), 2)
    for (left, right), task in zip(axes, tasks):
        f = fits["tasks"][task]
        data = rows[rows["task"] == task].dropna(subset=["task_loss", "acc"])
        held = pd.DataFrame(f["extrapolation"].get("held_out", []))
        if held.empty:
            held = pd.DataFrame(columns=["run_id", "N", "D", "acc", "task_loss"], dtype=float)
        fitted = data[~data["run"].isin(held["run_id"])]
        _step1(left, fitted, held, f["two_step"]["step1"])
        _step2(right, fitted, held, f["two_step"]["step2"], f["chance"])
        left.set_title(f"{task} — {left.get_title()}", fontsize=8)
    return _save(fig, path)


def plot_tasks(frame: pd.DataFrame, tasks_fits: dict, out_dir: Path) -> list[Path]:
    """Writes tasks_emergence.png, tasks_strategies.png and tasks_two_step.png into out_dir, each
    only when the data and fits support it; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report_rows(frame, tasks_fits["shots"], tasks_fits["strategy"])
    written = [_emergence(rows, tasks_fits, out_dir / "tasks_emergence.png"), _strategies(tasks_fits, out_dir / "tasks_strategies.png"),
               _two_step(rows, tasks_fits, out_dir / "tasks_two_step.png")]
    return [p for p in written if p is not None]
