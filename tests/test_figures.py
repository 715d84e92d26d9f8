"""The figures show what the fit found, read off the drawn artists: the points drawn are the runs,
the curves the fitted laws, the axes wide enough for every point and interval bar, the compute
axis named for the compute it shows."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.analyze import analyze
from scalinglab.analysis.laws import Fitted
from scalinglab.analysis.laws.chinchilla import CHINCHILLA, compute_optimal
from scalinglab.analysis.plot import extrapolation, figures
from scalinglab.analysis.select import FitInputs, fit_inputs
from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.store.layout import SweepDir
from scalinglab.sweep.spec import FitSpec

ROOT = Path(__file__).resolve().parents[1]
TRUTH = Fitted.of(CHINCHILLA, {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37})


def points(ax) -> set[tuple[float, float]]:
    return {(float(x), float(y)) for c in ax.collections for x, y in np.asarray(c.get_offsets())}


def inside(ax, x, y) -> bool:
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    return bool(np.all((x0 <= np.asarray(x)) & (np.asarray(x) <= x1) & (y0 <= np.asarray(y)) & (np.asarray(y) <= y1)))


@pytest.fixture(scope="module")
def isoflop_fit():
    rows, rng = [], np.random.default_rng(1)
    for C in np.geomspace(1e18, 1e21, 5):
        N_opt, _ = compute_optimal(TRUTH, C)
        for N in N_opt * np.geomspace(1 / 8, 8, 9):
            rows.append({"N": N, "D": C / (6 * N), "C": C, "L": TRUTH(N, C / (6 * N)) * np.exp(rng.normal(0, 0.003))})
    runs = pd.DataFrame(rows).assign(run_id=[str(i) for i in range(len(rows))])
    evals = pd.concat([runs.assign(tokens=runs["D"] * f, C_seen=runs["C"] * f, L=TRUTH(runs["N"], runs["D"] * f),
                                   step=i, flops_per_token=6 * runs["N"]) for i, f in enumerate((0.25, 0.5, 1.0))])
    return runs, evals, analyze(FitInputs(runs, evals), FitSpec(bootstrap=20))


def test_every_figure_of_a_fit_is_drawn_from_its_runs_and_laws(isoflop_fit):
    runs, evals, fit = isoflop_fit
    figs = figures(runs, fit, evals)
    assert set(figs) == {"loss_vs_N.png", "loss_vs_D.png", "loss_vs_C.png", "training_curves.png", "frontier.png",
                         "contours.png", "residuals.png", "isoflop.png", "extrapolation.png", "backtest.png"}
    ax = figs["loss_vs_N.png"].axes[0]
    assert points(ax) == {(n, l) for n, l in zip(runs["N"], runs["L"])}  # every run, nothing else
    assert inside(ax, runs["N"], runs["L"])
    law = fit.law.fitted()
    for line in ax.lines[:-1]:  # a line of L(N,D) per data size, then the power law
        D = runs["D"].unique()[[np.allclose(line.get_ydata(), law.at(line.get_xdata(), d)) for d in runs["D"].unique()]]
        assert len(D) == 1
    assert figs["loss_vs_C.png"].axes[0].get_xlabel() == "C (FLOPs the runs computed)"


def test_the_frontier_puts_approaches_1_and_2_at_the_laws_compute(isoflop_fit):
    runs, evals, fit = isoflop_fit
    left = figures(runs, fit, evals)["frontier.png"].axes[0]
    assert left.get_xlabel().startswith("C_6ND = 6ND")
    minima = {(6 * b.N_opt * b.D_opt, b.N_opt) for b in fit.isoflop.budgets}
    assert minima <= points(left)
    band = left.collections[0].get_paths()[0].vertices  # the bootstrap band spans the frontier's C_6ND
    assert band[:, 0].min() == pytest.approx(fit.frontier.C_6ND[0]) and band[:, 0].max() == pytest.approx(fit.frontier.C_6ND[-1])


def test_the_backtest_panel_draws_each_laws_error_at_each_origin(isoflop_fit):
    runs, evals, fit = isoflop_fit
    ax = figures(runs, fit, evals)["backtest.png"].axes[0]
    at = [o.at for o in fit.laws.origins]
    drawn = {line.get_label().split(",")[0]: line for line in ax.lines}
    for c in fit.laws.candidates:
        if c.errors:
            assert list(drawn[c.name].get_xdata()) == at and list(drawn[c.name].get_ydata()) == pytest.approx([100 * e for e in c.errors])
    assert max(drawn, key=lambda n: drawn[n].get_linewidth()) == fit.laws.chosen


def test_the_extrapolation_figure_holds_every_held_out_point_and_bar():
    """On the reference study, where the lowest held-out run's bar once fell below the axes."""
    sweep = SweepDir(ROOT / "results" / "cpu-study")
    fit = SweepFit.read(sweep.fit_json)
    fig = extrapolation(fit_inputs(sweep).runs, fit.extrapolation)
    left, right = fig.axes
    held = fit.extrapolation.held_out
    lo, hi = np.array([h.L_pred_ci for h in held]).T
    measured, predicted = [h.L for h in held], [h.L_pred for h in held]
    assert {(h.L, h.L_pred) for h in held} <= {tuple(p) for line in right.lines for p in line.get_xydata()}
    assert inside(right, measured, predicted) and inside(right, measured, lo) and inside(right, measured, hi)
    N = [h.N for h in held]
    assert inside(left, N, measured) and inside(left, N, lo) and inside(left, N, hi)
