"""Any table as runs to fit (`scalinglab fit --csv FILE --map X=COLUMN`): the user's columns mapped
to N, D, C, L and U, or to a task's columns. No JAX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FitError, UsageError

TASK_MAPS = ("task_loss", "acc")  # with both mapped, `fit --csv` fits a task's two steps instead of L(N,D)
MAP_KEYS = ("N", "D", "C", "C_6ND", "L", "U", *TASK_MAPS, "run")


def parse_map(items: list[str]) -> dict[str, str]:
    """['N=Model Size', ...] -> {"N": "Model Size", ...}."""
    mapping = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or ours not in MAP_KEYS:
            raise UsageError(f"--map {item}: expected one of {', '.join(k + '=COLUMN' for k in MAP_KEYS)}")
        mapping[ours] = theirs
    return mapping


def from_columns(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """A user's table -> columns N, D, C, L and U. mapping: our name -> their column. D = C_6ND / (6N)
    where the table gives 6ND but not D; C, the compute the runs are grouped and held out by, is the
    table's C (the FLOPs its runs computed) where given, else its C_6ND, else 6ND. U, each run's
    unique training tokens, is NaN where the table gives none, as for a sweep's runs trained before
    U was recorded (results.load)."""
    renamed = df.rename(columns={theirs: ours for ours, theirs in mapping.items()})
    missing = [c for c in ("N", "L") if c not in renamed]
    if missing or ("D" not in renamed and "C_6ND" not in renamed):
        need = ", ".join(missing + ([] if ("D" in renamed or "C_6ND" in renamed) else ["D or C_6ND"]))
        hint = (
            (
                f"; --map C={mapping['C']} gives the FLOPs the runs computed, which do not give D: if that column "
                f"is 6ND, map it as C_6ND={mapping['C']}"
            )
            if "C" in mapping and "D" not in renamed
            else ""
        )
        raise FitError(f"the table has no column for {need}; columns are {list(df.columns)}; map one with --map N=COLUMN{hint}")
    if "D" not in renamed:
        renamed["D"] = renamed["C_6ND"] / (6 * renamed["N"])
    if "C" not in renamed:
        renamed["C"] = renamed["C_6ND"] if "C_6ND" in renamed else 6 * renamed["N"] * renamed["D"]
    given = ["N", "D", "C", "L", *(["U"] if "U" in renamed else [])]
    out = renamed[given].astype(float)
    values = out.to_numpy()
    bad = ~np.isfinite(values).all(axis=1) | (values <= 0).any(axis=1)
    if bad.any():
        raise FitError(f"row {int(np.flatnonzero(bad)[0])}: {', '.join(given[:-1])} and {given[-1]} must be positive numbers")
    if "U" not in out:
        out["U"] = np.nan
    return out
