"""Two uses of a curve law on a sweep of WSD cooldown branches (results/cpu-study's design: per
model size one stable trunk, and a cooldown branched from it for every data size), each checked
against the branches that were trained:

- trunk: a branch's final loss from its trunk's curve alone. A trunk never lowers its rate, so
  it cannot tell the law how much a decrease buys: the loss-drop parameters (multi_power's B, C,
  beta, gamma; annealing's C) come from each other size's joint fit, and the branch's prediction
  is the median over those sizes (leave one size out).
- one run: every data size's final loss from one run per size, the longest branch with its
  trunk's stretch (its whole curve), fitted alone: what training one run per size and letting
  the law stand in for the shorter ones would give, against today's branches. Also the FLOPs
  each plan spends.

The errors are set against the sweep's noise: the residual scale of its L(N,D) law (fit.json).

    .venv/bin/python experiments/curve_uses.py results/cpu-study [--loss val|train] [--law multi_power]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from scalinglab.analysis.curves import Curve, CurveFit, curves_from_frame, fit_curves
from scalinglab.analysis.curves.sizes import SKIP_EARLY, CurveLoss, by_size
from scalinglab.analysis.curves.sweep import sweep_curves
from scalinglab.results import load

SHAPE = ("L0", "A", "alpha")  # what a constant rate shows; the rest is what a decrease buys


def trunk_errors(sizes: dict[float, list[Curve]], roles: dict[str, str], law: str) -> dict[float, list[float]]:
    joint = {N: fit_curves(curves, law) for N, curves in sizes.items()}
    out: dict[float, list[float]] = {}
    for N, curves in sizes.items():
        trunk = [c for c in curves if roles[c.run] == "trunk"]
        donors = [fit_curves(trunk, law, fixed=_drop_params(joint[M])) for M in sizes if M != N]
        out[N] = [
            float(np.median([f.predict(c.lr, c.steps[-1:])[0] for f in donors])) / c.loss[-1] - 1 for c in curves if roles[c.run] != "trunk"
        ]
    return out


def _drop_params(fit: CurveFit) -> dict[str, float]:
    return {k: v for k, v in fit.params.items() if k not in SHAPE}


def one_run_errors(whole: dict[float, list[Curve]], roles: dict[str, str], law: str) -> dict[float, list[float]]:
    out: dict[float, list[float]] = {}
    for N, curves in whole.items():
        branches = [c for c in curves if roles[c.run] != "trunk"]
        longest = max(branches, key=lambda c: len(c.lr))
        fit = fit_curves([longest], law)
        out[N] = [fit.predict(c.lr, c.steps[-1:])[0] / c.loss[-1] - 1 for c in branches if c is not longest]
    return out


def flops(path: str) -> tuple[float, float, float]:
    """(today's trunks and branches, one longest run per size, every data size trained alone)."""
    runs = load(path, trunks=True)
    spent = sum(r.C * (r.steps - (r.decay_start if isinstance(r.trunk_id, str) else 0)) / r.steps for r in runs.itertuples())
    grid = runs[runs["role"] != "trunk"]
    return spent, float(grid.groupby("N")["C"].max().sum()), float(grid["C"].sum())


def report(name: str, errors: dict[float, list[float]], noise: float) -> None:
    flat = np.abs(np.concatenate([np.asarray(e) for e in errors.values()]))
    print(f"{name}: mean |error| {100 * flat.mean():.2f}%, worst {100 * flat.max():.2f}% (noise of the L(N,D) fit {100 * noise:.2f}%)")
    for N, e in errors.items():
        print(f"  N {N:>9,.0f}: " + ", ".join(f"{100 * x:+.2f}%" for x in e))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--loss", default="val", choices=[x.value for x in CurveLoss])
    p.add_argument("--law", default="multi_power")
    p.add_argument("--skip-early", type=float, default=SKIP_EARLY)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    runs = load(args.path, trunks=True).set_index("run_id")
    roles = {str(k): str(v) for k, v in runs["role"].items()}
    found = sweep_curves(args.path, CurveLoss(args.loss)).curves  # a branch's own cooldown; the trunk's points with the trunk
    sizes = by_size([c.skipping(args.skip_early) for c in found])
    noise = json.loads((Path(args.path) / "fit.json").read_text())["law"]["noise"]
    print(f"{args.path}: {args.law} on the {args.loss} loss, {len(sizes)} sizes")
    report("trunk alone -> each branch's final loss", trunk_errors(sizes, roles, args.law), noise)
    table = load(args.path, curves=args.loss == "train", per_eval=args.loss == "val", trunks=True)
    column = "L" if args.loss == "val" else "train_loss"
    whole = by_size([c.skipping(args.skip_early) for c in curves_from_frame(table, column, shared=True)])  # trunk stretch included
    report("one run per size -> the other data sizes' final loss", one_run_errors(whole, roles, args.law), noise)
    spent, one, alone = flops(args.path)
    print(f"FLOPs: trunks and branches {spent:.3g}, one run per size {one:.3g} ({1 - one / spent:.0%} less), every run alone {alone:.3g}")


if __name__ == "__main__":
    main()
