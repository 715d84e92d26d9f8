"""The `scalinglab` command: plan, run, fit, plot. Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from . import planner, results, spec
from .analysis import analyze
from .fit import FitError, from_columns
from .spec import EXECUTORS, SpecError

DEFAULT_RESULTS = "results"


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# ---- plan -------------------------------------------------------------------------------------


def plan_table(runs: list[spec.RunSpec]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": r.run_id,
                "n_layers": r.n_layers,
                "d_model": r.d_model,
                "n_heads": r.n_heads,
                "N": r.N,
                "N_total": r.N_total,
                "D": r.D,
                "tokens_per_param": r.D / r.N,
                "steps": r.steps,
                "seed": r.seed,
                "role": _role(r),
                "flops_per_token": r.flops_per_token,
                "C": r.C,
                "job_flops": r.job_flops,
            }
            for r in runs
        ]
    )


def _role(r: spec.RunSpec) -> str:
    if r.role == "trunk":
        return "trunk"
    return f"branch@{r.decay_start}" if r.trunk_id else "run"


def _print_plan(sweep: spec.SweepSpec, runs: list[spec.RunSpec], console: Console) -> None:
    from .launch import max_parallel  # noqa: PLC0415  (submitit import only where needed)

    table = Table(title=f"sweep {sweep.name}: {len(runs)} runs")
    for col in ("run_id", "n_layers", "d_model", "n_heads", "N", "N_total", "D", "D/N", "steps", "seed", "role", "C"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(
            r.run_id, str(r.n_layers), str(r.d_model), str(r.n_heads), f"{r.N:,}", f"{r.N_total:,}",
            f"{r.D:,}", f"{r.D / r.N:.1f}", f"{r.steps:,}", str(r.seed), _role(r), f"{r.C:.3g}",
        )  # fmt: skip
    console.print(table)
    parallel = max_parallel(sweep.launch, len(runs))
    est = planner.estimate_seconds(runs, parallel)
    spent = sum(r.job_flops for r in runs)
    independent = sum(r.C for r in planner.grid_points(runs))
    shared = f" (independent runs: {independent:.3g}, {1 - spent / independent:.0%} saved by cooldown branches)" if spent < independent else ""
    console.print(
        f"runs {len(planner.grid_points(runs))} · total C {spent:.3g} FLOPs{shared} · "
        f"estimated wall time here {est / 60:.1f} min ({parallel} job(s) at once, {sweep.launch.executor})"
    )
    console.print("C = FLOPs per token x D; FLOPs per token = 6(N + d_model*vocab) + 12*n_layers*seq_len*d_model")


def cmd_plan(args, console: Console) -> int:
    sweep = spec.with_launch(spec.load(args.sweep), executor=args.executor)
    runs = planner.plan(sweep)
    _print_plan(sweep, runs, console)
    table = plan_table(runs)
    if args.csv:
        table.to_csv(args.csv, index=False)
        console.print(f"wrote {args.csv}")
    if args.json:
        Path(args.json).write_text(table.to_json(orient="records", indent=1))
        console.print(f"wrote {args.json}")
    return 0


# ---- run --------------------------------------------------------------------------------------


def _check_data(sweep: spec.SweepSpec) -> None:
    """Reads the corpus once before anything is written, so bad data fails fast with exit 2; this
    also trains and caches a BPE tokenizer once, before the jobs start."""
    from . import data  # noqa: PLC0415  (numpy only; kept out of `fit`/`plot` start-up)

    d = sweep.data
    corpus = data.load_corpus(d.source, d.path, d.text_field, d.tokenizer, d.vocab_size, d.val_fraction)
    data.val_windows(corpus.val, sweep.model.seq_len, sweep.data.val_tokens)
    data.batch(corpus.train, sweep.model.seq_len, 1, 0, 0)


def cmd_run(args, console: Console) -> int:
    from .launch import launch  # noqa: PLC0415

    sweep = spec.with_launch(
        spec.load(args.sweep),
        executor=args.executor,
        max_parallel=args.max_parallel,
        threads_per_job=args.threads_per_job,
    )
    runs = planner.plan(sweep)
    _check_data(sweep)
    sweep_dir = Path(args.results) / sweep.name
    console.print(f"sweep {sweep.name}: {len(runs)} runs -> {sweep_dir}/ ({sweep.launch.executor} executor)")
    results.write_json(sweep_dir / "sweep.json", sweep.model_dump(mode="json"))
    t0 = time.perf_counter()
    outcome = launch(runs, sweep.launch, sweep_dir, console)
    cancelled = f", {outcome.cancelled} cancelled" if outcome.cancelled else ""
    console.print(
        f"{outcome.done} trained, {outcome.skipped} already done, {outcome.failed} failed{cancelled} "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    try:
        _report(sweep_dir, sweep.fit, console)
    except FitError as e:
        console.print(f"no fit yet: {e}")
    return 1 if outcome.failed else 0


# ---- status and cancel ------------------------------------------------------------------------


def _load(path: str | Path, **kwargs) -> pd.DataFrame:
    try:
        return results.load(path, **kwargs)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def _sweep_runs(path: str) -> tuple[Path, list[dict]]:
    """Every run of a results/<sweep> folder, cooldown trunks included, by N, D and seed."""
    runs = _load(path, trunks=True).to_dict("records")
    damaged = [r for r in runs if r["status"] == results.DAMAGED]  # their N and D may be unknown
    return Path(path), sorted((r for r in runs if r not in damaged), key=lambda r: (r["N"], r["D"], r["seed"])) + damaged


def cmd_status(args, console: Console) -> int:
    from . import scheduler  # noqa: PLC0415

    sweep_dir, runs = _sweep_runs(args.path)
    try:
        states = {s.run_id: s for s in scheduler.run_states(sweep_dir, [r["run_id"] for r in runs])}
    except scheduler.SchedulerError as e:
        raise UsageError(f"{args.path}: {e}") from e
    for r in runs:  # a damaged run.json: whatever its summary says, the run is not usable as it is
        if r["status"] == results.DAMAGED:
            states[r["run_id"]] = scheduler.RunState(r["run_id"], results.DAMAGED, states[r["run_id"]].job_id, r["error"])
    table = Table(title=f"{sweep_dir.name}: {len(runs)} runs")
    for col in ("run_id", "N", "D", "role", "state", "job", "detail"):
        table.add_column(col, justify="left" if col in ("state", "detail") else "right")
    colors = {"done": "green", "running": "cyan", "failed": "red", "diverged": "red", "damaged": "red", "cancelled": "yellow",
              "preempted": "yellow"}
    for r in runs:
        st = states[r["run_id"]]
        state = f"[{colors[st.state]}]{st.state}[/]" if st.state in colors else st.state
        role = "trunk" if r.get("role") == "trunk" else "branch" if pd.notna(r.get("trunk_id")) else ""
        size = [f"{int(r[k]):,}" if pd.notna(r.get(k)) else "?" for k in ("N", "D")]
        table.add_row(r["run_id"], *size, role, state, st.job_id or "", st.detail)
    console.print(table)
    counts = {state: sum(s.state == state for s in states.values()) for state in scheduler.STATES}
    console.print(" · ".join(f"{n} {state}" for state, n in counts.items() if n))
    return 0


def cmd_cancel(args, console: Console) -> int:
    from . import scheduler  # noqa: PLC0415

    sweep_dir, runs = _sweep_runs(args.path)
    try:
        cancelled = scheduler.cancel(sweep_dir, [r["run_id"] for r in runs])
    except scheduler.SchedulerError as e:
        raise UsageError(f"{args.path}: {e}") from e
    if not cancelled:
        console.print("no queued or running SLURM jobs in this sweep (local jobs stop with Ctrl-C on their `scalinglab run`)")
        return 0
    console.print(f"cancelled {len(cancelled)} job(s): {', '.join(s.job_id for s in cancelled)}; `scalinglab run` trains their runs again")
    return 0


# ---- fit and plot -----------------------------------------------------------------------------


def _finished_runs(sweep_dir: Path, console: Console) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The done runs of a sweep with a usable final loss, and their evaluations with C_seen (FLOPs
    so far). Diverged runs and runs whose loss is not a positive number are left out, by name."""
    df = _load(sweep_dir)
    status = df["status"] if "status" in df else pd.Series("pending", index=df.index)
    diverged = df[status == "diverged"]
    if len(diverged):
        console.print(f"[yellow]warning[/]: {len(diverged)} diverged run(s) left out of the fits: " + ", ".join(
            f"{r.run_id} (N={r.N:,}, D={r.D:,})" for r in diverged.itertuples()))
    done = df[status == "done"]
    L = pd.to_numeric(done["L"], errors="coerce") if "L" in done else pd.Series(dtype=float)
    bad = done[~(L > 0) | ~np.isfinite(L)]
    if len(bad):
        console.print(f"[yellow]warning[/]: {len(bad)} run(s) with a final loss that is not a positive number left out of the fits: "
                      + ", ".join(f"{r.run_id} (L={r.L})" for r in bad.itertuples()))
    done = done.drop(bad.index)
    if done.empty:
        what = f"all {len(diverged)} finished runs diverged" if len(diverged) and not len(bad) else "no finished runs with a usable loss yet"
        raise FitError(f"{sweep_dir}: {what}; nothing to fit")
    evals = results.load(sweep_dir, per_eval=True)
    if evals.empty:  # every evaluation record damaged: the final losses still fit
        return done, None
    evals = evals[evals["run_id"].isin(done["run_id"])].copy()
    evals["C_seen"] = evals["tokens"] * evals["flops_per_token"]
    return done, evals


def _fit_spec(sweep_dir: Path | None, args) -> spec.FitSpec:
    """The sweep's fit section (or the defaults), with command-line flags on top."""
    saved, problem = results.read_record(Path(sweep_dir) / "sweep.json", {"fit"}) if sweep_dir else (None, None)
    if problem is not None:
        results.report_damage(Path(sweep_dir) / "sweep.json", f"{problem}; fitting with the default fit settings")
    base = saved["fit"] if saved else {}
    flags = {"huber_delta": args.huber_delta, "method": args.method, "bootstrap": args.bootstrap,
             "holdout_fraction": args.holdout}
    try:
        return spec.FitSpec.model_validate({**base, **{k: v for k, v in flags.items() if v is not None}})
    except ValidationError as e:
        err = e.errors()[0]
        raise UsageError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def _report(sweep_dir: Path, fit: spec.FitSpec, console: Console, predictions=(), write_figures: bool = True) -> dict:
    """Fits the finished runs of a sweep, saves fit.json, prints the laws, regenerates figures."""
    from .plot import plot_all  # noqa: PLC0415  (matplotlib only when figures are made)

    runs, evals = _finished_runs(sweep_dir, console)
    fits = analyze(runs, evals, fit, predictions)
    results.write_json(Path(sweep_dir) / "fit.json", fits)
    _print_fits(fits, console)
    if write_figures:
        for path in plot_all(runs, fits, Path(sweep_dir) / "figures", evals):
            console.print(f"wrote {path}")
    return fits


def _ci(fits: dict, key: str) -> str:
    ci = fits.get("ci", {}).get(key)
    return f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""


def _print_fits(fits: dict, console: Console) -> None:
    if "alpha" in fits:
        level = f", {fits['level']:.0%} bootstrap intervals over {fits['n_bootstrap']} resamples" if fits["ci"] else ""
        console.print(f"L(N,D) = E + A/N^alpha + B/D^beta over {fits['n_points']} runs ({fits['method']}{level}):")
        for k in ("E", "A", "B", "alpha", "beta"):
            console.print(f"  {k:<5} = {fits[k]:.4g}{_ci(fits, k)}")
        console.print(f"  compute-optimal (C = 6ND): N_opt ~ C^{fits['a']:.3f}{_ci(fits, 'a')}, D_opt ~ C^{fits['b']:.3f}{_ci(fits, 'b')}")
    else:
        console.print(f"L(N,D) not fitted: {fits['skipped']}")
    for law in fits["power_laws"]:
        e = f"E = {law['E']:.4g}  " if law["E"] else ""
        console.print(f"{law['form']:<18} {e}a = {law['a']:.4g}  b = {law['b']:.4f}  ({law['at']}, {law['n_points']} runs)")
    iso = fits["isoflop"]
    if "skipped" not in iso:
        console.print(f"IsoFLOP (Approach 2, {len(iso['budgets'])} budgets): N_opt ~ C^{iso['N_opt']['a']:.3f}, D_opt ~ C^{iso['D_opt']['b']:.3f}")
    env = fits.get("envelope", {})
    if env and "skipped" not in env:
        console.print(f"envelope (Approach 1): N_opt ~ C^{env['N_opt_law']['a']:.3f}")
    ext = fits["extrapolation"]
    if "skipped" not in ext:
        console.print(
            f"extrapolation check: fitted on {ext['n_fit']} runs, predicted the {len(ext['held_out'])} largest by {ext['by']}: "
            f"mean |error| {ext['mean_abs_rel_error']:.2%}, max {ext['max_abs_rel_error']:.2%}"
        )
        for h in ext["held_out"]:
            ci = f" [{h['L_pred_ci'][0]:.4f}, {h['L_pred_ci'][1]:.4f}]" if h.get("L_pred_ci") else ""
            console.print(f"  N = {h['N']:,.0f}, D = {h['D']:,.0f}: L = {h['L']:.4f}, predicted {h['L_pred']:.4f}{ci} ({h['rel_error']:+.2%})")
    for p in fits.get("predictions", []):
        at = f"C = {p['C']:.3g}" if "C" in p else f"N = {p['N']:.3g}, D = {p['D']:.3g}"
        parts = [f"{k} = {v['value']:.4g}" + (f" [{v['ci'][0]:.4g}, {v['ci'][1]:.4g}]" if v["ci"] else "")
                 for k, v in p.items() if isinstance(v, dict)]
        console.print(f"predict at {at}: " + ", ".join(parts))


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or ours not in ("N", "D", "C", "L"):
            raise UsageError(f"--map {item}: expected N=COLUMN, D=COLUMN, C=COLUMN or L=COLUMN")
        mapping[ours] = theirs
    return mapping


def _parse_predict(item: str) -> dict:
    """'C=1e21' or 'N=1e9,D=2e10' -> {'C': 1e21} or {'N': 1e9, 'D': 2e10}."""
    try:
        point = {k.strip(): float(v) for k, v in (part.split("=") for part in item.split(","))}
    except ValueError:
        point = {}
    if set(point) not in ({"C"}, {"N", "D"}) or min(point.values()) <= 0:
        raise UsageError(f"--predict {item}: expected C=FLOPS or N=PARAMS,D=TOKENS with positive numbers")
    return point


def cmd_fit(args, console: Console) -> int:
    if (args.path is None) == (args.csv is None):
        raise UsageError("scalinglab fit: give a results/<sweep> folder or --csv FILE, not both or neither")
    predictions = [_parse_predict(p) for p in args.predict]
    out = Console(file=open(os.devnull, "w")) if args.json else console  # noqa: SIM115
    if args.csv:
        if not Path(args.csv).is_file():
            raise UsageError(f"--csv {args.csv}: no such file")
        table = from_columns(pd.read_csv(args.csv), _parse_map(args.map))
        fits = analyze(table, None, _fit_spec(None, args), predictions)
        _print_fits(fits, out)
    else:
        if args.map:
            raise UsageError("--map only applies with --csv")
        fits = _report(Path(args.path), _fit_spec(Path(args.path), args), out, predictions, write_figures=False)
        out.print(f"wrote {Path(args.path) / 'fit.json'}")
    if args.json:
        print(json.dumps(fits, indent=1))
    return 0


def cmd_plot(args, console: Console) -> int:
    path = Path(args.path)
    _report(path, _fit_spec(path, args), console)
    return 0


# ---- entry point ------------------------------------------------------------------------------


def _fit_flags(p: argparse.ArgumentParser) -> None:
    """Overrides of the sweep's fit section (or of the defaults, for --csv)."""
    p.add_argument("--method", choices=spec.FitSpec.model_fields["method"].annotation.__args__, help="L(N,D) solver (default varpro)")
    p.add_argument("--bootstrap", type=int, metavar="K", help="bootstrap resamples for intervals (default 200; 0: none)")
    p.add_argument("--holdout", type=float, metavar="FRACTION", help="extrapolation check: share of largest-C runs held out (default 0.2)")
    p.add_argument("--huber-delta", type=float, help="Huber threshold on log-loss residuals (default 1e-3)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scalinglab", description="Scaling-law sweeps: plan, train, fit, plot.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    plan = sub.add_parser("plan", help="print a sweep's runs and what they cost")
    plan.add_argument("sweep", help="sweep YAML file")
    plan.add_argument("--csv", metavar="FILE", help="also write the run table as CSV")
    plan.add_argument("--json", metavar="FILE", help="also write the run table as JSON")
    plan.add_argument("--executor", choices=EXECUTORS, help="executor for the wall-time estimate")
    plan.set_defaults(func=cmd_plan)

    run = sub.add_parser("run", help="train every run not yet done, then fit and plot")
    run.add_argument("sweep", help="sweep YAML file")
    run.add_argument("--executor", choices=EXECUTORS, help="override launch.executor")
    run.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="runs go to DIR/<name>/ (default: results)")
    run.add_argument("--max-parallel", type=int, metavar="N", help="override launch.max_parallel")
    run.add_argument("--threads-per-job", type=int, metavar="N", help="override launch.threads_per_job")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="every run's state (pending, running, preempted, done, failed, ...) from results/ and the scheduler")
    status.add_argument("path", help="results/<sweep> folder")
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser("cancel", help="cancel a sweep's queued and running SLURM jobs")
    cancel.add_argument("path", help="results/<sweep> folder")
    cancel.set_defaults(func=cmd_cancel)

    fit = sub.add_parser("fit", help="fit scaling laws to a sweep's results or to a CSV")
    fit.add_argument("path", nargs="?", help="results/<sweep> folder")
    fit.add_argument("--csv", metavar="FILE", help="fit a table with columns N, D (or C) and L instead")
    fit.add_argument("--map", action="append", default=[], metavar="X=COLUMN", help='CSV column for N, D, C or L, e.g. --map N="Model Size"')
    fit.add_argument("--predict", action="append", default=[], metavar="C=X | N=X,D=Y",
                     help="N_opt, D_opt and loss at compute C, or the loss at (N, D), with intervals; repeatable")
    fit.add_argument("--json", action="store_true", help="print the fit as JSON (E, A, B, alpha, beta, ci, frontier, ...)")
    _fit_flags(fit)
    fit.set_defaults(func=cmd_fit)

    plot = sub.add_parser("plot", help="regenerate a sweep's figures (and fit.json) from results/ alone")
    plot.add_argument("path", help="results/<sweep> folder")
    _fit_flags(plot)
    plot.set_defaults(func=cmd_plot)
    return p


def _warn_on_stderr() -> None:
    """Damaged results files: one line each on stderr (stdout may be JSON), once per message."""
    shown, original = set(), warnings.showwarning

    def show(message, category, *args, **kwargs):
        if not issubclass(category, results.DamagedResults):
            return original(message, category, *args, **kwargs)
        if str(message) not in shown:
            shown.add(str(message))
            print(f"scalinglab: warning: {message}", file=sys.stderr)

    warnings.simplefilter("always", results.DamagedResults)
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes: no wrapped tables
    with warnings.catch_warnings():
        _warn_on_stderr()
        try:
            args = build_parser().parse_args(argv)
            return args.func(args, console)
        except (SpecError, FitError, UsageError, pd.errors.ParserError) as e:
            print(f"scalinglab: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
