"""A task's two-step law fitted on any table (`scalinglab fit --csv FILE --map task_loss=COL --map
acc=COL`): task loss from (N, D), accuracy from task loss; at each --predict point N, D, task_loss
and acc (acc_ci with resamples). No JAX."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import UsageError
from ..sweep.spec import FitSpec
from .laws.bootstrap import LEVEL
from .parts import LawFit
from .table import TASK_MAPS
from .task_laws import TaskPoint, bootstrap_two_step, fit_two_step, predict_two_step, task_columns, two_step_fit
from .uncertainty import At


def _show(part: LawFit) -> str:
    return ", ".join(
        f"{k} = {v:.4g}" + (f" [{part.ci[k][0]:.4g}, {part.ci[k][1]:.4g}]" if k in part.ci else "") for k, v in part.params.items()
    )


def _checked(mapping: dict[str, str], chance: float | None, at: Sequence[At]) -> float:
    missing = [k for k in TASK_MAPS if k not in mapping]
    unused = [k for k in ("L", "C", "C_6ND") if k in mapping]
    if missing or unused:
        raise UsageError(
            f"--map {missing[0]}=COLUMN is missing: a task fit needs task_loss and acc"
            if missing
            else f"--map {unused[0]}={mapping[unused[0]]}: a task fit reads N, D, task_loss, acc and run, not {unused[0]}"
        )
    chance = 0.0 if chance is None else chance
    if not 0 <= chance < 1:
        raise UsageError(f"--chance {chance:g}: the chance accuracy must be at least 0 and below 1")
    if any(a.C_6ND is not None for a in at):
        raise UsageError("--predict C_6ND=...: a task fit predicts at N=PARAMS,D=TOKENS")
    return chance


def fit_task_csv(
    table: pd.DataFrame, mapping: dict[str, str], spec: FitSpec, chance: float | None, at: Sequence[At]
) -> tuple[list[TaskPoint], list[str]]:
    """The points predicted (N, D, task_loss, acc, acc_ci with resamples) and the lines printed."""
    chance = _checked(mapping, chance, at)
    frame = task_columns(table, mapping)
    model = fit_two_step(frame, chance, spec)
    boots = bootstrap_two_step(frame, chance, spec)
    points = [predict_two_step(model, boots, a.N, a.D) for a in at if a.N is not None and a.D is not None]
    for a, p in zip(at, points):
        a.refuse_non_finite({"task_loss": p["task_loss"], "acc": p["acc"]}, "the two-step task law")
    found = two_step_fit(model, boots)
    text = [
        f"step 1, task_loss = E + A/N^alpha + B/D^beta over {found.step1.n_points} runs' final checkpoints: " + _show(found.step1),
        f"step 2, {found.step2.form} over {found.step2.n_points} checkpoints (chance {chance:.4g}): " + _show(found.step2),
    ]
    for p in points:
        ci = f" [{p['acc_ci'][0]:.4f}, {p['acc_ci'][1]:.4f}] ({LEVEL:.0%}, {len(boots)} resamples)" if "acc_ci" in p else ""
        text.append(f"predict at N = {p['N']:.4g}, D = {p['D']:.4g}: task_loss = {p['task_loss']:.4f}, acc = {p['acc']:.4f}{ci}")
    return points, text
