"""What logging the training curve costs: the same run trained with train.log_every's default (a
point every ~1% of the steps: the pending losses fetched and a line written each time) and with
one point at the end (log_every = steps: what a run logged before curves existed), alternating
A B B A ... in one process so that load from elsewhere hits both alike. Reported: each side's
median tokens/s (the run's summary: its median over evaluation intervals, compile excluded) and
the median of the per-round A/B tokens/s ratios (below 1: logging is slower).

    .venv/bin/python experiments/bench_curve_logging.py [--rounds 3] [--steps 1000] [--d-model 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from scalinglab.store.layout import RunDir
from scalinglab.sweep import planner, read
from scalinglab.training.loop import train


def run_of(steps: int, d_model: int, log_every: int | None):
    doc = {
        "name": "bench",
        "model": {"seq_len": 128},
        "grid": {"shapes": [{"n_layers": 4, "d_model": d_model, "n_heads": d_model // 16}], "D": [steps * 4 * 128]},
        "train": {"batch_size": 4, "n_evals": 4, **({"log_every": log_every} if log_every else {})},
    }
    return planner.plan(read.parse(doc))[0]


def tokens_per_s(run, root: Path, name: str) -> float:
    return train(run, RunDir(root / name / "runs" / run.run_id), log=lambda _: None)["tokens_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--d-model", type=int, default=64)
    args = p.parse_args()
    logged, quiet = run_of(args.steps, args.d_model, None), run_of(args.steps, args.d_model, args.steps)
    print(f"A: a curve point every {logged.curve_every} steps; B: every {quiet.curve_every} steps")
    a, b = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = [("A", logged), ("B", quiet)] if i % 2 == 0 else [("B", quiet), ("A", logged)]
            for side, run in order:
                (a if side == "A" else b).append(tokens_per_s(run, Path(tmp), f"{side}{i}"))
    ratios = [x / y for x, y in zip(a, b)]
    print(f"tokens/s A {statistics.median(a):,.0f}, B {statistics.median(b):,.0f}")
    print(f"A/B tokens/s per round: {[round(r, 3) for r in ratios]}")
    print(f"median A/B tokens/s: {statistics.median(ratios):.3f} (logging costs {100 * (1 - statistics.median(ratios)):.1f}%)")


if __name__ == "__main__":
    main()
