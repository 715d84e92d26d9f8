"""Tokens/s of one run trained by 1 process and by 2 processes (SLURM tasks of one job, JAX's
distributed runtime, CPU collectives over gloo), on a throw-away single-node SLURM started here
(tests/slurm/cluster.sh: needs root and the SLURM packages .ci/run installs).

    python experiments/bench_distributed.py [--steps 3000] [--d-model 64] [--batch 8]

Each run is one SLURM job of the same sweep point (same global batch); the figure is the median of
its evaluations' tokens/s (compilation left out). Prints one line per process count and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweep(folder: Path, name: str, args, tasks: int) -> Path:
    doc = {
        "name": name,
        "data": {"val_tokens": 4096},
        "model": {"seq_len": 128},
        "grid": {"shapes": [{"n_layers": 2, "d_model": args.d_model, "n_heads": args.d_model // 32}],
                 "D": [args.batch * 128 * args.steps]},
        "train": {"batch_size": args.batch, "lr": 3e-3, "n_evals": 6, "checkpoint_interval_s": 600},
        "fit": {"bootstrap": 0},
        "launch": {"executor": "slurm", "slurm": {"partition": "debug", "qos": "normal", "time_min": 30,
                                                  "cpus_per_task": 1, "tasks_per_node": tasks}},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rate(results: Path) -> tuple[float, dict]:
    (run,) = (results / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    return summary["tokens_per_s"], summary


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    cluster = ROOT / "tests" / "slurm" / "cluster.sh"
    subprocess.run([str(cluster), "start", str(tmp / "slurm"), "4"], check=True)
    env = {**os.environ, "SLURM_CONF": str(tmp / "slurm" / "etc" / "slurm.conf")}
    try:
        rates, losses = {}, {}
        for tasks in (1, 2):
            name = f"p{tasks}"
            cmd = [sys.executable, "-m", "scalinglab.cli", "run", str(sweep(tmp, name, args, tasks)), "--results", str(tmp / "res")]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            rates[tasks], summary = rate(tmp / "res" / name)
            losses[tasks] = summary["L"]
            print(f"{tasks} process(es): {rates[tasks]:,.0f} tokens/s  L {summary['L']:.7f}  devices {summary['n_devices']}  "
                  f"attention {summary['attention']}  mfu {summary.get('mfu') or 0:.3f}")
        print(f"2 processes / 1: {rates[2] / rates[1]:.2f}x tokens/s; |L2 - L1| = {abs(losses[2] - losses[1]):.2e}")
    finally:
        subprocess.run([str(cluster), "stop", str(tmp / "slurm")])


if __name__ == "__main__":
    main()
