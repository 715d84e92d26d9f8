"""Hyperparameter laws on synthetic sweeps with known optima: the best lr per (N, D) from a parabola
in log lr, the best batch size likewise, the power laws lr*(N, D), lr*(C), B*(C) with intervals,
and the L(N,D) fit on each cell's optimum."""

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.analyze import analyze
from scalinglab.analysis.hparam_plots import lr_figure
from scalinglab.analysis.hparams import predicted, tune, tuned_axes
from scalinglab.analysis.laws import Fitted
from scalinglab.analysis.laws.chinchilla import CHINCHILLA
from scalinglab.analysis.parts import LawFit, Skipped
from scalinglab.analysis.select import FitInputs
from scalinglab.analysis.sweepfit import Hyperparameters
from scalinglab.sweep.spec import FitSpec

TRUTH = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}
LAW = Fitted.of(CHINCHILLA, TRUTH)


def lr_true(N, D):
    return 30 * N**-0.3 * D**-0.1


def batch_true(C):
    return 0.05 * C**0.25


def sweep(noise=0.0, seeds=(0,), lr_span=range(-3, 4), batches=range(-2, 3), seed=0):
    """Runs of a 4 x 3 (N, D) grid at lrs 2^k x lr* and batch sizes 2^j x B*: L is the law at the
    optimum plus a parabola in log lr and in log B, times (1 + noise * a normal draw)."""
    rng, rows = np.random.default_rng(seed), []
    for N in (1e6, 3e6, 1e7, 3e7):
        for D in (2e8, 1e9, 5e9):
            C = 6 * N * D
            for lr in lr_true(N, D) * 2.0 ** np.array(lr_span):
                for B in batch_true(C) * 2.0 ** np.array(batches):
                    for s in seeds:
                        L = LAW(N, D) + 0.02 * np.log(lr / lr_true(N, D)) ** 2 + 0.01 * np.log(B / batch_true(C)) ** 2
                        # D as planned: whole steps of each batch size round it a little differently
                        rows.append({"N": N, "D": D * (1 + 1e-3 * np.log(B)), "C": C, "lr": lr, "batch_size": B, "seed": s,
                                     "L": L * (1 + noise * rng.standard_normal()), "run_id": f"r{len(rows)}"})
    return pd.DataFrame(rows)


def test_noise_free_optima_and_laws_are_recovered_exactly():
    runs = sweep()
    assert tuned_axes(runs) == ["lr", "batch_size"]
    assert tuned_axes(runs.drop(columns="batch_size")) == []  # a plain table (fit --csv): fitted as it is
    cells, summary = tune(runs, n=20)
    assert len(cells) == 12 and cells["lr_interior"].all()
    np.testing.assert_allclose(cells["lr_opt"], lr_true(cells["N"], cells["D"].round(-8)), rtol=1e-6)
    np.testing.assert_allclose(cells["batch_opt"], batch_true(cells["C"]), rtol=1e-6)
    np.testing.assert_allclose(cells["L"], LAW(cells["N"], cells["D"].round(-8)), rtol=1e-9)
    nd, bc = summary.laws["lr_ND"], summary.laws["batch_C"]
    assert isinstance(nd, LawFit) and isinstance(bc, LawFit)
    assert (nd.params["b_N"], nd.params["b_D"]) == pytest.approx((-0.3, -0.1), abs=1e-4) and nd.params["a"] == pytest.approx(30, rel=1e-3)
    assert bc.params["b"] == pytest.approx(0.25, abs=1e-6) and bc.params["a"] == pytest.approx(0.05, rel=1e-5)
    assert Hyperparameters.model_validate_json(summary.model_dump_json()) == summary  # fit.json stores it whole
    # What suggest gives a new run beyond the grid: the laws' optimum there (its C: here 6ND).
    new = predicted(summary, 1e8, 2e10, 6 * 1e8 * 2e10)
    assert new["lr"] == pytest.approx(lr_true(1e8, 2e10), rel=0.01)
    assert new["batch_size"] == pytest.approx(batch_true(6 * 1e8 * 2e10), rel=0.01)


def test_noisy_sweep_intervals_cover_the_true_exponents_and_noise():
    cells, summary = tune(sweep(noise=0.003, seeds=(0, 1)), n=200)
    assert summary.noise == pytest.approx(0.003 * 12, rel=0.5)  # 0.3% of losses near 12 nats
    nd = summary.laws["lr_ND"]
    for k, true in (("b_N", -0.3), ("b_D", -0.1)):
        lo, hi = nd.ci[k]
        assert lo < true < hi and hi - lo < 0.5
    lo, hi = summary.laws["batch_C"].ci["b"]
    assert lo < 0.25 < hi
    inside = [c.lr_ci[0] <= lr_true(c.N, round(c.D, -8)) <= c.lr_ci[1] for c in summary.cells]
    assert np.mean(inside) >= 0.75  # 95% intervals: most of the 12 cover the truth


def test_an_optimum_beyond_the_tried_lrs_is_the_best_run_and_left_out_of_the_laws():
    runs = sweep(lr_span=range(-6, 0), batches=[0])  # every lr tried is below lr*
    cells, summary = tune(runs)
    assert not cells["lr_interior"].any()
    np.testing.assert_allclose(cells["lr_opt"], lr_true(cells["N"], cells["D"].round(-8)) / 2)
    assert isinstance(summary.laws["lr_C"], Skipped)


def test_fit_uses_each_cells_optimum_and_draws_it_against_lr():
    runs = sweep(batches=[0])
    fits = analyze(FitInputs(runs), FitSpec(bootstrap=20, holdout_fraction=0.25, holdout_by="N"))
    assert fits.n_runs == len(runs) and len(fits.hyperparameters.cells) == 12
    for k, v in TRUTH.items():  # the law behind the optima, not one blurred by bad lrs
        assert fits.law.params[k] == pytest.approx(v, rel=1e-2)
    assert fits.extrapolation.max_abs_rel_error < 1e-4
    fig = lr_figure(runs, fits.hyperparameters)
    *panels, lr_vs_C = fig.axes
    cells = fits.hyperparameters.cells
    # The last panel: each cell's lr* at its C; the others: each cell's optimum as a star, at the
    # parabola's vertex the fit found (not refitted here), over the lrs the runs tried.
    drawn = np.array(sorted(map(tuple, lr_vs_C.collections[0].get_offsets().data)))
    np.testing.assert_allclose(drawn, sorted((c.C, c.lr_opt) for c in cells))
    stars = [(line.get_xdata()[0], line.get_ydata()[0]) for ax in panels for line in ax.lines if line.get_marker() == "*"]
    np.testing.assert_allclose(sorted(stars), sorted((c.lr_opt, c.L) for c in cells))  # 3 data sizes: every cell drawn
    curves = [line for ax in panels for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) > 1]
    assert len(curves) == len(cells)  # a parabola per cell, each over the lrs its runs tried
    for line in curves:
        assert line.get_ydata().min() >= min(c.L for c in cells) - 1e-9
