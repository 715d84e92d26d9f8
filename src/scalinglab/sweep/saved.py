"""The sweep a results folder was run with: its sweep.json (the resolved SweepSpec `scalinglab run`
wrote), read one way everywhere, with one policy for a damaged file: reported (a DamagedResults
warning naming it) and read as absent. Validated as a schema only: its cross-field rules held when
it was run, and its corpus may have moved since."""

from __future__ import annotations

from pydantic import ValidationError

from ..store.files import read_record, report_damage
from ..store.layout import SweepDir
from .spec import SweepSpec


def saved_sweep(sweep: SweepDir) -> SweepSpec | None:
    """The sweep's spec, or None when it has no readable sweep.json."""
    record, problem = read_record(sweep.sweep_json, {"name", "grid"})
    if record is not None:
        try:
            return SweepSpec.model_validate(record)
        except ValidationError as e:
            err = e.errors()[0]
            problem = f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    if problem is not None:
        report_damage(sweep.sweep_json, f"{problem}; read as if it were absent")
    return None
