"""Does the best learning rate transfer across width? Sweeps the learning rate at several widths
under each parametrization and plots final validation loss against it.

    python experiments/lr_transfer.py                      # ~15 min on 2 cores
    python experiments/lr_transfer.py --widths 64 128 256 512

Runs go through the normal launcher into results/lr-transfer/ (a re-run skips finished runs);
the figure goes to docs/lr_transfer.png. Under mup and u-mup the best learning rate should stay
within one grid step (a factor of 2) across widths; under sp it drifts down as width grows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalinglab import results  # noqa: E402
from scalinglab.launch.dispatch import launch  # noqa: E402
from scalinglab.store.layout import SweepDir  # noqa: E402
from scalinglab.sweep import planner  # noqa: E402
from scalinglab.sweep.read import parse  # noqa: E402
from scalinglab.sweep.runspec import RunSpec  # noqa: E402
from scalinglab.sweep.spec import LaunchSpec  # noqa: E402

# Learning-rate grids, factor 2 apart: u-mup's unit-scaled weights want a base lr near 1.
# sp reaches two steps lower: its best rate falls as width grows.
GRIDS = {
    "sp": np.concatenate(([2.5e-4, 5e-4], 1e-3 * 2.0 ** np.arange(6))),
    "mup": 1e-3 * 2.0 ** np.arange(6),
    "u-mup": 0.125 * 2.0 ** np.arange(6),
}


def plan(args) -> list[RunSpec]:
    runs = []
    for parametrization, lrs in GRIDS.items():
        model = {"seq_len": args.seq_len, "parametrization": parametrization}
        if parametrization == "mup":  # the only one with a base width
            model["base_width"] = args.widths[0]
        for lr in lrs:
            sweep = parse(
                {
                    "name": "lr-transfer",
                    "model": model,
                    "grid": {
                        "shapes": [{"n_layers": args.n_layers, "d_model": w, "n_heads": w // args.d_head} for w in args.widths],
                        "D": [args.steps * args.batch_size * args.seq_len],
                    },
                    "train": {"batch_size": args.batch_size, "lr": float(lr), "warmup_fraction": 0.1, "n_evals": 1},
                }
            )
            runs += planner.plan(sweep)
    return runs


def best_lrs(df) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for (parametrization, width), g in df.groupby(["parametrization", "d_model"]):
        out.setdefault(parametrization, {})[int(width)] = float(g.loc[g["L"].idxmin(), "lr"])
    return out


def plot(df, path: Path) -> None:
    fig, axes = plt.subplots(1, len(GRIDS), figsize=(4.2 * len(GRIDS), 3.6), sharey=True)
    best = best_lrs(df)
    for ax, parametrization in zip(axes, GRIDS):
        g = df[df["parametrization"] == parametrization]
        for width, gw in g.groupby("d_model"):
            gw = gw.sort_values("lr")
            (line,) = ax.plot(gw["lr"], gw["L"], "o-", label=f"d_model {width}")
            ax.plot(best[parametrization][int(width)], gw["L"].min(), "*", ms=14, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_title(parametrization)
        ax.set_xlabel("learning rate" + (" (base)" if parametrization != "sp" else ""))
    axes[0].set_ylabel("validation loss (nats/token)")
    axes[0].legend(fontsize=8)
    lo, hi = np.nanpercentile(df["L"], [0, 80])
    axes[0].set_ylim(lo - 0.05, hi + 0.1)
    fig.suptitle("Best learning rate across width (stars); lower is better")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--d-head", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--results", type=Path, default=Path("results/lr-transfer"))
    p.add_argument("--figure", type=Path, default=Path("docs/lr_transfer.png"))
    args = p.parse_args()

    launch(plan(args), LaunchSpec(), SweepDir(args.results))
    df = results.load(args.results)
    df = df[df["status"] == "done"]
    plot(df, args.figure)
    for parametrization, by_width in best_lrs(df).items():
        lrs = list(by_width.values())
        print(f"{parametrization:6s} best lr by width: {by_width}  spread x{max(lrs) / min(lrs):g}")
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
