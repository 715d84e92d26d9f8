"""The `scalinglab` command line: argument parsing and dispatch to commands/. Bad input: one line
on stderr, exit code 2. Importing this module, and running --help, plan, prepare, fit, plot, suggest
or status, never imports JAX."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import warnings

import pandas as pd
from rich.console import Console

from .errors import InputError, UsageError
from .store.files import DamagedResults, NotARegularFile
from .store.frame import NotASweep
from .store.targets import Unwritable
from .sweep.spec import MAX_BOOTSTRAP, FitSpec
from .sweep.types import CurvePoints, Executor, LawName, Method

DEFAULT_RESULTS = "results"
EXECUTORS = [e.value for e in Executor]  # argparse lists choices by their repr: the values, not the members
MAX_NEW_TOKENS = 100_000  # sample: tokens come one model call each; more is a typo, not a request
MAX_SEED = 2**63 - 1  # JAX's seeds are signed 64-bit integers


def whole(least: int, most: int | None = None):
    """An argparse type: a whole number in [least, most]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least or (most is not None and value > most):
            within = f"at least {least}" if most is None else f"from {least} to {most}"
            raise argparse.ArgumentTypeError(f"{text}: give a whole number {within}")
        return value

    return parse


def real(least: float):
    """An argparse type: a finite number at least `least` (NaN and infinities are not numbers here)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= least):
            raise argparse.ArgumentTypeError(f"{text}: give a finite number at least {least:g}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _law_flags(p: argparse.ArgumentParser, curves: bool = False) -> None:
    """Overrides of the sweep's fit section for L(N,D) and its bootstrap (curves: fit's, which
    also fits the curve laws)."""
    with_curves = "; with --curves: multi_power (the default) or annealing" if curves else ""
    fields = FitSpec.model_fields
    p.add_argument("--method", choices=[m.value for m in Method], help=f"L(N,D) solver (default {fields['method'].default})")
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="K",
        help=f"bootstrap resamples for intervals (default {fields['bootstrap'].default}; 0: none; at most {MAX_BOOTSTRAP:,})"
        + ("; with --curves: whole runs resampled (default 0)" if curves else ""),
    )
    p.add_argument("--huber-delta", type=float, help=f"Huber threshold on log-loss residuals (default {fields['huber_delta'].default:g})")
    p.add_argument(
        "--law",
        type=lambda text: text.split(","),
        metavar="NAME[,NAME...]",
        help=f"the law of the loss: auto (the default), one of {', '.join(n for n in LawName if n != LawName.AUTO)}, "
        f"or several to choose among by backtest{with_curves}",
    )
    p.add_argument("--pin-E", dest="pin_E", type=float, metavar="E", help="power_C: pin its irreducible loss at E instead of fitting it")


def _fit_flags(p: argparse.ArgumentParser, curves: bool = False) -> None:
    """Overrides of the sweep's fit section (or of the defaults, for --csv)."""
    _law_flags(p, curves)
    p.add_argument(
        "--holdout",
        type=float,
        metavar="FRACTION",
        help=f"extrapolation check: share of the largest runs held out (default {FitSpec.model_fields['holdout_fraction'].default})",
    )
    p.add_argument(
        "--curve-points",
        dest="curve_points",
        choices=[c.value for c in CurvePoints],
        help="add each size's curve-law predictions between its trained D to the L(N,D) fit: off (default), on, "
        "or auto (kept only where they lower the backtest error)",
    )


def _suggest_command(sub) -> None:
    suggest = sub.add_parser("suggest", help="the next runs that most narrow the predicted loss at a target compute, as a sweep YAML")
    suggest.add_argument("path", help="results/<sweep> folder")
    suggest.add_argument(
        "--target",
        required=True,
        metavar="C_6ND=FLOPS",
        help="the compute to predict the loss at, e.g. C_6ND=1e21 (the law's compute, 6ND)",
    )
    suggest.add_argument(
        "--budget", type=float, metavar="FLOPS", help="C_6ND (6ND) the new runs may spend together (default: as much as the sweep's runs)"
    )
    suggest.add_argument("--out", metavar="FILE", help="the sweep YAML to write (default: <sweep>-suggest.yaml)")
    suggest.add_argument("--force", action="store_true", help="replace the --out file if it exists")
    _law_flags(suggest)
    suggest.set_defaults(command=("suggest", "main"))


def _model_commands(sub) -> None:
    """The verbs that take a finished run's weights out: export, sample."""
    export = sub.add_parser("export", help="write a finished run as a Hugging Face transformers model folder")
    export.add_argument("run", help="results/<sweep>/runs/<run_id> folder")
    export.add_argument("--format", choices=["hf"], default="hf", help="hf: a GPT-2 folder (config, safetensors, tokenizer)")
    export.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")
    export.set_defaults(command=("export", "main"))

    sample = sub.add_parser("sample", help="print text continuing a prompt, from a finished run's weights")
    sample.add_argument("run", help="results/<sweep>/runs/<run_id> folder")
    sample.add_argument("--prompt", required=True, metavar="TEXT", help="the text to continue")
    sample.add_argument(
        "--max-new-tokens",
        type=whole(1, MAX_NEW_TOKENS),
        default=64,
        metavar="K",
        help=f"tokens to add (default 64; at most {MAX_NEW_TOKENS:,})",
    )
    sample.add_argument("--temperature", type=real(0), default=0.0, metavar="T", help="0: greedy (default); else sample")
    sample.add_argument("--top-k", type=whole(0), default=0, metavar="K", help="sample from the K likeliest tokens only (default 0: all)")
    sample.add_argument("--seed", type=whole(0, MAX_SEED), default=0, metavar="S", help="random seed for sampling (default 0)")
    sample.set_defaults(command=("sample", "main"))


def _fit_command(sub) -> None:
    """fit: a sweep's laws, or any table's."""
    fit = sub.add_parser("fit", help="fit scaling laws to a sweep's results or to a CSV")
    fit.add_argument("path", nargs="?", help="results/<sweep> folder")
    fit.add_argument("--csv", metavar="FILE", help="fit a table with columns N, D (or C_6ND) and L instead")
    fit.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="X=COLUMN",
        help="CSV column for N, D, C_6ND (6ND FLOPs: gives D), C (the FLOPs the runs computed), L or U (unique training tokens), e.g. "
        '--map N="Model Size"; task_loss and acc (and run, whose rows are one run\'s checkpoints) fit a '
        "task's accuracy in two steps instead; with --curves: run, step, lr and loss (one row per logged step of a run; "
        "the rate is interpolated between listed steps, and rises linearly from 0 before the first) and optionally N",
    )
    fit.add_argument("--chance", type=float, metavar="P", help="task fit: the chance accuracy, the floor of acc (default 0)")
    fit.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="C_6ND=X | N=X,D=Y[,U=Z]",
        help="N_opt, D_opt and loss at the law's compute C_6ND = 6ND, or the loss at (N, D), with intervals; repeatable",
    )
    fit.add_argument("--json", action="store_true", help="print the fit as JSON (fit.json's SweepFit: law, frontier, predictions, ...)")
    _fit_flags(fit, curves=True)
    _curve_flags(fit)
    fit.set_defaults(command=("fit", "main"))


def _curve_flags(fit: argparse.ArgumentParser) -> None:
    """fit --curves: a curve law over each run's steps, per model size N (docs/curves.md)."""
    fit.add_argument(
        "--curves",
        action="store_true",
        help="fit a curve law (the loss along each run's steps under its learning-rate schedule) jointly to each size N's runs; "
        "writes curves.json and figures/curves_N<N>.png of a sweep",
    )
    fit.add_argument(
        "--curve-loss",
        choices=["train", "val"],
        help="with --curves, a sweep's loss: val, the validation evaluations (the default where every run has 16 or more, "
        "or some run has no training curve), or train, the dense training curve (the default otherwise)",
    )
    fit.add_argument(
        "--schedule",
        metavar="FILE",
        help="with --curves: a CSV of columns step and lr (rates between listed steps interpolated, a linear warmup from 0 "
        "before the first); prints the loss each fitted size reaches at each listed step",
    )
    fit.add_argument(
        "--skip-early",
        type=real(0),
        metavar="SHARE",
        help="with --curves: leave the points of each run's first SHARE of steps out of the fit (a small model's fast early "
        "phase, which the laws do not describe); default 0.1",
    )
    fit.add_argument("--out", metavar="FILE", help="with --schedule: also write the predicted losses as CSV")
    fit.add_argument("--force", action="store_true", help="replace the --out file if it exists")


def _compare_command(sub) -> None:
    """compare: sweeps, or a table's groups, as a compute multiplier of the first (docs/compare.md)."""
    compare = sub.add_parser("compare", help="compare sweeps as a compute multiplier k of the first (the baseline)")
    compare.add_argument("paths", nargs="*", help="results/<sweep> folders, the first the baseline A")
    compare.add_argument("--csv", metavar="FILE", help="compare the groups of one table instead (with --map group=COLUMN)")
    compare.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="X=COLUMN",
        help="CSV column for group (each row's sweep; required with --csv), N, D (or C_6ND), L, and optionally U or C",
    )
    compare.add_argument("--baseline", metavar="NAME", help="with --csv: the group to compare the others with (default: the first row's)")
    compare.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="C_6ND=X",
        help="also report at this compute C_6ND = 6ND (besides the runs' lowest, middle and highest); repeatable",
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument(
        "--figure", metavar="FILE", help="also draw the comparison into FILE (PNG): loss against compute per sweep, and k(C), with bands"
    )
    compare.add_argument(
        "--html", metavar="FILE", help="also write the comparison into FILE, one page that opens from disk: laws, tables, verdicts, figure"
    )
    compare.add_argument("--force", action="store_true", help="replace the --figure or --html file if it exists")
    compare.add_argument(
        "--shared-exponents",
        action="store_true",
        help="also fit every sweep together with Chinchilla's alpha and beta shared, and compare again on that fit",
    )
    _law_flags(compare)
    compare.set_defaults(command=("compare", "main"))


def _figure_commands(sub) -> None:
    """The verbs that draw a sweep from disk: report, plot."""
    report = sub.add_parser("report", help="write results/<sweep>/report.html: figures, laws, held-out checks, runs")
    report.add_argument("path", help="results/<sweep> folder")
    report.set_defaults(command=("report", "main"))

    plot = sub.add_parser("plot", help="regenerate a sweep's figures (and fit.json) from results/ alone")
    plot.add_argument("path", help="results/<sweep> folder")
    _fit_flags(plot)
    plot.set_defaults(command=("fit", "plot"))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scalinglab", description="Scaling-law sweeps: plan, train, fit, plot.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    plan = sub.add_parser("plan", help="print a sweep's runs and what they cost")
    plan.add_argument("sweep", help="sweep YAML file")
    plan.add_argument("--csv", metavar="FILE", help="also write the run table as CSV")
    plan.add_argument("--json", metavar="FILE", help="also write the run table as JSON")
    plan.add_argument("--executor", choices=EXECUTORS, help="executor for the wall-time estimate")
    plan.add_argument("--force", action="store_true", help="replace the --csv or --json file if it exists")
    plan.set_defaults(command=("plan", "main"))

    prepare = sub.add_parser("prepare", help="tokenize a sweep's corpus into the cache (run does it too, before its jobs)")
    prepare.add_argument("sweep", help="sweep YAML file")
    prepare.set_defaults(command=("prepare", "main"))

    run = sub.add_parser("run", help="train every run not yet done, then fit and plot")
    run.add_argument("sweep", help="sweep YAML file")
    run.add_argument("--executor", choices=EXECUTORS, help="override launch.executor")
    run.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="runs go to DIR/<name>/ (default: results)")
    run.add_argument("--max-parallel", type=whole(1), metavar="N", help="override launch.max_parallel")
    run.add_argument("--threads-per-job", type=whole(1), metavar="N", help="override launch.threads_per_job")
    run.set_defaults(command=("run", "main"))

    status = sub.add_parser(
        "status", help="every run's state (pending, running, preempted, done, failed, ...) from results/ and the scheduler"
    )
    status.add_argument("path", help="results/<sweep> folder")
    status.set_defaults(command=("status", "main"))

    cancel = sub.add_parser("cancel", help="cancel a sweep's queued and running SLURM jobs")
    cancel.add_argument("path", help="results/<sweep> folder")
    cancel.set_defaults(command=("status", "cancel"))

    _fit_command(sub)
    _suggest_command(sub)
    _compare_command(sub)
    _model_commands(sub)
    _figure_commands(sub)
    return p


def _warn_on_stderr() -> None:
    """Damaged results files: one line each on stderr (stdout may be JSON), once per message."""
    shown, original = set(), warnings.showwarning

    def show(message, category, *args, **kwargs):
        if not issubclass(category, DamagedResults):
            return original(message, category, *args, **kwargs)
        if str(message) not in shown:
            shown.add(str(message))
            print(f"scalinglab: warning: {message}", file=sys.stderr)

    warnings.simplefilter("always", DamagedResults)
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes: no wrapped tables
    with warnings.catch_warnings():
        _warn_on_stderr()
        try:
            args = build_parser().parse_args(argv)
            module, function = args.command  # imported only when used: `--help` and `fit` start fast
            return getattr(importlib.import_module(f"{__package__}.commands.{module}"), function)(args, console)
        except (InputError, NotASweep, NotARegularFile, Unwritable, pd.errors.ParserError) as e:
            print(f"scalinglab: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
