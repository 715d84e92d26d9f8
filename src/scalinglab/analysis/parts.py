"""The pieces every typed fit result is built from (sweepfit.py, taskfit.py): a frozen part, the
`Skipped(why)` that stands in for a part the data cannot support, an estimate with its interval,
and a fitted law as fit.json keeps it. No JAX."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from .laws import Fitted, from_record
from .laws.bootstrap import interval

CI = tuple[float, float]


class Part(BaseModel):
    # NaN (a loss a law cannot predict, an interval of no resamples) is written as NaN, as Python's json does.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class Skipped(Part):
    """In place of a part the data cannot support: why."""

    skipped: str


class Estimate(Part):
    value: float
    ci: CI | None = None
    """The bootstrap interval (None without resamples)."""


class LawFit(Part):
    """A fitted law: its registered family and settings (Law.record()), parameters and intervals."""

    law: dict[str, Any]
    form: str
    params: dict[str, float]
    ci: dict[str, CI] = {}
    objective: float = float("nan")
    n_points: int

    def fitted(self) -> Fitted:
        """The law, callable again (no refit)."""
        return Fitted.of(from_record(self.law), self.params, objective=self.objective, n_points=self.n_points)

    @classmethod
    def of(cls, law: Fitted, boots: Sequence[Fitted] = (), **extra: Any) -> Self:
        """A fitted law and, with resamples, each parameter's interval."""
        ci = {k: interval([b[k] for b in boots]) for k in law.values} if boots else {}
        record = {k: list(v) if isinstance(v, tuple) else v for k, v in law.law.record().items()}  # as JSON reads it back
        return cls(law=record, form=law.law.form, params=law.values, ci=ci, objective=law.objective, n_points=law.n_points, **extra)


def _finite(obj):
    """The JSON-ready object with each number that is not finite (an interval no resample fixed)
    as None: strict JSON has no NaN or Infinity."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def strict_json(obj) -> str:
    """A model_dump(mode="json") as the commands print it with --json: strict JSON, indented."""
    return json.dumps(_finite(obj), indent=1, allow_nan=False) + "\n"
