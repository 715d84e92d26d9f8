"""analyze: everything fitted for a sweep or a table, as one SweepFit: L(N,D) with bootstrap
intervals, the compute-optimal frontier, Approaches 1 and 2, power laws, the extrapolation check,
predictions, hyperparameter optima and task laws. `scalinglab fit` prints it, fit.json stores it,
the figures, the report page and `suggest` read it. No JAX."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..sweep.spec import FitSpec
from ..sweep.types import CurvePoints
from .approaches import fit_envelope, fit_isoflop, power_laws
from .choose import Chosen, choose
from .curvepoints import CurveSource, choose_with_points
from .hparams import tune, tuned_axes
from .parts import Skipped
from .select import FitInputs
from .sweepfit import CurvePointsFit, Hyperparameters, SweepFit
from .task_report import task_report
from .uncertainty import At, attempt, extrapolation, frontier, held_out_rows, main_law, predict


@dataclass(frozen=True)
class Core:
    """What every use of a sweep's law starts from: the runs it is fitted on (in a sweep that tunes
    lr or batch size, each (N, D) cell's optimum), what tuning found, and the law of the loss
    fit.law chose (or why none fitted)."""

    runs: pd.DataFrame
    hyperparameters: Hyperparameters | None
    chosen: Chosen | Skipped
    curve_points: CurvePointsFit | Skipped | None = None
    """What fit.curve_points did (None: off)."""


def core(runs: pd.DataFrame, spec: FitSpec, allocating: bool = False, curves: CurveSource | None = None) -> Core:
    """allocating: the law must be one of N and D (suggest plans an allocation); curves: what
    curve-law points are made from, where fit.curve_points is on or auto."""
    hyper = None
    tuned = bool(tuned_axes(runs))
    if tuned:
        runs, hyper = tune(runs, spec.bootstrap)
    if spec.curve_points == CurvePoints.OFF:
        return Core(runs, hyper, attempt(choose, runs, spec, True, allocating))
    return Core(runs, hyper, *choose_with_points(runs, spec, curves, tuned, allocating))


def fitted_runs(runs: pd.DataFrame, fit: SweepFit) -> pd.DataFrame:
    """The runs a saved fit was fitted on: each cell's optimum where it tuned lr or batch size."""
    if fit.hyperparameters is None:
        return runs
    return pd.DataFrame([c.model_dump() for c in fit.hyperparameters.cells])


def analyze(inputs: FitInputs, spec: FitSpec = FitSpec(), at: Sequence[At] = (), task_setting: tuple[int, str] = (0, "random")) -> SweepFit:
    """inputs.runs: one row per run with N, D, C, L (C the FLOPs it computed); inputs.evals
    (optional): one row per evaluation with run_id, N, C_seen, flops_per_token, L, for Approach 1;
    inputs.tasks (optional): results.load(tasks=True), fitted at task_setting (shots, strategy),
    the runs the extrapolation check holds out held out of the task laws too. at: where to predict."""
    c = core(inputs.runs, spec, curves=inputs.curves)
    runs, chosen = c.runs, c.chosen
    parts: dict = {"law": chosen, "curve_points": c.curve_points}
    if isinstance(chosen, Chosen):
        law, boots = chosen.law, chosen.boots
        parts.update(
            law=main_law(law, boots, spec, chosen.noise),
            laws=chosen.table,
            frontier=attempt(frontier, law, boots, 6 * runs["N"] * runs["D"]),
            predictions=[predict(law, boots, a, chosen.noise) for a in at],
        )
    if inputs.evals is not None:
        parts["envelope"] = attempt(fit_envelope, inputs.evals)
    if inputs.tasks is not None:
        held = runs.loc[held_out_rows(runs, spec.holdout_fraction, spec.holdout_by).index, "run_id"]
        parts["tasks"] = task_report(inputs.tasks, spec, set(held), *task_setting)
    return SweepFit(
        n_runs=len(inputs.runs),
        power_laws=power_laws(runs),
        isoflop=attempt(fit_isoflop, runs),
        extrapolation=attempt(extrapolation, runs, spec),
        hyperparameters=c.hyperparameters,
        **parts,
    )
