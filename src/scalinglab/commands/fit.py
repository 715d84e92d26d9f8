"""`scalinglab fit` and `scalinglab plot`: the laws of a sweep (or of any table), printed, saved in
fit.json, drawn. Imports no JAX."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from pydantic import ValidationError
from rich.console import Console

from ..analysis.laws import from_columns
from ..analysis.report import analyze
from ..analysis.select import fit_inputs, saved_fit_spec, task_setting
from ..analysis.task_laws import bootstrap_two_step, fit_two_step, predict_two_step, task_columns, two_step_summary
from ..analysis.uncertainty import LEVEL, LOOSE
from ..errors import UsageError
from ..store.files import write_json
from ..store.layout import SweepDir
from ..sweep.spec import FitSpec


def fit_spec(sweep: SweepDir | None, args) -> FitSpec:
    """The sweep's fit section (or the defaults), with command-line flags on top."""
    try:
        return saved_fit_spec(sweep, huber_delta=args.huber_delta, method=args.method, bootstrap=args.bootstrap,
                              holdout_fraction=getattr(args, "holdout", None))  # suggest has no holdout
    except ValidationError as e:
        err = e.errors()[0]
        raise UsageError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def report(sweep: SweepDir, fit: FitSpec, console: Console, predictions=(), write_figures: bool = True) -> dict:
    """Fits the finished runs of a sweep, saves fit.json, prints the laws, regenerates figures."""
    inputs = fit_inputs(sweep, left_out=lambda line: console.print(f"[yellow]warning[/]: {line}"))
    fits = analyze(inputs.runs, inputs.evals, fit, predictions, inputs.tasks, task_setting(sweep))
    write_json(sweep.fit_json, fits)
    print_fits(fits, console)
    if write_figures:
        from ..analysis.plot import plot_all  # noqa: PLC0415  (matplotlib only when figures are made)
        from ..analysis.task_plots import plot_tasks  # noqa: PLC0415

        paths = plot_all(inputs.runs, fits, sweep.figures, inputs.evals)
        if "tasks" in fits:
            paths += plot_tasks(inputs.tasks, fits["tasks"], sweep.figures)
        for path in paths:
            console.print(f"wrote {path}")
    return fits


def _ci(fits: dict, key: str) -> str:
    ci = fits.get("ci", {}).get(key)
    return f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""


def _print_law(fits: dict, console: Console) -> None:
    if "alpha" not in fits:
        console.print(f"L(N,D) not fitted: {fits['skipped']}")
        return
    level = f", {fits['level']:.0%} bootstrap intervals over {fits['n_bootstrap']} resamples" if fits["ci"] else ""
    console.print(f"L(N,D) = E + A/N^alpha + B/D^beta over {fits['n_points']} runs ({fits['method']}{level}):")
    for k in ("E", "A", "B", "alpha", "beta"):
        console.print(f"  {k:<5} = {fits[k]:.4g}{_ci(fits, k)}")
    console.print(f"  compute-optimal (C = 6ND): N_opt ~ C^{fits['a']:.3f}{_ci(fits, 'a')}, D_opt ~ C^{fits['b']:.3f}{_ci(fits, 'b')}")
    if fits.get("loose"):
        console.print(f"  not pinned: {', '.join(fits['loose'])} (interval reaching 0 or wider than {LOOSE:g}x); these runs leave the "
                      "law open there and predictions beyond them loose: wider spans of N and D narrow it")


def _print_checks(fits: dict, console: Console) -> None:
    ext = fits["extrapolation"]
    if "skipped" in ext:
        return
    console.print(
        f"extrapolation check: fitted on {ext['n_fit']} runs, predicted the {len(ext['held_out'])} largest by {ext['by']}: "
        f"mean |error| {ext['mean_abs_rel_error']:.2%}, max {ext['max_abs_rel_error']:.2%}"
    )
    for h in ext["held_out"]:
        ci = f" [{h['L_pred_ci'][0]:.4f}, {h['L_pred_ci'][1]:.4f}]" if h.get("L_pred_ci") else ""
        console.print(f"  N = {h['N']:,.0f}, D = {h['D']:,.0f}: L = {h['L']:.4f}, predicted {h['L_pred']:.4f}{ci} ({h['rel_error']:+.2%})")


def _print_hyper(hyper: dict, console: Console) -> None:
    cells = hyper["cells"]
    edge = sum(not c["lr_interior"] for c in cells)
    console.print(f"tuned {', '.join(hyper['axes'])}: {len(cells)} cells (N, D), each fitted at its best"
                  + (f"; {edge} with lr* at the edge of grid.lr (widen it there)" if edge else ""))
    for law in hyper["laws"].values():
        if "skipped" in law:
            console.print(f"  {law['form']}: skipped, {law['skipped']}")
            continue
        ci = law.get("ci", {})
        parts = [f"b_{k} = {b:.3f}" + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if k in ci else "") for k, b in law["exponents"].items()]
        console.print(f"  {law['form']}: a = {law['a']:.3g}, " + ", ".join(parts) + f" ({law['n_cells']} cells)")


def _print_task(task: str, t: dict, console: Console) -> None:
    ext, emergence = t.get("extrapolation", {}), t.get("emergence", {})
    if "held_out" in ext:
        console.print(f"  {task}: held-out runs' acc off by {ext['mean_abs_error_points']:.1f} points on average (two-step)"
                      + (f", {ext['single_step_mean_abs_error_points']:.1f} (single-step)" if "single_step_mean_abs_error_points" in ext else ""))
        for h in ext["held_out"]:
            ci = f" [{h['acc_pred_ci'][0]:.3f}, {h['acc_pred_ci'][1]:.3f}]" if h.get("acc_pred_ci") else ""
            console.print(f"    N = {h['N']:,.0f}, D = {h['D']:,.0f}: acc {h['acc']:.3f}, predicted {h['acc_pred']:.3f}{ci}")
    else:
        console.print(f"  {task}: two-step law not fitted: {t.get('two_step', ext).get('skipped', '')}")
    if "verdict" in emergence:
        console.print(f"    emergence: {emergence['verdict']}")


def _print_tasks(tasks: dict, console: Console) -> None:
    console.print(f"tasks ({tasks['shots']}-shot, {tasks['strategy']} demonstrations; "
                  f"{len(tasks['held_out'])} run(s) held out of the task laws):")
    for task, t in tasks["tasks"].items():
        _print_task(task, t, console)
    for task, s in tasks["strategy_vs_scale"].items():
        for spread in s["spread"]:
            if "finding" in spread:
                console.print(f"  {task}, {spread['shots']}-shot: {spread['finding']}")


def print_fits(fits: dict, console: Console) -> None:
    if "hyperparameters" in fits:
        _print_hyper(fits["hyperparameters"], console)
    _print_law(fits, console)
    for law in fits["power_laws"]:
        e = f"E = {law['E']:.4g}  " if law["E"] else ""
        console.print(f"{law['form']:<18} {e}a = {law['a']:.4g}  b = {law['b']:.4f}  ({law['at']}, {law['n_points']} runs)")
    iso = fits["isoflop"]
    if "skipped" not in iso:
        console.print(f"IsoFLOP (Approach 2, {len(iso['budgets'])} budgets): N_opt ~ C^{iso['N_opt']['a']:.3f}, D_opt ~ C^{iso['D_opt']['b']:.3f}")
    env = fits.get("envelope", {})
    if env and "skipped" not in env:
        console.print(f"envelope (Approach 1): N_opt ~ C^{env['N_opt_law']['a']:.3f}")
    _print_checks(fits, console)
    for p in fits.get("predictions", []):
        at = f"C = {p['C']:.3g}" if "C" in p else f"N = {p['N']:.3g}, D = {p['D']:.3g}"
        parts = [f"{k} = {v['value']:.4g}" + (f" [{v['ci'][0]:.4g}, {v['ci'][1]:.4g}]" if v["ci"] else "")
                 for k, v in p.items() if isinstance(v, dict)]
        console.print(f"predict at {at}: " + ", ".join(parts))
    if "tasks" in fits:
        _print_tasks(fits["tasks"], console)


TASK_MAPS = ("task_loss", "acc")  # with both mapped, `fit --csv` fits a task's two steps instead of L(N,D)
MAP_KEYS = ("N", "D", "C", "L", *TASK_MAPS, "run")


def parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or ours not in MAP_KEYS:
            raise UsageError(f"--map {item}: expected one of {', '.join(k + '=COLUMN' for k in MAP_KEYS)}")
        mapping[ours] = theirs
    return mapping


def parse_predict(item: str) -> dict:
    """'C=1e21' or 'N=1e9,D=2e10' -> {'C': 1e21} or {'N': 1e9, 'D': 2e10}."""
    try:
        point = {k.strip(): float(v) for k, v in (part.split("=") for part in item.split(","))}
    except ValueError:
        point = {}
    if set(point) not in ({"C"}, {"N", "D"}) or min(point.values()) <= 0:
        raise UsageError(f"--predict {item}: expected C=FLOPS or N=PARAMS,D=TOKENS with positive numbers")
    return point


def _print_two_step(summary: dict, console: Console) -> None:
    def show(part: dict, keys) -> str:
        ci = part.get("ci", {})
        return ", ".join(f"{k} = {part[k]:.4g}" + (f" [{ci[k][0]:.4g}, {ci[k][1]:.4g}]" if k in ci else "") for k in keys)

    s1, s2 = summary["step1"], summary["step2"]
    console.print(f"step 1, task_loss = E + A/N^alpha + B/D^beta over {s1['n_points']} runs' final checkpoints: "
                  + show(s1, ("E", "A", "B", "alpha", "beta")))
    console.print(f"step 2, acc = a / (1 + exp(-k (task_loss - L0))) + b over {s2['n_points']} checkpoints "
                  f"(floor a + b = {s2['floor']:.4g}): " + show(s2, ("a", "b", "k", "L0")))


def fit_task_csv(table: pd.DataFrame, mapping: dict[str, str], args, predictions: list[dict], console: Console) -> int:
    """The two-step task fit of a table (analysis.task_laws): task loss from (N, D), accuracy from
    task loss; for each --predict point N, D, task_loss and acc (acc_ci with resamples)."""
    missing = [k for k in TASK_MAPS if k not in mapping]
    unused = [k for k in ("L", "C") if k in mapping]
    if missing or unused:
        raise UsageError(f"--map {missing[0]}=COLUMN is missing: a task fit needs task_loss and acc" if missing else
                         f"--map {unused[0]}={mapping[unused[0]]}: a task fit reads N, D, task_loss, acc and run, not {unused[0]}")
    chance = 0.0 if args.chance is None else args.chance
    if not 0 <= chance < 1:
        raise UsageError(f"--chance {args.chance:g}: the chance accuracy must be at least 0 and below 1")
    if any("C" in p for p in predictions):
        raise UsageError("--predict C=...: a task fit predicts at N=PARAMS,D=TOKENS")
    fit = fit_spec(None, args)
    frame = task_columns(table, mapping)
    model = fit_two_step(frame, chance, fit.huber_delta, fit.method)
    boots = bootstrap_two_step(frame, chance, fit.bootstrap, fit.huber_delta, fit.method)
    points = [predict_two_step(model, boots, **p) for p in predictions]
    if args.json:
        print(json.dumps(points, indent=1))
        return 0
    _print_two_step(two_step_summary(model, boots), console)
    for p in points:
        ci = f" [{p['acc_ci'][0]:.4f}, {p['acc_ci'][1]:.4f}] ({LEVEL:.0%}, {len(boots)} resamples)" if "acc_ci" in p else ""
        console.print(f"predict at N = {p['N']:.4g}, D = {p['D']:.4g}: task_loss = {p['task_loss']:.4f}, acc = {p['acc']:.4f}{ci}")
    return 0


def main(args, console: Console) -> int:
    if (args.path is None) == (args.csv is None):
        raise UsageError("scalinglab fit: give a results/<sweep> folder or --csv FILE, not both or neither")
    predictions = [parse_predict(p) for p in args.predict]
    mapping = parse_map(args.map)
    task_fit = any(k in mapping for k in TASK_MAPS)
    if getattr(args, "chance", None) is not None and not task_fit:
        raise UsageError(f"--chance {args.chance:g}: applies only to a task fit, with --csv and --map task_loss=COLUMN --map acc=COLUMN")
    out = Console(file=open(os.devnull, "w")) if args.json else console  # noqa: SIM115
    if args.csv:
        if not Path(args.csv).is_file():
            raise UsageError(f"--csv {args.csv}: no such file")
        if task_fit:
            return fit_task_csv(pd.read_csv(args.csv), mapping, args, predictions, console)
        table = from_columns(pd.read_csv(args.csv), mapping)
        fits = analyze(table, None, fit_spec(None, args), predictions)
        print_fits(fits, out)
    else:
        if args.map:
            raise UsageError("--map only applies with --csv")
        sweep = SweepDir(Path(args.path))
        fits = report(sweep, fit_spec(sweep, args), out, predictions, write_figures=False)
        out.print(f"wrote {sweep.fit_json}")
    if args.json:
        print(json.dumps(fits, indent=1))
    return 0


def plot(args, console: Console) -> int:
    sweep = SweepDir(Path(args.path))
    report(sweep, fit_spec(sweep, args), console)
    return 0
