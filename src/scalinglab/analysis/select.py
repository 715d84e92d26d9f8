"""What a sweep's fits are made from: its finished runs with a usable loss, their evaluations with
the FLOPs spent so far (C_seen), their task scores, and the fit settings it was run with. No JAX."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError

from ..errors import FitError, UsageError
from ..store.frame import load
from ..store.layout import SweepDir
from ..store.runs import Status
from ..sweep.evalspec import EvalSpec
from ..sweep.saved import saved_sweep
from ..sweep.spec import FitSpec
from .curvepoints import CurveSource


@dataclass(frozen=True)
class FitInputs:
    runs: pd.DataFrame
    """One row per done run with a positive, finite final loss L."""
    evals: pd.DataFrame | None = None
    """Their evaluations with C_seen (training FLOPs so far); None when every record is damaged."""
    tasks: pd.DataFrame | None = None
    """Their task scores (results.load(tasks=True)); None without eval.tasks."""
    curves: CurveSource | None = None
    """Their evaluations and their trunks', for curve-law points (None: fit.curve_points off)."""


def fit_inputs(sweep: SweepDir, left_out: Callable[[str], None] = lambda line: None, curves: bool = False) -> FitInputs:
    """The done runs of a sweep with a usable final loss, and their evaluations (with curves, also
    their trunks', for curve-law points). Diverged runs and runs whose loss is not a positive number
    are left out, each kind named in one line passed to left_out. FitError if none is left."""
    df = load(sweep.path)
    status = df["status"] if "status" in df else pd.Series(Status.PENDING, index=df.index)
    diverged = df[status == Status.DIVERGED]
    if len(diverged):
        left_out(
            f"{len(diverged)} diverged run(s) left out of the fits: "
            + ", ".join(f"{r.run_id} (N={r.N:,}, D={r.D:,})" for r in diverged.itertuples())
        )
    done = df[status == Status.DONE]
    L = pd.to_numeric(done["L"], errors="coerce") if "L" in done else pd.Series(dtype=float)
    bad = done[~(L > 0) | ~np.isfinite(L)]
    if len(bad):
        left_out(
            f"{len(bad)} run(s) with a final loss that is not a positive number left out of the fits: "
            + ", ".join(f"{r.run_id} (L={r.L})" for r in bad.itertuples())
        )
    done = done.drop(bad.index)
    if done.empty:
        what = (
            f"all {len(diverged)} finished runs diverged" if len(diverged) and not len(bad) else "no finished runs with a usable loss yet"
        )
        raise FitError(f"{sweep.path}: {what}; nothing to fit")
    scores = load(sweep.path, tasks=True)
    tasks = scores[scores["run_id"].isin(done["run_id"])] if len(scores) else None
    evals = load(sweep.path, per_eval=True)
    source = curve_source(sweep, done) if curves else None
    if evals.empty:  # every evaluation record damaged: the final losses still fit
        return FitInputs(done, None, tasks, source)
    evals = evals[evals["run_id"].isin(done["run_id"])].copy()
    evals["C_seen"] = evals["tokens"] * evals["flops_per_token"]
    return FitInputs(done, evals, tasks, source)


def curve_source(sweep: SweepDir, done: pd.DataFrame) -> CurveSource:
    """The evaluations of the done runs and of their trunks, and train.cooldown_fraction."""
    rows = load(sweep.path, per_eval=True, trunks=True)
    keep = set(done["run_id"]) | (set(done["trunk_id"].dropna()) if "trunk_id" in done else set())
    saved = saved_sweep(sweep)
    return CurveSource(rows[rows["run_id"].isin(keep)] if len(rows) else rows, saved.train.cooldown_fraction if saved else None)


def task_setting(sweep: SweepDir) -> tuple[int, str]:
    """The (shots, strategy) the task laws are fitted at: the sweep's most shots and first strategy."""
    saved = saved_sweep(sweep)
    spec = saved.eval if saved else EvalSpec()
    return max(spec.num_fewshot), str(spec.strategies[0])


def saved_fit_spec(sweep: SweepDir | None, **overrides) -> FitSpec:
    """The fit section the sweep was run with (the defaults without a readable sweep.json), with
    `overrides` that are not None on top. A bad value raises pydantic's ValidationError."""
    saved = saved_sweep(sweep) if sweep else None
    base = saved.fit.model_dump() if saved else {}
    return FitSpec.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})


FLAGS = {"holdout_fraction": "--holdout"}  # fit section fields whose flag is not their name


def fit_spec(sweep: SweepDir | None, **flags) -> FitSpec:
    """saved_fit_spec with command-line flags on top (None: not given); a bad value is one line
    naming its flag (UsageError)."""
    try:
        return saved_fit_spec(sweep, **flags)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0])
        raise UsageError(f"{FLAGS.get(field, '--' + field.replace('_', '-'))}: {err['msg']}") from None
