"""`scalinglab compare`: sweeps (results folders, or the groups of one table) compared as a compute
multiplier (analysis/compare/), printed, or with --json printed as JSON; with --shared-exponents,
compared again with Chinchilla's exponents shared (analysis/compare/shared.py); with --figure, drawn
(analysis/compare/plots.py); with --html, a page (analysis/compare/page.py). Writes nothing else.
Imports no JAX."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape

from ..analysis.compare.multiplier import SharedExponents, SweepLaw, compare, sweep_law
from ..analysis.compare.page import compare_page, comparison_png
from ..analysis.compare.shared import shared_exponents
from ..analysis.compare.tasks import sweep_tasks
from ..analysis.compare.text import compare_lines
from ..analysis.parts import strict_json
from ..analysis.say import warner
from ..analysis.select import FitInputs, fit_inputs, fit_spec, task_setting
from ..analysis.table import from_columns, parse_map, read_table
from ..analysis.uncertainty import At
from ..errors import FitError, UsageError
from ..store.files import write_text
from ..store.layout import SweepDir
from ..store.targets import new_file
from ..sweep.spec import FitSpec
from ..sweep.types import CurvePoints, LawName

LOSS_MAPS = ("N", "D", "C_6ND", "C", "L", "U")  # the columns of L(N,D)'s runs (table.from_columns)


def _spec(sweep: SweepDir | None, args) -> FitSpec:
    """The sweep's fit section (or the defaults) with the law flags on top; no curve-law points."""
    return fit_spec(
        sweep,
        law=args.law,
        bootstrap=args.bootstrap,
        method=args.method,
        huber_delta=args.huber_delta,
        pin_E=args.pin_E,
        curve_points=CurvePoints.OFF.value,
    )


def _computes(texts: list[str]) -> list[float]:
    """--at C_6ND=X values (At.parse's checks; a point (N, D) refused: compare reports at computes)."""
    out = []
    for text in texts:
        point = At.parse(text, "--at")
        if point.C_6ND is None:
            raise UsageError(f"--at {text}: compare reports at a compute; write --at C_6ND=FLOPS (the law's compute, 6ND)")
        out.append(point.C_6ND)
    return out


def _folders(args, console: Console) -> list[SweepLaw]:
    """Each folder's runs read (every folder before any fit: a bad one fails fast), then fitted."""
    if len(args.paths) < 2:
        raise UsageError(
            "scalinglab compare: give two or more results/<sweep> folders (the first is the baseline), or --csv FILE --map group=COLUMN"
        )
    if args.map or args.baseline:
        flag = "--map" if args.map else "--baseline"
        raise UsageError(f"{flag} applies only with --csv; with folders, the first folder is the baseline")
    sweeps = [SweepDir(Path(p)) for p in args.paths]
    warn = warner(console)

    def read(path: str, sweep: SweepDir) -> FitInputs:
        return fit_inputs(sweep, left_out=lambda line: warn(f"{path}: {line}"))

    every = [(p, s, read(p, s), _spec(s, args)) for p, s in zip(args.paths, sweeps)]
    return [_fitted(path, sweep, inputs, spec, seed) for seed, (path, sweep, inputs, spec) in enumerate(every)]


def _fitted(path: str, sweep: SweepDir, inputs: FitInputs, spec: FitSpec, seed: int) -> SweepLaw:
    """A folder's law of the loss and, where it scores tasks, its task laws (the same seed: the
    loss's and the tasks' resamples are of the same sweep)."""
    scores = inputs.tasks
    tasks = sweep_tasks(scores, task_setting(sweep), spec, seed) if scores is not None and len(scores) else None
    return replace(sweep_law(path, inputs.runs, spec, seed), tasks=tasks)


def _split_maps(items: list[str]) -> tuple[str, dict[str, str]]:
    """--map group=COLUMN apart from the loss's columns (table.parse_map's checks)."""
    groups = [m for m in items if m.partition("=")[0] == "group"]
    if len(groups) != 1:
        raise UsageError("--csv: give the column that names each row's sweep once, as --map group=COLUMN")
    column = groups[0].partition("=")[2]
    mapping = parse_map([m for m in items if m not in groups])
    other = next((k for k in mapping if k not in LOSS_MAPS), None)
    if other is not None:
        raise UsageError(f"--map {other}={mapping[other]}: compare fits the loss L(N,D); map only {', '.join(LOSS_MAPS)} and group")
    twin = next((k for k, v in mapping.items() if v == column), None)
    if twin is not None:
        raise UsageError(f"--map group={column}: column {column!r} is already mapped to {twin}; map each column once")
    return column, mapping


def groups(table: pd.DataFrame, column: str, mapping: dict[str, str], baseline: str | None) -> list[tuple[str, pd.DataFrame]]:
    """The table's runs by group, in order of first appearance (--baseline's group first); every
    cell checked over the whole table first, so a bad one is named by its row in the file."""
    if column not in table:
        raise FitError(f"--map group={column}: the table has no column {column!r}; columns are {list(table.columns)}")
    runs = from_columns(table, mapping)
    empty = table[column].isna().to_numpy()
    if empty.any():
        raise FitError(f"row {int(empty.argmax()) + 1}, column {column!r}: is empty; give each row the name of its sweep")
    names = table[column].astype(str).to_numpy()
    order = list(dict.fromkeys(names))
    if len(order) < 2:
        raise FitError(f"--map group={column}: every row is in group {order[0]!r}; compare needs two groups or more")
    if baseline is not None:
        if baseline not in order:
            raise UsageError(f"--baseline {baseline}: no such group in column {column!r}; groups are {', '.join(order)}")
        order.remove(baseline)
        order.insert(0, baseline)
    return [(g, runs[names == g].reset_index(drop=True)) for g in order]


def _table(args) -> list[SweepLaw]:
    if args.paths:
        raise UsageError("scalinglab compare: give results/<sweep> folders or --csv FILE, not both")
    if not Path(args.csv).is_file():
        raise UsageError(f"--csv {args.csv}: no such file")
    column, mapping = _split_maps(args.map)
    spec = _spec(None, args)
    parts = groups(read_table(Path(args.csv)), column, mapping, args.baseline)
    return [sweep_law(name, runs, spec, seed) for seed, (name, runs) in enumerate(parts)]


def _refuse_shared(args) -> None:
    """--shared-exponents shares Chinchilla's exponents: refused (before any fit) beside a --law
    that forces another family on every sweep."""
    if args.shared_exponents and args.law is not None and not set(args.law) <= {LawName.AUTO, LawName.CHINCHILLA}:
        raise UsageError(
            f"--shared-exponents with --law {','.join(args.law)}: the shared exponents are Chinchilla's alpha and beta; "
            "give --law chinchilla or auto, or leave out --shared-exponents"
        )


def _shared(args, sweeps: list[SweepLaw], at: list[float]) -> SharedExponents:
    """The comparisons again with exponents shared, under the baseline's fit settings."""
    baseline = None if args.csv else SweepDir(Path(args.paths[0]))
    return shared_exponents(sweeps, _spec(baseline, args), at)


def main(args, console: Console) -> int:
    at = _computes(args.at)
    _refuse_shared(args)
    if args.force and not (args.figure or args.html):
        raise UsageError("--force: replaces the --figure or --html file; give --figure FILE or --html FILE")
    figure = new_file(args.figure, f"--figure {args.figure}", args.force) if args.figure else None  # checked before any work
    html = new_file(args.html, f"--html {args.html}", args.force) if args.html else None
    out = Console(file=open(os.devnull, "w")) if args.json else console  # noqa: SIM115  (closed with the process)
    sweeps = _table(args) if args.csv else _folders(args, out)
    report = compare(sweeps, at)
    if args.shared_exponents:
        report = report.model_copy(update={"shared": _shared(args, sweeps, at)})
    for line in compare_lines(report):
        out.print(line)
    if figure is not None:
        from ..analysis.compare.plots import plot_comparison  # noqa: PLC0415  (matplotlib only when a figure is asked for)

        out.print(escape(f"wrote {plot_comparison(sweeps, figure)}"))
    if html is not None:  # the figure drawn once: --figure's file, read back, or one for the page alone
        write_text(html, compare_page(report, figure.read_bytes() if figure is not None else comparison_png(sweeps)))
        out.print(escape(f"wrote {html}: open it in a browser, no server needed"))
    if args.json:
        print(strict_json(report.model_dump(mode="json")), end="")
    return 0
