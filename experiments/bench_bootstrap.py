"""The bootstrap of L(N,D) on Chinchilla's Figure 4 data (240 points, 1,000 resamples): the batched
solver (uncertainty.bootstrap, resample_fits.py; median of 3) against refitting every resample with
fit_chinchilla, as the bootstrap did before (one process per core; timed once, about a minute).
Prints both times (and the new one's CPU time), both sets of 95% intervals, and on how many resamples each objective is the
higher. Usage: python experiments/bench_bootstrap.py [--resamples K] [--skip-old]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.analysis.laws import PARAMS, fit_chinchilla, from_columns
from scalinglab.analysis.uncertainty import bootstrap, in_processes, seed_chunks, summarize

CSV = Path(__file__).parents[1] / "tests" / "data" / "chinchilla_fig4_points.csv"


def refits(N, D, L, seeds):
    """Today's bootstrap before the batched solver: each resample refitted on its own."""
    return [fit_chinchilla(N[idx], D[idx], L[idx]) for idx in
            (np.random.default_rng(s).integers(0, len(L), len(L)) for s in seeds)]


def show(name, seconds, law, boots):
    print(f"{name:<7} {seconds:6.2f} s  " + "  ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in summarize(law, boots)["ci"].items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-old", action="store_true")
    args = parser.parse_args()
    table = from_columns(pd.read_csv(CSV), {"N": "Model Size", "C": "Training FLOP", "L": "loss"})
    table = table.sort_values("L").iloc[:-5]  # Epoch drops the 5 highest-loss points
    law = fit_chinchilla(table["N"], table["D"], table["L"])
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        new = bootstrap(table, args.resamples)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    show("new", statistics.median(times), law, new)
    # On a shared machine the wall time is other work's too; the CPU time is the bootstrap's alone.
    print(f"        {statistics.median(cpu):6.2f} s of CPU (both threads)")
    if not args.skip_old:
        N, D, L = (table[c].to_numpy() for c in ("N", "D", "L"))
        chunks = seed_chunks(list(range(args.resamples)), len(os.sched_getaffinity(0)))
        t0 = time.perf_counter()
        old = in_processes(refits, [(N, D, L, c) for c in chunks])
        show("old", time.perf_counter() - t0, law, old)
        higher = sum(m.objective > o.objective * (1 + 1e-9) for m, o in zip(new, old))
        lower = sum(m.objective < o.objective * (1 - 1e-9) for m, o in zip(new, old))
        print(f"objective of the new fit above the refit's on {higher} of {len(new)} resamples, below on {lower}; "
              f"largest parameter difference {max(abs(getattr(m, k) / getattr(o, k) - 1) for m, o in zip(new, old) for k in PARAMS):.1e}")
