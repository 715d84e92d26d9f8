"""Figures from a results DataFrame and the fits (analysis.analyze's dict): loss vs N, D and C,
training curves, IsoFLOP parabolas, the compute-optimal frontier with its bootstrap band, L(N,D)
contours, residuals and the extrapolation check. No JAX."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .hparams import tune  # noqa: E402
from .laws import Chinchilla, PowerLaw  # noqa: E402

def _chinchilla(fits: dict) -> Chinchilla | None:
    return Chinchilla(**{f.name: fits[f.name] for f in fields(Chinchilla)}) if "alpha" in fits else None


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


def _isoflop(iso: dict, path: Path) -> Path:
    """Approach 2: loss against N within each compute budget, its parabola and minimum."""
    budgets = iso["budgets"]
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(budgets)))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for b, color in zip(budgets, colors):
        ax.scatter(b["N"], b["L"], color=color, s=18, zorder=3)
        lN = np.linspace(np.log(min(b["N"])), np.log(max(b["N"])), 50)
        ax.plot(np.exp(lN), np.polyval(b["parabola"], lN), color=color, lw=1.2, label=f"C = {b['C']:.2g}")
        ax.plot(b["N_opt"], b["L_min"], "k*", ms=9, zorder=4)
    ax.plot([], [], "k*", label="minimum: N_opt")
    _finish(ax, "N (non-embedding parameters)", f"IsoFLOP curves (Approach 2): N_opt ~ C^{iso['N_opt']['a']:.3f}")
    return _save(fig, path)


def _frontier(fits: dict, path: Path) -> Path:
    """N_opt(C) and D_opt(C) from L(N,D), with bootstrap bands and any Approach 1/2 estimates."""
    fr = fits["frontier"]
    C = np.array(fr["C"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, exp in ((axes[0], "N_opt", "a"), (axes[1], "D_opt", "b")):
        ax.plot(C, fr[key], "C0", lw=1.5, label=f"L(N,D) fit: {key} ~ C^{fits[exp]:.3f}")
        if f"{key}_ci" in fr:
            band = np.array(fr[f"{key}_ci"])
            ax.fill_between(C, band[:, 0], band[:, 1], color="C0", alpha=0.2, label=f"{fits['level']:.0%} bootstrap band")
        iso = fits.get("isoflop", {})
        if "budgets" in iso:
            ax.scatter([b["C"] for b in iso["budgets"]], [b[key] for b in iso["budgets"]], color="C3", zorder=3, label="IsoFLOP minima (Approach 2, runs' own C)")
        env = fits.get("envelope", {})
        if key == "N_opt" and "N_opt" in env:
            ax.scatter(env["C"], env["N_opt"], color="C2", s=10, zorder=3, label="training-curve envelope (Approach 1, runs' own C)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"C (training FLOPs, {fr['convention']})")
        ax.set_ylabel(key)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("compute-optimal allocation", fontsize=10)
    return _save(fig, path)


def _contours(df: pd.DataFrame, fits: dict, path: Path) -> Path:
    """Iso-loss contours of L(N,D) over the (N, D) plane, the runs, and the C = 6ND frontier."""
    law = _chinchilla(fits)
    N = np.geomspace(df["N"].min() / 3, df["N"].max() * 10, 120)
    D = np.geomspace(df["D"].min() / 3, df["D"].max() * 10, 120)
    NN, DD = np.meshgrid(N, D)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    cs = ax.contour(NN, DD, law(NN, DD), levels=12, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, fontsize=6, fmt="%.3g")
    sc = ax.scatter(df["N"], df["D"], c=df["L"], cmap="viridis", edgecolors="k", zorder=3)
    fig.colorbar(sc, ax=ax, label="L (runs)")
    fr = fits["frontier"]
    ax.plot(fr["N_opt"], fr["D_opt"], "r--", lw=1, label="compute-optimal (C = 6ND)")
    ax.set_xlim(N[0], N[-1])
    ax.set_ylim(D[0], D[-1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("D")
    ax.set_title(f"L(N,D) contours\n{_law_title(law)}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _residuals(df: pd.DataFrame, fits: dict, path: Path) -> Path:
    law = _chinchilla(fits)
    rel = law(df["N"], df["D"]) / df["L"] - 1
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sc = ax.scatter(df["C"], 100 * rel, c=np.log10(df["N"]), cmap="viridis")
    fig.colorbar(sc, ax=ax, label="log10 N")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("C (training FLOPs)")
    ax.set_ylabel("L(N,D) fit / L - 1  (%)")
    ax.set_title(f"residuals of the L(N,D) fit (RMS {100 * np.sqrt(np.mean(rel ** 2)):.2f}%)", fontsize=9)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _extrapolation(df: pd.DataFrame, ext: dict, path: Path) -> Path:
    """Fit on the smaller runs, predict the held-out larger ones. Left: that law's curves, one
    per data size (or model size), carried out to the held-out runs (hollow, with the bootstrap
    interval of each prediction). Right: predicted against measured."""
    law = Chinchilla(**ext["law"], objective=float("nan"), n_points=ext["n_fit"])
    held = pd.DataFrame(ext["held_out"])
    fit_rows = df[~df.set_index(["N", "D"]).index.isin(held.set_index(["N", "D"]).index)]
    yerr = None
    if "L_pred_ci" in held:
        ci = np.array(held["L_pred_ci"].tolist())
        # The point prediction is the fit to the runs themselves, not the resamples' median: it
        # may lie outside their interval, and matplotlib takes no negative bar lengths.
        yerr = np.clip([held["L_pred"] - ci[:, 0], ci[:, 1] - held["L_pred"]], 0, None)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.8))

    x, by = ("D", "N") if ext["by"] == "D" else ("N", "D")
    groups = sorted(df[by].unique())
    colors = dict(zip(groups, plt.cm.viridis(np.linspace(0, 0.9, len(groups)))))
    xs = _span(df[x], pad=1.2)
    for value in groups:
        rows, out = fit_rows[fit_rows[by] == value], held[held[by] == value]
        left.scatter(rows[x], rows["L"], color=colors[value], zorder=3, label=f"{by} = {value:.3g}")
        left.scatter(out[x], out["L"], facecolors="none", edgecolors=colors[value], s=90, lw=1.5, zorder=4)
        left.plot(xs, law(xs, value) if x == "N" else law(value, xs), color=colors[value], lw=1.2)
    left.scatter([], [], facecolors="none", edgecolors="k", s=90, lw=1.5, label="held out: measured")
    if yerr is not None:
        left.errorbar(held[x], held["L_pred"], yerr=yerr, fmt="_", color="k", ms=12, capsize=3, lw=1, zorder=5,
                      label="held out: predicted, 95% interval")
    _finish(left, x, f"fitted on {ext['n_fit']} runs, carried out to the held-out largest by {ext['by']}\n{_law_title(law)}")

    right.scatter(fit_rows["L"], law(fit_rows["N"], fit_rows["D"]), color="C0", s=14, label=f"runs in the fit ({len(fit_rows)})")
    label = f"held out: the largest by {ext['by']} ({len(held)})"
    if yerr is not None:
        right.errorbar(held["L"], held["L_pred"], yerr=yerr, fmt="o", color="C3", ms=5, capsize=3, label=label + ", 95% intervals")
    else:
        right.scatter(held["L"], held["L_pred"], color="C3", s=28, label=label)
    lims = [min(df["L"].min(), held["L_pred"].min()) * 0.98, max(df["L"].max(), held["L_pred"].max()) * 1.02]
    right.plot(lims, lims, "k-", lw=0.8)
    right.set_xlim(lims)
    right.set_ylim(lims)
    right.set_xlabel("L measured")
    right.set_ylabel("L predicted")
    right.set_title(f"extrapolation check: held-out |error| mean {ext['mean_abs_rel_error']:.2%}, "
                    f"max {ext['max_abs_rel_error']:.2%}", fontsize=9)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
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
    """Writes every figure the data and fits support into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if "hyperparameters" in fits:  # every other figure shows the best run of each (N, D)
        from .hparam_plots import plot_lr  # noqa: PLC0415  (it imports this module)

        paths.append(plot_lr(runs, fits["hyperparameters"], out_dir / "loss_vs_lr.png"))
        runs = tune(runs)[0]
    paths += [
        _loss_vs(runs, fits, "N", "D", out_dir / "loss_vs_N.png"),
        _loss_vs(runs, fits, "D", "N", out_dir / "loss_vs_D.png"),
        _loss_vs_C(runs, fits, out_dir / "loss_vs_C.png"),
    ]
    if evals is not None and len(evals):
        paths.append(_curves(evals, out_dir / "training_curves.png"))
    if "alpha" in fits:
        paths += [_frontier(fits, out_dir / "frontier.png"), _contours(runs, fits, out_dir / "contours.png"),
                  _residuals(runs, fits, out_dir / "residuals.png")]
    if "budgets" in fits.get("isoflop", {}):
        paths.append(_isoflop(fits["isoflop"], out_dir / "isoflop.png"))
    if "held_out" in fits.get("extrapolation", {}):
        paths.append(_extrapolation(runs, fits["extrapolation"], out_dir / "extrapolation.png"))
    return paths
