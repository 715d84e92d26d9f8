"""`scalinglab fit` and `scalinglab plot`: the laws of a sweep (or of any table), printed, saved in
fit.json, drawn. Imports no JAX."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..analysis.analyze import analyze
from ..analysis.parts import Skipped
from ..analysis.pipeline import fit_and_draw, fit_sweep
from ..analysis.say import warner
from ..analysis.select import FitInputs, fit_spec
from ..analysis.table import TASK_MAPS, from_columns, parse_map, read_table
from ..analysis.task_csv import fit_task_csv
from ..analysis.text import lines
from ..analysis.uncertainty import At
from ..errors import FitError, UsageError
from ..store.layout import SweepDir


def _spec(sweep: SweepDir | None, args):
    """The fit section (the sweep's, or the defaults) with the command line's flags on top."""
    return fit_spec(
        sweep,
        huber_delta=args.huber_delta,
        method=args.method,
        bootstrap=args.bootstrap,
        holdout_fraction=args.holdout,
        law=args.law,
        pin_E=args.pin_E,
        curve_points=args.curve_points,
    )


def _finite(obj):
    """The JSON-ready object with each number that is not finite (an interval no resample fixed)
    as None: strict JSON has no NaN or Infinity."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def _strict_json(obj) -> str:
    return json.dumps(_finite(obj), indent=1, allow_nan=False) + "\n"


def _fit_table(args, mapping: dict[str, str], at: list[At]):
    """fit --csv's L(N,D): FitError, naming the file, where no law of the loss fits its rows."""
    table = from_columns(read_table(Path(args.csv)), mapping)
    fit = analyze(FitInputs(table), _spec(None, args), at)
    if isinstance(fit.law, Skipped):
        raise FitError(f"--csv {args.csv}: no law of the loss fits its {len(table)} rows: {fit.law.skipped}")
    return fit


def main(args, console: Console) -> int:
    if (args.path is None) == (args.csv is None):
        raise UsageError("scalinglab fit: give a results/<sweep> folder or --csv FILE, not both or neither")
    at = [At.parse(p) for p in args.predict]
    mapping = parse_map(args.map)
    task_fit = any(k in mapping for k in TASK_MAPS)
    if args.chance is not None and not task_fit:
        raise UsageError(f"--chance {args.chance:g}: applies only to a task fit, with --csv and --map task_loss=COLUMN --map acc=COLUMN")
    out = Console(file=open(os.devnull, "w")) if args.json else console  # noqa: SIM115  (closed with the process)
    if args.csv:
        if not Path(args.csv).is_file():
            raise UsageError(f"--csv {args.csv}: no such file")
        if args.curve_points not in (None, "off"):
            raise UsageError(
                f"--curve-points {args.curve_points}: needs a results/<sweep> folder's loss curves; a --csv table has final losses only"
            )
        if task_fit:
            points, text = fit_task_csv(read_table(Path(args.csv)), mapping, _spec(None, args), args.chance, at)
            for line in text:
                out.print(line)
            if args.json:
                print(_strict_json(points), end="")
            return 0
        fit = _fit_table(args, mapping, at)
    else:
        if args.map:
            raise UsageError("--map only applies with --csv")
        sweep = SweepDir(Path(args.path))
        _, fit = fit_sweep(sweep, _spec(sweep, args), warner(out), at)
    for line in lines(fit):
        out.print(line)
    if args.csv is None:
        out.print(escape(f"wrote {sweep.fit_json}"))
    if args.json:
        print(_strict_json(fit.model_dump(mode="json", by_alias=True)), end="")
    return 0


def plot(args, console: Console) -> int:
    sweep = SweepDir(Path(args.path))
    for line in fit_and_draw(sweep, _spec(sweep, args), warner(console)):
        console.print(line)
    return 0
