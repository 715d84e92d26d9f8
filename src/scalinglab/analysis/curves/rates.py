"""A run's learning rate at every step: rebuilt exactly from its run.json (the schedule types
training runs on), or interpolated from a table of (step, rate) as papers publish them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import FitError
from ...training.schedules import SCHEDULES, Schedule


def lr_per_step_from_run(record: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """(the rate at steps 1..steps, warmup steps) of a run.json-like mapping: schedule, lr,
    warmup_steps, steps and the schedule's own fields (decay_start, min_lr_ratio, cooldown_shape),
    computed as training computes them (float32, optax's count t = step - 1)."""
    schedule = schedule_of(record)
    try:
        peak = float(record["lr"])
    except KeyError as e:
        raise FitError(f"a run's record lacks {e.args[0]!r}, which its schedule needs") from None
    lr = np.asarray(schedule.lr(peak, np.arange(schedule.steps), np), dtype=float)
    return lr, int(schedule.warmup_steps)


def schedule_of(record: Mapping[str, Any]) -> Schedule:
    """The schedule a run.json-like mapping describes."""
    try:
        cls = SCHEDULES[record["schedule"]]
        return cls(**{f.name: _plain(record[f.name]) for f in dataclasses.fields(cls)})
    except KeyError as e:
        raise FitError(f"a run's record lacks {e.args[0]!r}, which its schedule needs") from None
    except ValueError as e:  # an unknown schedule
        raise FitError(str(e)) from None


def _plain(value: Any) -> Any:
    """A table's value as the schedule takes it: whole floats (a column with gaps) as int."""
    if isinstance(value, np.generic):
        value = value.item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def lr_per_step_from_table(steps, lrs, last_step: int | None = None) -> tuple[np.ndarray, int]:
    """(the rate at steps 1..last_step, warmup steps) from rates listed at some steps: linear
    between listed steps; before the first listed step s0, a linear warmup from 0 at step 0 to
    the first listed rate at s0 (so the warmup is s0 steps); after the last listed step nothing
    (last_step, by default the last listed, may only cut the table short)."""
    steps, lrs = np.asarray(steps, dtype=float), np.asarray(lrs, dtype=float)
    if steps.ndim != 1 or steps.shape != lrs.shape or not len(steps):
        raise FitError(f"a rate table needs one rate per listed step ({len(steps)} steps, {len(lrs)} rates)")
    if steps[0] < 1 or np.any(np.diff(steps) <= 0) or np.any(steps != np.round(steps)):
        raise FitError("a rate table's steps must be whole numbers from 1 on, increasing")
    if not np.all(np.isfinite(lrs) & (lrs >= 0)):
        raise FitError("a rate table's rates must be finite and non-negative")
    last = int(steps[-1]) if last_step is None else int(last_step)
    if not 1 <= last <= steps[-1]:
        raise FitError(f"last_step {last}: the table lists rates for steps up to {int(steps[-1])}, nothing after")
    t = np.arange(1, last + 1)
    return np.interp(t, np.concatenate([[0.0], steps]), np.concatenate([[0.0], lrs])), int(steps[0])
