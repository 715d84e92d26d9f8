"""Any table as runs to fit (`scalinglab fit --csv FILE --map X=COLUMN`): the user's columns mapped
to N, D, C, L and U, or to a task's columns. No JAX."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FitError, UsageError

TASK_MAPS = ("task_loss", "acc")  # with both mapped, `fit --csv` fits a task's two steps instead of L(N,D)
CURVE_MAPS = ("step", "lr", "loss")  # `fit --curves --csv`: one row per logged step of a run
MAP_KEYS = ("N", "D", "C", "C_6ND", "L", "U", *TASK_MAPS, "run", *CURVE_MAPS)


def parse_map(items: list[str]) -> dict[str, str]:
    """['N=Model Size', ...] -> {"N": "Model Size", ...}."""
    mapping: dict[str, str] = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or ours not in MAP_KEYS:
            raise UsageError(f"--map {item}: expected one of {', '.join(k + '=COLUMN' for k in MAP_KEYS)}")
        if ours in mapping:
            raise UsageError(f"--map {item}: {ours} is already mapped to {mapping[ours]!r}; give one --map {ours}=COLUMN")
        twin = next((k for k, v in mapping.items() if v == theirs), None)
        if twin is not None:
            raise UsageError(f"--map {item}: column {theirs!r} is already mapped to {twin}; map each column once")
        mapping[ours] = theirs
    return mapping


def read_table(path: Path, flag: str = "--csv") -> pd.DataFrame:
    """A --csv file (or another flag's table): UTF-8 text (a byte order mark allowed) with a header
    and at least one row; UsageError naming the flag and the file otherwise."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UsageError(f"{flag} {path}: line {line} is not UTF-8 text (byte 0x{data[e.start]:02x}); save the table as UTF-8") from None
    try:
        table = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise UsageError(f"{flag} {path}: the file is empty; expected a header line, then one row per run") from None
    except pd.errors.ParserError as e:
        raise UsageError(f"{flag} {path}: not a CSV table: {str(e).strip().splitlines()[0]}") from None
    if table.empty:
        raise UsageError(f"{flag} {path}: a header and no rows; expected one row per run under the header")
    return table


def mapped(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """The table with the user's columns renamed to ours. FitError for a --map to a column the table
    lacks, or to one whose new name another column of the table already has (which is meant?)."""
    for ours, theirs in mapping.items():
        if theirs not in df:
            raise FitError(f"--map {ours}={theirs}: the table has no column {theirs!r}; columns are {list(df.columns)}")
        if ours != theirs and ours in df and ours not in mapping.values():
            raise FitError(
                f"--map {ours}={theirs}: the table also has a column {ours!r}, so {ours} is ambiguous; "
                f"rename one of the two, or map {ours}={ours}"
            )
    return df.rename(columns={theirs: ours for ours, theirs in mapping.items()})


def numbers(df: pd.DataFrame, names: list[str], mapping: dict[str, str], positive: tuple[str, ...] = ()) -> pd.DataFrame:
    """Those columns as floats; FitError naming the first cell that is empty, not a number, not
    finite or (in a column of `positive`) not above zero, by its row (counted from 1 under the
    header) and its column as the table names it."""
    out = pd.DataFrame({name: _floats(df[name]) for name in names})
    values = out.to_numpy()
    low = np.zeros_like(values, dtype=bool)
    low[:, [i for i, n in enumerate(names) if n in positive]] = True
    bad = ~np.isfinite(values) | low & (values <= 0)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise FitError(f"row {row + 1}, column {label(names[col], mapping)}: {_what(df[names[col]].iloc[row], values[row, col])}")
    return out


def _floats(column: pd.Series) -> pd.Series:
    """A column's numbers as floats, NaN where not a number."""
    try:
        return pd.to_numeric(column, errors="coerce").astype(float)
    except OverflowError:  # pandas read an integer of hundreds of digits, beyond a float
        return column.map(_number).astype(float)


def _number(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return math.nan


def label(ours: str, mapping: dict[str, str]) -> str:
    """A column as the user's table names it, with ours where they differ: 'Model Size' (N)."""
    theirs = mapping.get(ours, ours)
    return repr(theirs) if theirs == ours else f"{theirs!r} ({ours})"


def _what(raw, value: float) -> str:
    if pd.isna(raw):
        return "is empty or NaN; give a number"
    text = str(raw) if len(str(raw)) <= 40 else str(raw)[:37] + "..."
    if np.isnan(value):
        return f"{text!r} is not a number"
    return f"{text!r} is not " + ("finite" if not np.isfinite(value) else "a positive number")


def from_columns(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """A user's table -> columns N, D, C, L and U. mapping: our name -> their column. D = C_6ND / (6N)
    where the table gives 6ND but not D; C, the compute the runs are grouped and held out by, is the
    table's C (the FLOPs its runs computed) where given, else its C_6ND, else 6ND. U, each run's
    unique training tokens, is NaN where the table gives none, as for a sweep's runs trained before
    U was recorded (results.load)."""
    renamed = mapped(df, mapping)
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
    given = [c for c in ("N", "D", "C_6ND", "C", "L", "U") if c in renamed]
    out = numbers(renamed, given, mapping, positive=tuple(given))
    if "D" not in out:
        out["D"] = out["C_6ND"] / (6 * out["N"])
        bad = np.flatnonzero(~(np.isfinite(out["D"]) & (out["D"] > 0)))
        if len(bad):  # C_6ND and N each fine, their ratio beyond a float
            columns = f"{label('C_6ND', mapping)} and {label('N', mapping)}"
            raise FitError(
                f"row {bad[0] + 1}: D = C_6ND / (6 N) = {out['D'].iloc[bad[0]]:g}, not a positive number; check columns {columns}"
            )
    if "C" not in out:
        out["C"] = out["C_6ND"] if "C_6ND" in out else 6 * out["N"] * out["D"]
    if "U" not in out:
        out["U"] = np.nan
    return out[["N", "D", "C", "L", "U"]]
