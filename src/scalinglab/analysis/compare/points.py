"""The pieces every part of a comparison is reported in (multiplier.py's losses and multipliers,
tasks.py's accuracies): where a compute comes from, and a value with its bootstrap interval. No
JAX."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import TypeVar

import numpy as np

from ..laws.bootstrap import interval
from ..parts import Estimate


class Where(StrEnum):
    """Why a compute is reported: the lowest, geometric middle or highest C_6ND = 6ND of the two
    sweeps' runs, or a --at point."""

    RUNS_LOW = "runs_low"
    RUNS_MID = "runs_mid"
    RUNS_HIGH = "runs_high"
    AT = "at"


def estimate(value: float, resampled: Sequence[float] | np.ndarray) -> Estimate:
    """The value with its interval; resamples whose k is infinite count as the largest values
    (the quantiles would interpolate inf - inf to NaN), and an end among them is inf."""
    if not len(resampled):
        return Estimate(value=float(value))
    big = np.finfo(float).max
    lo, hi = interval(np.where(np.isposinf(resampled), big, resampled))
    return Estimate(value=float(value), ci=(lo, math.inf if hi > big / 4 else hi))


Fit = TypeVar("Fit")


def paired(values: Callable[[Fit, Fit], np.ndarray], full: tuple[Fit, Fit], resampled: Iterable[tuple[Fit, Fit]]) -> list[list[Estimate]]:
    """values(a, b), an array (quantity, compute), on the two full fits and on each pair of
    resamples: per compute, each quantity with its interval over the pairs."""
    at_full = values(*full)
    pairs = [values(a, b) for a, b in resampled]
    boots = np.stack(pairs) if pairs else np.empty((0, *at_full.shape))
    return [[estimate(at_full[j, i], boots[:, j, i]) for j in range(at_full.shape[0])] for i in range(at_full.shape[1])]
