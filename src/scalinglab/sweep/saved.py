"""The sweep a results folder was run with: its sweep.json (the resolved SweepSpec `scalinglab run`
wrote), read one way everywhere, with one policy for a damaged file: reported (a DamagedResults
warning naming it) and read as absent. Validated as a schema only: its cross-field rules held when
it was run, and its corpus may have moved since."""

from __future__ import annotations

import json

from pydantic import ValidationError

from ..store.files import NotARegularFile, read_bytes, report_damage
from ..store.layout import SweepDir
from .spec import SweepSpec


def saved_sweep(sweep: SweepDir) -> SweepSpec | None:
    """The sweep's spec, or None when it has no readable sweep.json."""
    try:
        data = read_bytes(sweep.sweep_json, sweep.path)
        if data is None:
            return None
        return SweepSpec.model_validate(json.loads(data))
    except ValidationError as e:
        err = e.errors()[0]
        problem = f"{'.'.join(str(x) for x in err['loc']) or 'sweep.json'}: {err['msg']}"
    except NotARegularFile as e:
        problem = str(e)
    except ValueError as e:  # not JSON, or not UTF-8
        problem = f"not JSON ({e})"
    report_damage(sweep.sweep_json, f"{problem}; read as if it were absent")
    return None
