"""The bootstrap of L(N,D) on Chinchilla's Figure 4 data (240 points, 1,000 resamples): the batched
solver (uncertainty.bootstrap_law: laws/bootstrap.py solving all resamples at once with
laws/resample.py's fit_resamples; median of 3) against refitting every resample with
laws.solve.fit, as the bootstrap did before (one process per core; timed once, about a minute).
Prints both times (and the new one's CPU time), both sets of 95% intervals (the parameters', and
those of the frontier exponents a, b of N_opt ~ C_6ND^a, D_opt ~ C_6ND^b), and on how many
resamples each objective is the higher. Usage: python experiments/bench_bootstrap.py [--resamples K] [--skip-old]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.analysis.laws import Loss, Method
from scalinglab.analysis.laws.bootstrap import draw, in_processes, interval, seed_chunks, seeds
from scalinglab.analysis.laws.chinchilla import CHINCHILLA, frontier_exponents
from scalinglab.analysis.laws.solve import fit
from scalinglab.analysis.table import from_columns
from scalinglab.analysis.uncertainty import bootstrap_law, fit_law, main_law
from scalinglab.sweep.spec import FitSpec

CSV = Path(__file__).parents[1] / "tests" / "data" / "chinchilla_fig4_points.csv"
NAMES = CHINCHILLA.names  # E, A, B, alpha, beta


def refits(N, D, L, seed_list, loss):
    """Today's bootstrap before the batched solver: each resample refitted on its own."""
    return [fit(CHINCHILLA, (N[idx], D[idx]), L[idx], loss) for idx in (draw(len(L), s) for s in seed_list)]


def show(name, seconds, law, boots, spec):
    ci = dict(main_law(law, boots, spec).ci)
    exponents = np.array([frontier_exponents(m) for m in boots])
    ci["a"], ci["b"] = interval(exponents[:, 0]), interval(exponents[:, 1])
    print(f"{name:<7} {seconds:6.2f} s  " + "  ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in ci.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-old", action="store_true")
    args = parser.parse_args()
    # Epoch's csv gives 6ND as "Training FLOP": the law's compute C_6ND, from which D = C_6ND / (6N).
    table = from_columns(pd.read_csv(CSV), {"N": "Model Size", "C_6ND": "Training FLOP", "L": "loss"})
    table = table.sort_values("L").iloc[:-5]  # Epoch drops the 5 highest-loss points
    spec = FitSpec(method=Method.VARPRO, bootstrap=args.resamples)  # Huber delta 1e-3, the default
    law = fit_law(table, spec)
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        new = bootstrap_law(table, spec)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    show("new", statistics.median(times), law, new, spec)
    # On a shared machine the wall time is other work's too; the CPU time is the bootstrap's alone.
    print(f"        {statistics.median(cpu):6.2f} s of CPU (both threads)")
    if not args.skip_old:
        N, D, L = (table[c].to_numpy() for c in ("N", "D", "L"))
        chunks = seed_chunks(seeds(args.resamples), len(os.sched_getaffinity(0)))
        t0 = time.perf_counter()
        old = in_processes(refits, [(N, D, L, c, Loss(spec.huber_delta)) for c in chunks])
        show("old", time.perf_counter() - t0, law, old, spec)
        higher = sum(m.objective > o.objective * (1 + 1e-9) for m, o in zip(new, old))
        lower = sum(m.objective < o.objective * (1 - 1e-9) for m, o in zip(new, old))
        print(f"objective of the new fit above the refit's on {higher} of {len(new)} resamples, below on {lower}; "
              f"largest parameter difference {max(abs(m[k] / o[k] - 1) for m, o in zip(new, old) for k in NAMES):.1e}")
