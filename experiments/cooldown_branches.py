"""Cooldown branches against independent runs on a 2 x 4 N x D grid.

    python experiments/cooldown_branches.py        # ~10 min on 2 cores

Trains the grid three ways through the normal launcher, into results/branches-*/: WSD with
cooldown branches (one trunk per size), independent WSD runs with the same warmup, and
independent cosine runs. Prints the FLOPs each way spends and the final validation losses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scalinglab import results
from scalinglab.launch.dispatch import launch
from scalinglab.store.layout import SweepDir
from scalinglab.sweep import planner
from scalinglab.sweep.read import parse
from scalinglab.sweep.spec import SweepSpec

WAYS = {
    "branched": {"schedule": "wsd", "cooldown_branches": True},
    "wsd": {"schedule": "wsd"},
    "cosine": {"schedule": "cosine"},
}


def sweep(name: str, train: dict, args) -> SweepSpec:
    return parse(
        {
            "name": name,
            "model": {"seq_len": 128, "d_head": 16},
            "grid": {"N": args.N, "D": args.D},
            "train": {"batch_size": 16, "lr": 3e-3, "warmup_steps": args.warmup_steps, "n_evals": 4, **train},
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=float, nargs="+", default=[2e4, 8e4])
    p.add_argument("--D", type=float, nargs="+", default=[2e5, 4e5, 8e5, 1.6e6])
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--results", type=Path, default=Path("results"))
    args = p.parse_args()

    losses, flops = {}, {}
    for way, train in WAYS.items():
        s = sweep(f"branches-{way}", train, args)
        runs = planner.plan(s)
        flops[way] = sum(r.job_flops for r in runs)
        launch(runs, s.launch, SweepDir(args.results / s.name))
        df = results.load(args.results / s.name)
        losses[way] = {(int(r.N), int(r.D)): r.L for r in df.itertuples()}

    print(f"FLOPs: branched {flops['branched']:.3g}, independent WSD {flops['wsd']:.3g} "
          f"({1 - flops['branched'] / flops['wsd']:.0%} saved), cosine {flops['cosine']:.3g}")  # fmt: skip
    print(f"{'N':>8} {'D':>10} {'branched':>9} {'wsd':>9} {'cosine':>9} {'branch-wsd':>11} {'branch/cos-1':>13}")
    for key in sorted(losses["wsd"]):
        b, w, c = (losses[way].get(key, float("nan")) for way in WAYS)
        print(f"{key[0]:>8,} {key[1]:>10,} {b:9.4f} {w:9.4f} {c:9.4f} {b - w:11.2e} {b / c - 1:+13.2%}")


if __name__ == "__main__":
    main()
