"""`scalinglab suggest`: the runs a sweep should train next for a target compute C_6ND, chosen by
analysis.suggest, written as a sweep YAML of grid.points with the sweep's own settings and name
(analysis.next_sweep). Imports no JAX."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis.analyze import core
from ..analysis.next_sweep import family, next_spec, next_yaml, realisable
from ..analysis.parts import Skipped
from ..analysis.say import warner
from ..analysis.select import fit_inputs, fit_spec
from ..analysis.suggest import Suggestion, candidate_grid, suggest
from ..analysis.uncertainty import At, predict
from ..errors import FitError, UsageError
from ..store.files import write_text
from ..store.layout import SweepDir
from ..store.targets import new_file
from ..sweep.planner import MIN_STEPS
from ..sweep.saved import saved_sweep


def print_picks(s: Suggestion, console: Console) -> None:
    table = Table(title=f"{len(s.picks)} suggested runs")
    for col in ("#", "N", "D", "D/N", "6ND", "variance removed"):
        table.add_column(col, justify="right")
    for i, p in enumerate(s.picks):
        table.add_row(str(i + 1), f"{p.N:,.0f}", f"{p.D:,.0f}", f"{p.D / p.N:.1f}", f"{p.cost:.3g}", f"{p.share:.1%}")
    console.print(table)


def _why_none(target: str, spread: float, budget: float) -> str:
    """Why suggest picked no run: a sweep with no runs is no suggestion."""
    if not np.isfinite(spread):
        return f"--target {target}: too far beyond the sweep for its fit to say how uncertain the loss there is; give a smaller C_6ND"
    if spread == 0:
        return f"--target {target}: the sweep's runs already fix the loss there; no run would narrow it"
    return (
        f"--target {target}: every candidate run within the budget ({budget:.3g} FLOPs of 6ND) is one already done (they span "
        "the sweep's runs to the target's compute-optimal size on a log grid); give a C_6ND nearer the sweep's or a larger --budget"
    )


def _out(args, sweep: SweepDir) -> Path:
    """The YAML to write, checked before the fit: never in a results sweep's folder (its
    sweep.json is the record of what was trained), an existing file only with --force."""
    out = Path(args.out or f"{sweep.name}-suggest.yaml")
    name = f"--out {out}" if args.out else f"{out} (the default --out)"
    new_file(out, name, args.force)
    inside = next((p for p in Path(os.path.abspath(out)).parents if SweepDir(p).sweep_json.exists()), None)
    if inside is not None:
        raise UsageError(f"{name}: inside the results folder {inside}, which scalinglab keeps; write the YAML elsewhere")
    return out


def main(args, console: Console) -> int:
    C_6ND = At.parse(args.target, "--target").C_6ND
    if C_6ND is None:
        raise UsageError(f"--target {args.target}: expected C_6ND=FLOPS, e.g. --target C_6ND=1e21")
    if args.budget is not None and not 0 < args.budget < np.inf:
        raise UsageError(f"--budget {args.budget:g}: give the FLOPs (6ND) the new runs may spend, a positive finite number")
    sweep = SweepDir(Path(args.path))
    out = _out(args, sweep)
    spec = saved_sweep(sweep)
    if spec is None:
        raise UsageError(f"{sweep.sweep_json}: none readable (scalinglab run writes it); suggest copies the sweep's settings from it")
    fit = fit_spec(sweep, huber_delta=args.huber_delta, method=args.method, bootstrap=args.bootstrap, law=args.law, pin_E=args.pin_E)
    found = core(fit_inputs(sweep, left_out=warner(console)).runs, fit, allocating=True)
    if isinstance(found.chosen, Skipped):
        raise FitError(f"{sweep.path}: {found.chosen.skipped}; train more runs (a grid of N x D) before asking what to train next")
    runs, law = found.runs, found.chosen.law
    budget = args.budget or float((6 * runs["N"] * runs["D"]).sum())
    sizes = np.array(sorted(family(spec)), dtype=float) if family(spec) else None
    N, D = realisable(spec, *candidate_grid(runs, law, C_6ND, budget, sizes=sizes))
    if not (budget >= 6 * N * D).any():
        raise UsageError(
            f"--budget {budget:.3g}: less than the cheapest run worth suggesting; give at least {(6 * N * D).min():.3g}"
            if len(N)
            else f"--budget {budget:.3g}: too small for a run of {MIN_STEPS} steps; give more"
        )
    s = suggest(law, runs, C_6ND, budget, N, D)
    if not s.picks:
        raise FitError(_why_none(args.target, s.spread, budget))
    if s.unseen:
        console.print(
            f"[yellow]warning[/]: the fit made {', '.join(s.unseen)} vanish (its term is nil at every run), so suggest "
            "cannot see how uncertain it is and these runs ignore it; `scalinglab fit` shows its interval"
        )
    vocab = int(found.runs["vocab_size"].iloc[0])  # the model's (run.json), for the FLOPs a new run will compute
    write_text(
        out, next_yaml(next_spec(spec, s, found.hyperparameters, vocab), s, C_6ND, budget, sweep.path, found.hyperparameters is not None)
    )
    today = predict(law, found.chosen.boots, At(C_6ND=C_6ND)).L
    print_picks(s, console)
    ci = f" [{today.ci[0]:.4g}, {today.ci[1]:.4g}]" if today.ci else ""  # none with --bootstrap 0
    console.print(
        f"loss at C_6ND = {C_6ND:.3g}: {today.value:.4g}{ci} today; these runs "
        f"({sum(p.cost for p in s.picks):.3g} of {budget:.3g} FLOPs of 6ND) are expected to narrow "
        f"its linearised spread by {1 - s.left**0.5:.0%}"
    )
    console.print(escape(f"wrote {out}: scalinglab plan {out}, then scalinglab run {out} --results {sweep.path.parent}"))
    return 0
