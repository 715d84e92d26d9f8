"""Everything fitted for a sweep or a table, as one JSON-ready dict: L(N,D) with bootstrap
intervals, the compute-optimal frontier, Approaches 1 and 2, power laws, the extrapolation
check and predictions. `scalinglab fit` prints it, fit.json stores it, the figures read it."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from ..errors import FitError
from ..sweep.spec import FitSpec
from .approaches import fit_envelope, fit_isoflop, power_laws
from .hparams import tune, tuned_axes
from .laws import PARAMS, compute_optimal, fit_chinchilla
from .task_laws import task_report
from .uncertainty import attempt, bootstrap, extrapolation_check, held_out_rows, interval, predict, summarize

FRONTIER_POINTS = 30
FRONTIER_REACH = 100  # the frontier is drawn to 100x the largest budget in the data


def _frontier(law, boots, C_data: pd.Series) -> dict:
    C = np.geomspace(C_data.min(), C_data.max() * FRONTIER_REACH, FRONTIER_POINTS)
    N_opt, D_opt = compute_optimal(law, C)
    out = {"convention": "C = 6ND", "C": C.tolist(), "N_opt": N_opt.tolist(), "D_opt": D_opt.tolist()}
    if boots:
        samples = np.array([compute_optimal(m, C) for m in boots])  # (boots, 2, points)
        out["N_opt_ci"] = [interval(samples[:, 0, i]) for i in range(len(C))]
        out["D_opt_ci"] = [interval(samples[:, 1, i]) for i in range(len(C))]
    return out


def _extrapolation(runs: pd.DataFrame, fit: FitSpec) -> dict:
    held = extrapolation_check(runs, fit.holdout_fraction, fit.holdout_by, fit.huber_delta, fit.method)
    law = held.attrs["law"]
    # The interval of each prediction: the law refitted on resamples of the runs in the fit.
    boots = bootstrap(runs.drop(held.index), fit.bootstrap, fit.huber_delta, fit.method)
    if boots:
        held["L_pred_ci"] = [interval([m(n, d) for m in boots]) for n, d in zip(held["N"], held["D"])]
    return {
        "by": fit.holdout_by,
        "fraction": fit.holdout_fraction,
        "n_fit": held.attrs["n_fit"],
        "law": {k: getattr(law, k) for k in PARAMS},
        "held_out": held.to_dict(orient="records"),
        "mean_abs_rel_error": float(held["rel_error"].abs().mean()),
        "max_abs_rel_error": float(held["rel_error"].abs().max()),
    }


def analyze(runs: pd.DataFrame, evals: pd.DataFrame | None = None, fit: FitSpec = FitSpec(),
            predictions: list[dict] = (), tasks: pd.DataFrame | None = None, task_setting: tuple[int, str] = (0, "random")) -> dict:
    """runs: one row per run with N, D, C, L. evals (optional): one row per evaluation with
    run_id, N, C_seen, L, for Approach 1. predictions: dicts with C, or with N and D. tasks
    (optional): results.load(tasks=True), fitted at task_setting (shots, strategy), the runs the
    extrapolation check holds out held out of the task laws too. A sweep that tunes lr or batch
    size is fitted on its best run per (N, D), at the optimum its parabola finds."""
    out: dict = {"n_runs": len(runs)}
    if tuned_axes(runs):
        runs, out["hyperparameters"] = tune(runs, fit.bootstrap)
    try:
        law = fit_chinchilla(runs["N"], runs["D"], runs["L"], fit.huber_delta, fit.method)
    except FitError as e:
        out["skipped"] = str(e)
    else:
        boots = bootstrap(runs, fit.bootstrap, fit.huber_delta, fit.method)
        out.update(asdict(law))
        out["law"] = "L(N,D) = E + A/N^alpha + B/D^beta"
        out["method"] = fit.method
        out.update(summarize(law, boots))
        out["frontier"] = _frontier(law, boots, runs["C"])
        out["predictions"] = [predict(law, boots, **p) for p in predictions]
    out["power_laws"] = power_laws(runs)
    out["isoflop"] = attempt(fit_isoflop, runs)
    if evals is not None:
        out["envelope"] = attempt(fit_envelope, evals)
    out["extrapolation"] = attempt(_extrapolation, runs, fit)
    if tasks is not None:
        held = runs.loc[held_out_rows(runs, fit.holdout_fraction, fit.holdout_by).index, "run_id"]
        out["tasks"] = task_report(tasks, fit, set(held), *task_setting)
    return out
