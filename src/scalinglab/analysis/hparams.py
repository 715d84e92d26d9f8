"""Hyperparameter laws of a sweep that tries several learning rates (grid.lr) and batch sizes
(grid.batch_size) at each (N, D). No JAX.

- Per cell (N, D) and batch size: the loss against log lr is fitted with a parabola; the best lr is
  its vertex when the vertex lies inside the tried range (and the parabola opens upward), else the
  best run's lr (an optimum at the edge of the range is a bound, not an estimate). Then, per cell,
  the same across log batch size on each batch size's best loss. The cell's loss is the loss at that
  optimum: what the L(N,D) fit uses, one point per cell.
- Intervals: a parametric bootstrap. Every group's losses are redrawn as its fitted parabola plus
  Gaussian noise of the pooled residual scale (residuals of every parabola with more runs than
  coefficients: a fifth lr, or a second seed), and the optima found again, both steps in turn.
- lr*(C), B*(C) and lr*(N, D): power laws fitted in log space over the cells whose optimum is
  interior; intervals from the same draws with the cells resampled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FitError
from .laws.bootstrap import interval
from .laws.power import PowerLaw
from .laws.solve import fit
from .parts import LawFit, Skipped
from .sweepfit import Cell, Hyperparameters

HPARAMS = ("lr", "batch_size")
SAME_D = 1.05  # data sizes within 5% are one cell: batch sizes round D to whole steps differently


def tuned_axes(runs: pd.DataFrame) -> list[str]:
    """The hyperparameters that take more than one value within some (N, D) cell of a sweep's runs
    (a table without a sweep's columns, as `fit --csv` reads, has none)."""
    if runs.empty or not {*HPARAMS, "run_id"} <= set(runs):
        return []
    cells = runs.assign(cell_D=cell_D(runs["D"]))
    return [h for h in HPARAMS if cells.groupby(["N", "cell_D"])[h].nunique().max() > 1]


def cell_D(D: pd.Series) -> pd.Series:
    """Each D mapped to the smallest D of its cell (runs' D within SAME_D of the cell's first)."""
    first, start = {}, None
    for v in np.sort(D.unique()):
        start = v if start is None or v > SAME_D * start else start
        first[v] = start
    return D.map(first)


def _vertex(u: np.ndarray, Y: np.ndarray):
    """Optimum of each column of Y (n, B) over u (n,): (u*, L*, interior, the parabola of column 0
    or None). The parabola's vertex where it opens upward inside [min u, max u]; else the u with
    the lowest mean loss."""
    means = np.stack([Y[u == x].mean(0) for x in np.unique(u)])
    k = means.argmin(0)
    u_best, L_best = np.unique(u)[k], means[k, np.arange(Y.shape[1])]
    if len(np.unique(u)) < 3:
        return u_best, L_best, np.zeros(Y.shape[1], bool), None
    c2, c1, c0 = np.polyfit(u, Y, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -c1 / (2 * c2)
    interior = (c2 > 0) & (v >= u.min()) & (v <= u.max())
    parabola = (float(c2[0]), float(c1[0]), float(c0[0]))
    return np.where(interior, v, u_best), np.where(interior, c0 + c1 * v + c2 * v**2, L_best), interior, parabola


def _fitted(u: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, float, int]:
    """The parabola's values at u, its residual sum of squares and degrees of freedom (the observed
    losses themselves, with none, below 3 distinct u)."""
    if len(np.unique(u)) < 3:
        return L, 0.0, 0
    fit = np.polyval(np.polyfit(u, L, 2), u)
    return fit, float(((L - fit) ** 2).sum()), len(u) - 3


def _draws(groups: list[pd.DataFrame], n: int, seed: int) -> tuple[list[np.ndarray], float | None]:
    """Per group, its losses (n_runs, 1 + n): the observed ones, then n parametric redraws; and the
    pooled noise scale (None without residual degrees of freedom: no redraws)."""
    fits = [_fitted(np.log(g["lr"].to_numpy(float)), g["L"].to_numpy(float)) for g in groups]
    dof = sum(f[2] for f in fits)
    sigma = np.sqrt(sum(f[1] for f in fits) / dof) if dof else None
    rng = np.random.default_rng(seed)
    out = []
    for g, (values, _, _) in zip(groups, fits):
        redraw = values[:, None] + sigma * rng.standard_normal((len(g), n)) if sigma is not None and n else np.empty((len(g), 0))
        out.append(np.column_stack([g["L"].to_numpy(float), redraw]))
    return out, sigma


def _lr_optima(runs: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, float | None]:
    """One row per (cell, batch size) with its best run; lr* and L* per draw (rows, 1 + n), column
    0 from the observed losses."""
    keys = ["N", "cell_D", "batch_size"]
    groups = [g for _, g in runs.groupby(keys, sort=True)]
    draws, sigma = _draws(groups, n, seed)
    rows, lr_opt, L_opt = [], [], []
    for g, Y in zip(groups, draws):
        u, L, interior, parabola = _vertex(np.log(g["lr"].to_numpy(float)), Y)
        best = g.iloc[int(np.argmin(g["L"].to_numpy(float)))]
        rows.append({**best.to_dict(), "lr_interior": bool(interior[0]), "n_lr": g["lr"].nunique(), "lr_parabola": parabola})
        lr_opt.append(np.exp(u))
        L_opt.append(L)
    return pd.DataFrame(rows), np.array(lr_opt), np.array(L_opt), sigma


def _batch_optima(rows: pd.DataFrame, lr_opt: np.ndarray, L_opt: np.ndarray):
    """Per cell, the best batch size over each batch size's best loss (parabola in log B): one row
    per cell (its best group's), and lr*, B*, L* per draw."""
    out, lrs, Bs, Ls = [], [], [], []
    for _, g in rows.groupby(["N", "cell_D"], sort=True):
        i = g.index.to_numpy()
        u, L, interior, _ = _vertex(np.log(g["batch_size"].to_numpy(float)), L_opt[i])
        nearest = i[np.abs(np.log(g["batch_size"].to_numpy(float))[:, None] - u).argmin(0)]  # lr* of the nearest B
        out.append({**rows.loc[i[L_opt[i, 0].argmin()]].to_dict(), "batch_interior": bool(interior[0]), "n_batch": len(i)})
        lrs.append(lr_opt[nearest, np.arange(L_opt.shape[1])])
        Bs.append(np.exp(u))
        Ls.append(L)
    return pd.DataFrame(out), np.array(lrs), np.array(Bs), np.array(Ls)


def power_law(y: np.ndarray, X: dict[str, np.ndarray], target: str, seed: int = 0) -> LawFit:
    """log y = log a + sum_k b_k log x_k over the cells: y (cells, 1 + n) with the point estimate
    in column 0; intervals over the draws, each with the cells resampled."""
    law = PowerLaw(tuple(X), y=target)
    columns = tuple(X.values())
    if len(y) <= len(law.params):  # no residual left to tell a law from a line through the cells
        raise FitError(f"needs more cells with an interior optimum than {len(y)}, at distinct {', '.join(X)}")
    point = fit(law, columns, y[:, 0])
    rng = np.random.default_rng(seed)
    draws = []
    for b in range(1, y.shape[1]):
        pick = rng.integers(0, len(y), len(y))
        try:
            draws.append(fit(law, tuple(x[pick] for x in columns), y[pick, b]))
        except FitError:  # a resample of too few distinct cells
            continue
    return LawFit.of(point, draws)


def tune(runs: pd.DataFrame, n: int = 0, seed: int = 0) -> tuple[pd.DataFrame, Hyperparameters]:
    """The sweep reduced to one row per (N, D) cell, its best run's, with L the loss at the fitted
    optimum; and what was found: per cell lr* (and B*) with intervals from n draws, and the
    power laws lr*(C), lr*(N, D), B*(C) (C: the FLOPs the cells' runs computed)."""
    axes = tuned_axes(runs)
    runs = runs.assign(cell_D=cell_D(runs["D"])).reset_index(drop=True)
    rows, lr_opt, L_opt, sigma = _lr_optima(runs, n, seed)
    cells, B_opt = rows, None
    if "batch_size" in axes:
        cells, lr_opt, B_opt, L_opt = _batch_optima(rows, lr_opt, L_opt)
    cells = cells.drop(columns="cell_D").assign(L=L_opt[:, 0], lr_opt=lr_opt[:, 0], L_ci=_cis(L_opt), lr_ci=_cis(lr_opt))
    laws: dict[str, LawFit | Skipped] = {}
    if "lr" in axes:
        inner = cells["lr_interior"].to_numpy()
        laws["lr_C"] = _law(lr_opt[inner], {"C": cells["C"].to_numpy(float)[inner]}, "lr*", seed)
        laws["lr_ND"] = _law(lr_opt[inner], {k: cells[k].to_numpy(float)[inner] for k in ("N", "D")}, "lr*", seed)
    if B_opt is not None:
        cells = cells.assign(batch_opt=B_opt[:, 0], batch_ci=_cis(B_opt))
        inner = cells["batch_interior"].to_numpy()
        laws["batch_C"] = _law(B_opt[inner], {"C": cells["C"].to_numpy(float)[inner]}, "B*", seed)
    fields = set(Cell.model_fields)
    found = Hyperparameters(
        axes=axes,
        noise=None if sigma is None else float(sigma),
        n_bootstrap=lr_opt.shape[1] - 1,
        laws=laws,
        cells=[Cell(**{k: v for k, v in r.items() if k in fields}) for r in cells.to_dict("records")],
    )
    return cells, found


def _cis(draws: np.ndarray) -> list:
    """Each row's interval over its draws (columns 1:), or None without draws."""
    return [interval(d[1:]) if draws.shape[1] > 1 else None for d in draws]


def _law(y: np.ndarray, X: dict[str, np.ndarray], target: str, seed: int) -> LawFit | Skipped:
    try:
        return power_law(y, X, target, seed)
    except FitError as e:
        return Skipped(skipped=str(e))


def predicted(found: Hyperparameters, N: float, D: float, C: float) -> dict[str, float]:
    """The tuned hyperparameters for a new run at (N, D) that computes C FLOPs: lr from lr*(N, D)
    (else lr*(C)) and the batch size from B*(C), where fitted, else the value of the cell nearest
    in C."""
    nearest = min(found.cells, key=lambda c: abs(np.log(c.C / C)))
    at = {"N": N, "D": D, "C": C}
    out: dict[str, float] = {}
    if "lr" in found.axes:
        law = next((found.laws[k] for k in ("lr_ND", "lr_C") if isinstance(found.laws[k], LawFit)), None)
        out["lr"] = float(f"{_at(law, at):.3g}") if isinstance(law, LawFit) else nearest.lr_opt
    if "batch_size" in found.axes:
        law = found.laws["batch_C"]
        out["batch_size"] = max(1, round(_at(law, at))) if isinstance(law, LawFit) else int(nearest.batch_opt or nearest.batch_size)
    return out


def _at(law: LawFit, at: dict[str, float]) -> float:
    fitted = law.fitted()
    return float(fitted(*(at[x] for x in fitted.law.inputs)))
