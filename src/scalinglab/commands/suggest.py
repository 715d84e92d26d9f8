"""`scalinglab suggest`: the runs a sweep should train next for a target compute C, chosen by
analysis.suggest, written as a sweep YAML of grid.points with the sweep's own settings and name, so
`scalinglab run` adds them to the same results/<sweep>/ and the next fit uses old and new runs.
Imports no JAX."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from ..analysis.hparams import predicted, tune, tuned_axes
from ..analysis.laws import fit_chinchilla
from ..analysis.select import fit_inputs
from ..analysis.suggest import Suggestion, candidate_grid, suggest
from ..analysis.uncertainty import bootstrap, predict
from ..errors import FitError, UsageError
from ..store.files import read_record, write_text
from ..store.layout import SweepDir
from ..sweep.counts import Shape, shape_for, shapes
from ..sweep.planner import MIN_STEPS
from ..sweep.read import parse
from ..sweep.spec import SweepSpec
from .fit import fit_spec


def parse_target(text: str) -> float:
    """'C=1e21' -> 1e21."""
    key, _, value = text.partition("=")
    try:
        C = float(value)
    except ValueError:
        C = 0.0
    if key.strip() != "C" or not C > 0 or not np.isfinite(C):
        raise UsageError(f"--target {text}: expected C=FLOPS with a positive number, e.g. --target C=1e21")
    return C


def saved_spec(sweep: SweepDir) -> SweepSpec:
    """The sweep as it was run (sweep.json): the suggested runs keep every setting but the grid."""
    saved, problem = read_record(sweep.sweep_json, {"name", "grid"})
    if saved is None:
        why = problem or "no such file (scalinglab run writes it)"
        raise UsageError(f"{sweep.sweep_json}: {why}; suggest copies the sweep's settings from it")
    return parse(saved, str(sweep.sweep_json))


def family(spec: SweepSpec) -> dict[int, Shape]:
    """N -> shape, for a sweep of listed shapes (grid.shapes): new runs keep to those sizes, as a
    law fitted on one family of shapes (say, 4 layers, only the width growing) says nothing of
    another's. Empty where the shape rule picks the sizes."""
    return {s.N: s for s in shapes(spec)} if spec.grid.shapes is not None else {}


def realisable(spec: SweepSpec, N: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates as the planner trains them: N of a listed shape, or of the shape the rule picks
    (one that the rule picks again from that N, so the YAML plans exactly it), D in whole batches
    of at least MIN_STEPS steps; repeats dropped."""
    tokens, listed = spec.train.batch_size * spec.model.seq_len, family(spec)
    pairs = set()
    for n, d in zip(N, D):
        n_shape = n if n in listed else shape_for(n, spec.model).N
        if n in listed or shape_for(n_shape, spec.model).N == n_shape:
            pairs.add((n_shape, max(MIN_STEPS, round(d / tokens)) * tokens))
    return tuple(np.array(v, dtype=float) for v in zip(*sorted(pairs))) if pairs else (np.array([]), np.array([]))


def sweep_yaml(spec: SweepSpec, name: str, s: Suggestion, C: float, budget: float, source: Path, hyper: dict | None = None) -> str:
    """The sweep's settings with grid.points, a comment line per run saying why it is there; in a
    sweep that tuned lr or batch size (hyper: fit's "hyperparameters"), each run at the fitted optimum."""
    total = (1 - s.left) or 1.0  # the share of the removal each run makes
    header = (f"# scalinglab suggest {source} --target C={C:.4g} --budget {budget:.4g}: the runs expected to narrow\n"
              f"# the uncertainty of the loss predicted at C most per FLOP (C = 6ND), by {1 - s.left ** 0.5:.0%} together.\n"
              f"# scalinglab run this file --results {source.parent} adds them to {source}/; refit with scalinglab fit {source}\n")
    lines, listed = ["grid:", "  points:"], family(spec)
    for i, p in enumerate(s.picks):
        lines.append(f"    # {i + 1}: removes {p.share:.1%} of the target's variance ({p.share / total:.0%} of what these runs "
                     f"remove); 6ND = {p.cost:.3g} FLOPs, {p.cost / budget:.1%} of the budget")
        size = f"shape: {yaml.safe_dump(dataclasses.asdict(listed[p.N]), default_flow_style=True).strip()}" if p.N in listed else f"N: {p.N:.0f}"
        tuned = "".join(f", {k}: {v:g}" for k, v in (predicted(hyper, p.N, p.D) if hyper else {}).items())
        lines.append(f"    - {{{size}, D: {p.D:.0f}{tuned}}}")
    if hyper:
        lines.insert(2, "    # lr and batch_size: the fitted optimum at each run's (N, D) (scalinglab fit shows the laws)")
    rest = {k: v for k, v in spec.model_dump(mode="json").items() if k not in ("name", "grid", "seeds")}
    return (header + yaml.safe_dump({"name": name}) + "\n".join(lines) + "\n"
            + yaml.safe_dump({"seeds": spec.seeds[:1], **rest}, sort_keys=False))  # one run a point: what was scored


def print_picks(s: Suggestion, console: Console) -> None:
    table = Table(title=f"{len(s.picks)} suggested runs")
    for col in ("#", "N", "D", "D/N", "6ND", "variance removed"):
        table.add_column(col, justify="right")
    for i, p in enumerate(s.picks):
        table.add_row(str(i + 1), f"{p.N:,.0f}", f"{p.D:,.0f}", f"{p.D / p.N:.1f}", f"{p.cost:.3g}", f"{p.share:.1%}")
    console.print(table)


def main(args, console: Console) -> int:
    C = parse_target(args.target)
    if args.budget is not None and not args.budget > 0:
        raise UsageError(f"--budget {args.budget:g}: give the FLOPs (6ND) the new runs may spend, a positive number")
    sweep = SweepDir(Path(args.path))
    spec, fit = saved_spec(sweep), fit_spec(sweep, args)
    runs, hyper = fit_inputs(sweep, left_out=lambda line: console.print(f"[yellow]warning[/]: {line}")).runs, None
    if tuned_axes(runs):  # the law of each (N, D)'s best run, as fit has it
        runs, hyper = tune(runs, fit.bootstrap)
    try:
        law = fit_chinchilla(runs["N"], runs["D"], runs["L"], fit.huber_delta, fit.method)
    except FitError as e:
        raise FitError(f"{sweep.path}: {e}; train more runs (a grid of N x D) before asking what to train next") from None
    budget = args.budget or float((6 * runs["N"] * runs["D"]).sum())
    sizes = np.array(sorted(family(spec)), dtype=float) if family(spec) else None
    N, D = realisable(spec, *candidate_grid(runs, law, C, budget, sizes=sizes))
    if not (6 * N * D <= budget).any():
        raise UsageError(f"--budget {budget:.3g}: less than the cheapest run worth suggesting; give at least {(6 * N * D).min():.3g}"
                         if len(N) else f"--budget {budget:.3g}: too small for a run of {MIN_STEPS} steps; give more")
    s = suggest(law, runs, C, budget, N, D)
    if s.unseen:
        console.print(f"[yellow]warning[/]: the fit made {', '.join(s.unseen)} vanish (its term is nil at every run), so suggest "
                      "cannot see how uncertain it is and these runs ignore it; `scalinglab fit` shows its interval")
    out = Path(args.out or f"{sweep.name}-suggest.yaml")
    write_text(out, sweep_yaml(spec, sweep.name, s, C, budget, sweep.path, hyper))
    today = predict(law, bootstrap(runs, fit.bootstrap, fit.huber_delta, fit.method), C=C)["L"]
    print_picks(s, console)
    ci = f" [{today['ci'][0]:.4g}, {today['ci'][1]:.4g}]" if today["ci"] else ""  # none with --bootstrap 0
    console.print(f"loss at C = {C:.3g}: {today['value']:.4g}{ci} today; these runs "
                  f"({sum(p.cost for p in s.picks):.3g} of {budget:.3g} FLOPs) are expected to narrow its linearised spread by {1 - s.left ** 0.5:.0%}")
    console.print(f"wrote {out}: scalinglab plan {out}, then scalinglab run {out} --results {sweep.path.parent}")
    return 0
