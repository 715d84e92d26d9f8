"""`scalinglab fit` and `scalinglab plot`: the laws of a sweep (or of any table), printed, saved in
fit.json, drawn. Imports no JAX."""

from __future__ import annotations

import math
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..analysis.analyze import analyze
from ..analysis.curve_csv import read_schedule
from ..analysis.curve_pipeline import CurveSettings, sweep_report, table_report, write_predictions
from ..analysis.curve_text import prediction_table, report_tables
from ..analysis.curves import CurveLawName
from ..analysis.curves.sizes import SKIP_EARLY
from ..analysis.parts import Skipped, strict_json
from ..analysis.pipeline import fit_and_draw, fit_sweep
from ..analysis.say import warner
from ..analysis.select import FitInputs, fit_spec
from ..analysis.table import CURVE_MAPS, TASK_MAPS, from_columns, parse_map, read_table
from ..analysis.task_csv import fit_task_csv
from ..analysis.text import lines
from ..analysis.uncertainty import At
from ..errors import FitError, UsageError
from ..store.layout import SweepDir
from ..store.targets import new_file
from ..sweep.spec import MAX_BOOTSTRAP


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


def _fit_table(args, mapping: dict[str, str], at: list[At]):
    """fit --csv's L(N,D): FitError, naming the file, where no law of the loss fits its rows."""
    table = from_columns(read_table(Path(args.csv)), mapping)
    fit = analyze(FitInputs(table), _spec(None, args), at)
    if isinstance(fit.law, Skipped):
        raise FitError(f"--csv {args.csv}: no law of the loss fits its {len(table)} rows: {fit.law.skipped}")
    return fit


CURVE_ONLY = ("curve_loss", "schedule", "out", "force", "skip_early")
NOT_WITH_CURVES = ("predict", "chance", "method", "holdout", "pin_E")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _curve_settings(args) -> CurveSettings:
    """fit --curves' flags, checked: one curve law, a bootstrap within bounds, no L(N,D) flag."""
    given = next((n for n in NOT_WITH_CURVES if getattr(args, n) not in (None, [])), None)
    if given is not None:
        raise UsageError(f"{_flag(given)}: applies to the fit of L(N,D), not to --curves; leave it out")
    laws = args.law or [CurveLawName.MULTI_POWER.value]
    if len(laws) != 1 or laws[0] not in [n.value for n in CurveLawName]:
        raise UsageError(f"--law {','.join(laws)}: with --curves, give one of {', '.join(n.value for n in CurveLawName)}")
    bootstrap = args.bootstrap or 0
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise UsageError(f"--bootstrap {bootstrap}: give a number of resamples from 0 to {MAX_BOOTSTRAP:,}")
    if args.huber_delta is not None and not (math.isfinite(args.huber_delta) and args.huber_delta > 0):
        raise UsageError(f"--huber-delta {args.huber_delta:g}: give a positive, finite threshold")
    if args.out and not args.schedule:
        raise UsageError(f"--out {args.out}: writes the losses predicted along --schedule FILE; give one")
    if args.skip_early is not None and not 0 <= args.skip_early < 1:
        raise UsageError(f"--skip-early {args.skip_early:g}: give a share of each run's steps, from 0 up to (not including) 1")
    schedule = read_schedule(args.schedule) if args.schedule else None
    skip = SKIP_EARLY if args.skip_early is None else args.skip_early
    return CurveSettings(laws[0], bootstrap, args.huber_delta or 1e-3, schedule, args.schedule or "", skip)


def curves(args, console: Console) -> int:
    """fit --curves: the curve law per size of a sweep (curves.json, figures) or of a table."""
    s = _curve_settings(args)
    out_csv = new_file(args.out, f"--out {args.out}", args.force) if args.out else None
    out = Console(file=open(os.devnull, "w")) if args.json else console  # noqa: SIM115  (closed with the process)
    written: list[str] = []
    if args.csv:
        if args.curve_loss:
            raise UsageError(f"--curve-loss {args.curve_loss}: chooses a sweep's loss; with --csv, --map loss=COLUMN does")
        if not Path(args.csv).is_file():
            raise UsageError(f"--csv {args.csv}: no such file")
        report = table_report(args.csv, parse_map(args.map), s)
    else:
        if args.map:
            raise UsageError("--map only applies with --csv")
        report, written = sweep_report(SweepDir(Path(args.path)), args.curve_loss, s, warner(out))
    for item in report_tables(report):
        out.print(item)
    if report.predictions:
        out.print(prediction_table(report.predictions, s.schedule_name))
    if out_csv is not None:
        write_predictions(report, out_csv)
        written.append(escape(f"wrote {out_csv}"))
    for line in written:
        out.print(line)
    if args.json:
        print(strict_json(report.model_dump(mode="json", by_alias=True)), end="")
    return 0


def main(args, console: Console) -> int:
    if (args.path is None) == (args.csv is None):
        raise UsageError("scalinglab fit: give a results/<sweep> folder or --csv FILE, not both or neither")
    if args.curves:
        return curves(args, console)
    given = next((n for n in CURVE_ONLY if getattr(args, n)), None)
    if given is not None:
        raise UsageError(f"{_flag(given)}: applies only with --curves")
    at = [At.parse(p) for p in args.predict]
    mapping = parse_map(args.map)
    curve_map = next((k for k in mapping if k in CURVE_MAPS), None)
    if curve_map is not None:
        raise UsageError(f"--map {curve_map}={mapping[curve_map]}: a column of a table of loss curves; add --curves to fit one")
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
                print(strict_json(points), end="")
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
        print(strict_json(fit.model_dump(mode="json", by_alias=True)), end="")
    return 0


def plot(args, console: Console) -> int:
    sweep = SweepDir(Path(args.path))
    for line in fit_and_draw(sweep, _spec(sweep, args), warner(console)):
        console.print(line)
    return 0
