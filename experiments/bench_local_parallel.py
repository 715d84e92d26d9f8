"""Local executor: two single-threaded jobs (one per core) against one job with two threads.

Trains the same four runs both ways through `scalinglab run` and prints the wall time and the
total training tokens/s of each layout. Usage: python experiments/bench_local_parallel.py
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scalinglab import results
from scalinglab.cli import main

SWEEP = {
    "name": "bench",
    "model": {"seq_len": 128, "d_head": 16},
    "grid": {"shapes": [{"n_layers": 2, "d_model": 64, "n_heads": 4}, {"n_layers": 3, "d_model": 80, "n_heads": 5}], "D": [3e5, 4e5]},
}


def measure(max_parallel: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(SWEEP))
        t0 = time.perf_counter()
        args = ["run", str(path), "--results", tmp, "--executor", "local", "--max-parallel", str(max_parallel), "--threads-per-job", str(threads)]
        assert main(args) == 0
        wall = time.perf_counter() - t0
        df = results.load(Path(tmp) / "bench")
        train_s = (df["D"] / df["tokens_per_s"]).sum()
        return {"max_parallel": max_parallel, "threads_per_job": threads, "wall_s": round(wall, 1),
                "tokens": int(df["D"].sum()), "tokens_per_s_total": round(df["D"].sum() / train_s * max_parallel)}


if __name__ == "__main__":
    rows = [measure(2, 1), measure(1, 2)]
    for row in rows:
        print(json.dumps(row))
    print(f"two 1-thread jobs / one 2-thread job: wall {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x faster, "
          f"throughput {rows[0]['tokens_per_s_total'] / rows[1]['tokens_per_s_total']:.2f}x", file=sys.stderr)
