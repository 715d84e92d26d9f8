"""The figures of a fit, built from the runs and the SweepFit alone: loss vs N, D and C, training
curves, IsoFLOP parabolas, the compute-optimal frontier with its bootstrap band, L(N,D) contours,
residuals and the extrapolation check. `figures` builds them (tests read what they draw),
`plot_all` writes them. x axes say which compute they show: C, the FLOPs the runs computed, or
C_6ND = 6ND, the law's. No JAX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .analyze import fitted_runs
from .choose import predict_runs
from .figstyle import Figure, bars, finish, law_title, plt, save, span
from .hparam_plots import lr_figure
from .laws import Fitted
from .lawtable import LawChoice
from .parts import Skipped
from .sweepfit import Extrapolation, Frontier, IsoFLOP, MainLaw, PowerLawFit, SweepFit

C_LABEL = "C (FLOPs the runs computed)"


def _power_law(laws: list[PowerLawFit], x: str) -> PowerLawFit | None:
    """The power law along x, with E where it was fitted, else without."""
    along = [p for p in laws if p.fitted().law.inputs == (x,)]
    return next((p for p in along if "E" in p.params), next(iter(along), None))


def loss_vs(df: pd.DataFrame, law: Fitted | None, laws: list[PowerLawFit], x: str, by: str) -> Figure:
    """Loss against x, one colour per value of `by`, with the L(N,D) curve for each."""
    groups = sorted(df[by].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(groups)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for value, color in zip(groups, colors):
        rows = df[df[by] == value].sort_values(x)
        ax.scatter(rows[x], rows["L"], color=color, label=f"{by} = {value:.3g}", zorder=3)
        if law is not None:
            xs = span(df[x])
            ax.plot(xs, law.at(xs, value) if x == "N" else law.at(value, xs), color=color, lw=1.2)
    pl = _power_law(laws, x)
    if pl is not None:
        xs = span(df[x])
        ax.plot(xs, pl.fitted()(xs), "k--", lw=1, label=f"{pl.form}, b = {pl.params['b']:.3f} ({pl.at})")
    finish(ax, x, f"loss vs {x}\n{law_title(law)}")
    return fig


def loss_vs_C(df: pd.DataFrame, law: Fitted | None, laws: list[PowerLawFit]) -> Figure:
    sizes = sorted(df["N"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for N, color in zip(sizes, colors):
        rows = df[df["N"] == N]
        ax.scatter(rows["C"], rows["L"], color=color, label=f"N = {N:.3g}", zorder=3)
        if law is not None:
            flops_per_token = float((rows["C"] / rows["D"]).iloc[0])
            Ds = span(df["D"])
            ax.plot(Ds * flops_per_token, law.at(N, Ds), color=color, lw=1.2)
    pl = _power_law(laws, "C")
    if pl is not None:
        Cs = span(df["C"])
        ax.plot(Cs, pl.fitted()(Cs), "k--", lw=1, label=f"frontier: {pl.form}, b = {pl.params['b']:.3f}")
    finish(ax, C_LABEL, f"loss vs compute\n{law_title(law)}")
    return fig


def curves(evals: pd.DataFrame) -> Figure:
    """Validation loss during training against FLOPs spent, one line per run, coloured by N."""
    sizes = sorted(evals["N"].unique())
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for (_, N), rows in evals.groupby(["run_id", "N"]):
        rows = rows.sort_values("step")
        ax.plot(rows["C_seen"], rows["L"], color=colors[N], lw=1, alpha=0.8)
    for N in sizes:
        ax.plot([], [], color=colors[N], label=f"N = {N:.3g}")
    finish(ax, "C so far (FLOPs computed)", "validation loss during training")
    return fig


def isoflop(iso: IsoFLOP) -> Figure:
    """Approach 2: loss against N within each compute budget, its parabola and minimum."""
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(iso.budgets)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for b, color in zip(iso.budgets, colors):
        ax.scatter(b.N, b.L, color=color, s=18, zorder=3)
        lN = np.linspace(np.log(min(b.N)), np.log(max(b.N)), 50)
        ax.plot(np.exp(lN), np.polyval(b.parabola, lN), color=color, lw=1.2, label=f"C = {b.C:.2g}")
        ax.plot(b.N_opt, b.L_min, "k*", ms=9, zorder=4)
    ax.plot([], [], "k*", label="minimum: N_opt")
    finish(ax, "N (non-embedding parameters)", f"IsoFLOP curves (Approach 2): N_opt ~ C^{iso.N_opt.params['b']:.3f}")
    return fig


def frontier(fit: SweepFit) -> Figure:
    """N_opt(C_6ND) and D_opt(C_6ND) from L(N,D), with bootstrap bands; Approaches 1 and 2 at the
    C_6ND = 6 N D of the runs they pick."""
    fr, law = fit.frontier, fit.law
    assert isinstance(fr, Frontier) and isinstance(law, MainLaw)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, exponent in ((axes[0], "N_opt", fr.a), (axes[1], "D_opt", fr.b)):
        ax.plot(fr.C_6ND, getattr(fr, key), "C0", lw=1.5, label=f"L(N,D) fit: {key} ~ C_6ND^{exponent.value:.3f}")
        band = getattr(fr, f"{key}_ci")
        if band is not None:
            band = np.array(band)
            ax.fill_between(fr.C_6ND, band[:, 0], band[:, 1], color="C0", alpha=0.2, label=f"{law.level:.0%} bootstrap band")
        if isinstance(fit.isoflop, IsoFLOP):
            ax.scatter(
                [6 * b.N_opt * b.D_opt for b in fit.isoflop.budgets],
                [getattr(b, key) for b in fit.isoflop.budgets],
                color="C3",
                zorder=3,
                label="IsoFLOP minima (Approach 2)",
            )
        env = fit.envelope
        if key == "N_opt" and env is not None and not isinstance(env, Skipped):
            ax.scatter(
                6 * np.array(env.N_opt) * np.array(env.D),
                env.N_opt,
                color="C2",
                s=10,
                zorder=3,
                label="training-curve envelope (Approach 1)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("C_6ND = 6ND (the law's compute)")
        ax.set_ylabel(key)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("compute-optimal allocation", fontsize=10)
    return fig


def contours(df: pd.DataFrame, law: Fitted, fit: SweepFit) -> Figure:
    """Iso-loss contours of L(N,D) over the (N, D) plane, the runs, and the compute-optimal line."""
    N = np.geomspace(df["N"].min() / 3, df["N"].max() * 10, 120)
    D = np.geomspace(df["D"].min() / 3, df["D"].max() * 10, 120)
    NN, DD = np.meshgrid(N, D)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    cs = ax.contour(NN, DD, law.at(NN, DD), levels=12, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, fontsize=6, fmt="%.3g")
    sc = ax.scatter(df["N"], df["D"], c=df["L"], cmap="viridis", edgecolors="k", zorder=3)
    fig.colorbar(sc, ax=ax, label="L (runs)")
    if isinstance(fit.frontier, Frontier):
        ax.plot(fit.frontier.N_opt, fit.frontier.D_opt, "r--", lw=1, label="compute-optimal (C_6ND = 6ND)")
        ax.legend(fontsize=7)
    ax.set_xlim(N[0], N[-1])
    ax.set_ylim(D[0], D[-1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("D")
    ax.set_title(f"contours of the law of the loss\n{law_title(law)}", fontsize=9)
    return fig


def residuals(df: pd.DataFrame, law: Fitted) -> Figure:
    rel = predict_runs(law, df) / df["L"] - 1
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sc = ax.scatter(df["C"], 100 * rel, c=np.log10(df["N"]), cmap="viridis")
    fig.colorbar(sc, ax=ax, label="log10 N")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(C_LABEL)
    ax.set_ylabel("L(N,D) fit / L - 1  (%)")
    ax.set_title(f"residuals of the L(N,D) fit (RMS {100 * np.sqrt(np.mean(rel**2)):.2f}%)", fontsize=9)
    ax.grid(True, alpha=0.3)
    return fig


def _predicted_vs_measured(ax, fit_rows: pd.DataFrame, law: Fitted, held: pd.DataFrame, ext: Extrapolation, yerr) -> None:
    """Predicted against measured, on axes wide enough for every point and every bar."""
    ax.scatter(fit_rows["L"], predict_runs(law, fit_rows), color="C0", s=14, label=f"runs in the fit ({len(fit_rows)})")
    label = f"held out: the largest by {ext.by} ({len(held)})"
    if yerr is not None:
        ax.errorbar(held["L"], held["L_pred"], yerr=yerr, fmt="o", color="C3", ms=5, capsize=3, label=label + ", 95% intervals")
    else:
        ax.scatter(held["L"], held["L_pred"], color="C3", s=28, label=label)
    drawn = np.concatenate(
        [
            fit_rows["L"],
            predict_runs(law, fit_rows),
            held["L"],
            held["L_pred"],
            *([held["L_pred"] - yerr[0], held["L_pred"] + yerr[1]] if yerr is not None else []),
        ]
    )
    pad = 0.03 * np.ptp(drawn)
    lims = [drawn.min() - pad, drawn.max() + pad]
    if ext.runner_up is not None:
        second = ext.runner_up.fitted()
        ax.scatter(held["L"], predict_runs(second, held), marker="^", facecolors="none", edgecolors="C1", s=40,
                   label=f"held out: the runner-up, {ext.runner_up.law['law']}")  # fmt: skip
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel("L measured")
    ax.set_ylabel("L predicted")
    ax.set_title(f"extrapolation check: held-out |error| mean {ext.mean_abs_rel_error:.2%}, max {ext.max_abs_rel_error:.2%}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def extrapolation(df: pd.DataFrame, ext: Extrapolation) -> Figure:
    """Fit on the smaller runs, predict the held-out larger ones. Left: that law's curves, one
    per data size (or model size), carried out to the held-out runs (hollow, with the bootstrap
    interval of each prediction). Right: predicted against measured."""
    law = ext.law.fitted()
    held = pd.DataFrame([h.model_dump() for h in ext.held_out])
    fit_rows = df[~df.set_index(["N", "D"]).index.isin(held.set_index(["N", "D"]).index)]
    yerr = bars(held["L_pred"], held["L_pred_ci"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    x, by = ("D", "N") if ext.by == "D" else ("N", "D")
    groups = sorted(df[by].unique())
    colors = dict(zip(groups, plt.cm.viridis(np.linspace(0, 0.9, len(groups)))))
    xs = span(df[x], pad=1.2)
    for value in groups:
        rows, out = fit_rows[fit_rows[by] == value], held[held[by] == value]
        left.scatter(rows[x], rows["L"], color=colors[value], zorder=3, label=f"{by} = {value:.3g}")
        left.scatter(out[x], out["L"], facecolors="none", edgecolors=colors[value], s=90, lw=1.5, zorder=4)
        left.plot(xs, law.at(xs, value) if x == "N" else law.at(value, xs), color=colors[value], lw=1.2)
    left.scatter([], [], facecolors="none", edgecolors="k", s=90, lw=1.5, label="held out: measured")
    if yerr is not None:
        left.errorbar(
            held[x],
            held["L_pred"],
            yerr=yerr,
            fmt="_",
            color="k",
            ms=12,
            capsize=3,
            lw=1,
            zorder=5,
            label="held out: predicted, 95% interval",
        )
    finish(
        left, x, f"{ext.law.law['law']}, chosen and fitted on {ext.n_fit} runs, carried out to the largest by {ext.by}\n{law_title(law)}"
    )
    _predicted_vs_measured(right, fit_rows, law, held, ext, yerr)
    return fig


def backtest(choice: LawChoice) -> Figure:
    """Each candidate law's out-of-sample error at each rolling origin (fit on the runs up to it,
    predict the rest); the chosen law drawn bold."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    at = [o.at for o in choice.origins]
    for i, c in enumerate(choice.candidates):
        if isinstance(c.fit, Skipped):
            continue
        points = [(a, 100 * e) for a, e in zip(at, c.errors) if e is not None]
        mean = "" if c.score is None else f", mean {c.score:.2%}"
        bold = c.name == choice.chosen
        ax.plot(*zip(*points), "o-", color=f"C{i}", lw=2.5 if bold else 1, label=f"{c.name}{mean}" + (" (chosen)" if bold else ""))
    ax.set_xscale("log")
    ax.set_xlabel(f"origin: fitted on the runs with {choice.by} up to here")
    ax.set_ylabel("mean |relative error| of the runs beyond (%)")
    ax.set_title("backtest of the laws of the loss (rolling origin)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def figures(runs: pd.DataFrame, fit: SweepFit, evals: pd.DataFrame | None = None) -> dict[str, Figure]:
    """Every figure the data and fit support, by file name."""
    out = {}
    if fit.hyperparameters is not None:  # every other figure shows the best run of each (N, D)
        out["loss_vs_lr.png"] = lr_figure(runs, fit.hyperparameters)
        runs = fitted_runs(runs, fit)
    law = fit.law.fitted() if isinstance(fit.law, MainLaw) else None
    out["loss_vs_N.png"] = loss_vs(runs, law, fit.power_laws, "N", "D")
    out["loss_vs_D.png"] = loss_vs(runs, law, fit.power_laws, "D", "N")
    out["loss_vs_C.png"] = loss_vs_C(runs, law, fit.power_laws)
    if evals is not None and len(evals):
        out["training_curves.png"] = curves(evals)
    if law is not None:
        out.update({"contours.png": contours(runs, law, fit), "residuals.png": residuals(runs, law)})
    if isinstance(fit.frontier, Frontier):
        out["frontier.png"] = frontier(fit)
    if isinstance(fit.isoflop, IsoFLOP):
        out["isoflop.png"] = isoflop(fit.isoflop)
    if isinstance(fit.extrapolation, Extrapolation):
        out["extrapolation.png"] = extrapolation(runs, fit.extrapolation)
    if fit.laws is not None and any(e is not None for c in fit.laws.candidates for e in c.errors):
        out["backtest.png"] = backtest(fit.laws)
    return out


def plot_all(runs: pd.DataFrame, fit: SweepFit, out_dir: Path, evals: pd.DataFrame | None = None) -> list[Path]:
    """Writes every figure the data and fit support into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save(fig, out_dir / name) for name, fig in figures(runs, fit, evals).items()]
