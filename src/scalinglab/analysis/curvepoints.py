"""Curve-law points (fit.curve_points): per model size, the multi-power law fitted jointly to its
runs' validation-loss curves (a trunk and its cooldown branches, or runs of their own) predicts the
final loss of a run of another length D', trained with the sweep's schedule settings; those
(N, D', L_hat) rows, marked source = "curve", join the trained runs in the L(N,D) fit. They are
never a backtest's targets, and join a backtest's fit only at origins that hold every trained run
of their size (analysis.choose). No JAX."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FitError
from ..sweep.spec import FitSpec
from ..sweep.types import CurvePoints
from ..training.schedules import SCHEDULES
from .choose import Chosen, Scored, choose, score_laws, settle
from .curves import curves_from_frame, fit_curves, lr_per_step_from_run
from .curves.sizes import SKIP_EARLY
from .parts import Skipped
from .sweepfit import CurvePointsFit
from .uncertainty import attempt

SOURCE, CURVE = "source", "curve"
"""The column that marks a derived row, and its value."""
LAW = "multi_power"
PER_GAP = 2
"""Points between each pair of neighbouring trained D of a size, geometrically spaced."""
MIN_CURVES = 3
"""Curves a size needs for its law: 3 runs, or a trunk and 2 branches."""


@dataclass(frozen=True)
class CurveSource:
    """What the points are made from: the evaluations (load(per_eval=True, trunks=True)) of the
    done runs and their trunks, and train.cooldown_fraction the runs were planned with (None: read
    from each run's own decay_start)."""

    evals: pd.DataFrame
    cooldown_fraction: float | None = None


@dataclass(frozen=True)
class Derived:
    """The points (N, D, C, L, U where the runs have it, source), how many sizes gave them, and
    why each size that gave none did not."""

    points: pd.DataFrame
    sizes: int
    left_out: list[str]


def derived_points(runs: pd.DataFrame, source: CurveSource) -> Derived:
    """Every size's points (see the module); a size with fewer than MIN_CURVES curves, or whose
    law does not fit, gives none and is named in left_out."""
    frames, left_out = [], []
    for N, own in runs.groupby("N"):
        rows = source.evals[source.evals["run_id"].isin(set(own["run_id"]) | set(own.get("trunk_id", pd.Series()).dropna()))]
        try:
            frames.append(size_points(own, rows, source.cooldown_fraction))
        except FitError as e:
            left_out.append(f"N={N:,.0f}: {e}")
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["N", "D", "C", "L", SOURCE])
    return Derived(points, len(frames), left_out)


def size_points(own: pd.DataFrame, evals: pd.DataFrame, cooldown_fraction: float | None) -> pd.DataFrame:
    """One size's points: its curve law's final loss at each D' of between(its trained D)."""
    curves = [c.skipping(SKIP_EARLY) for c in curves_from_frame(evals, "L")]
    if len(curves) < MIN_CURVES:
        raise FitError(f"{len(curves)} loss curve(s); a curve law needs {MIN_CURVES} (3 runs, or a trunk and 2 branches)")
    law = fit_curves(curves, LAW)
    template = own.sort_values("D").iloc[-1]
    record = {str(k): v for k, v in template.items()}
    tokens_per_step = float(template["D"]) / int(template["steps"])
    D_new = between(own["D"].to_numpy(float))
    L_hat = []
    for D in D_new:
        lr = rates(record, round(D / tokens_per_step), cooldown_fraction)
        L_hat.append(float(law.predict(lr, [len(lr)])[0]))
    out = {"N": float(template["N"]), "D": D_new, "C": D_new * float(np.median(own["C"] / own["D"])), "L": L_hat}
    if "U" in own:
        out["U"] = np.exp(np.interp(np.log(D_new), np.log(own["D"].to_numpy(float)), np.log(own["U"].to_numpy(float))))
    return pd.DataFrame({**out, SOURCE: CURVE})


def between(D: np.ndarray, per_gap: int = PER_GAP) -> np.ndarray:
    """per_gap lengths geometrically spaced strictly between each pair of neighbouring distinct D."""
    d = np.unique(D)
    inner = [np.geomspace(a, b, per_gap + 2)[1:-1] for a, b in itertools.pairwise(d)]
    return np.concatenate(inner) if inner else np.empty(0)


def rates(record: Mapping[str, Any], steps: int, cooldown_fraction: float | None) -> np.ndarray:
    """The rate at every step of a run like `record` but `steps` long: its schedule, peak and
    warmup; where the schedule has a decay_start (wsd, step), the last cooldown_fraction of the
    steps (the record's own fraction when None), as the planner sets it."""
    fraction = cooldown_fraction
    if fraction is None and _has_decay(record):
        fraction = (int(record["steps"]) - int(record["decay_start"])) / int(record["steps"])
    changed = {**record, "steps": steps}
    if _has_decay(record) and fraction is not None:
        changed["decay_start"] = steps - round(fraction * steps)
    return lr_per_step_from_run(changed)[0]


def _has_decay(record: Mapping[str, Any]) -> bool:
    return record.get("schedule") in SCHEDULES.having("decay_start")


def choose_with_points(
    runs: pd.DataFrame, spec: FitSpec, source: CurveSource | None, tuned: bool, allocating: bool = False
) -> tuple[Chosen | Skipped, CurvePointsFit | Skipped]:
    """The law of the loss as fit.curve_points (on or auto) has it, and what the points did."""
    setting = spec.curve_points
    why_not = _unusable(source, tuned)
    derived = derived_points(runs, source) if source is not None and why_not is None else None
    if derived is not None and derived.points.empty:
        why_not = "no size gave points: " + "; ".join(derived.left_out)
    if why_not is not None or derived is None:
        return attempt(choose, runs, spec, True, allocating), Skipped(skipped=f"fit.curve_points {setting}: {why_not}")
    with_ = _scored(runs, spec, allocating, derived.points)
    without = None if setting == CurvePoints.ON and with_ is not None else _scored(runs, spec, allocating, None)
    if with_ is None and without is None:
        return attempt(choose, runs, spec, True, allocating), Skipped(skipped=f"fit.curve_points {setting}: no law of the loss fits")
    use, why = _decide(setting, with_, without)
    picked = with_ if use else without
    assert picked is not None  # _decide uses the points only where they were scored, and else `without` was
    chosen = settle(picked, runs, spec, True, derived.points if use else None)
    return chosen, CurvePointsFit(
        setting=setting, curve_law=LAW, used=use, n_points=len(derived.points), sizes=derived.sizes,
        error_with=with_.score if with_ else None, error_without=without.score if without else None,
        chosen_with=with_.order[0] if with_ else None, chosen_without=without.order[0] if without else None,
        why=why, left_out=derived.left_out,
    )  # fmt: skip


def _unusable(source: CurveSource | None, tuned: bool) -> str | None:
    if tuned:
        return "the runs are tuned (N, D) cells' optima; a size's curve law would mix learning rates"
    if source is None or source.evals.empty:
        return "no training curves (no readable evaluation records)"
    return None


def _scored(runs: pd.DataFrame, spec: FitSpec, allocating: bool, derived: pd.DataFrame | None) -> Scored | None:
    try:
        return score_laws(runs, spec, allocating, derived)
    except FitError:
        return None


def _decide(setting: CurvePoints, with_: Scored | None, without: Scored | None) -> tuple[bool, str]:
    """Whether the law is fitted with the points, and why (with_ or without is not None)."""
    if with_ is None:
        return False, f"{setting}: no law of the loss fits the runs with the points; the trained runs alone"
    if setting == CurvePoints.ON:
        return True, "on: the trained runs and the points"
    if without is None:
        return True, "auto: no law of the loss fits the trained runs alone"
    if with_.score is None or without.score is None:
        return False, "auto: the backtest could not score both options; the trained runs alone"
    if with_.score < without.score:
        return True, f"auto: backtest error {with_.score:.2%} with the points against {without.score:.2%} without"
    return False, f"auto: backtest error {without.score:.2%} without the points against {with_.score:.2%} with"
