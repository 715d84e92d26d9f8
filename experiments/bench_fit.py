"""Speed and agreement of the L(N,D) solvers on Chinchilla's Figure 4 data (240 points).

Prints the variable-projection fit time (median of 5), the published grid-of-starts recipe's
time and parameters, the largest relative difference between the two, and the time of 1,000
bootstrap resamples. Usage: python experiments/bench_fit.py [--skip-grid]
"""

import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from scalinglab.analysis.laws import PARAMS, fit_chinchilla, from_columns
from scalinglab.analysis.uncertainty import bootstrap, summarize

CSV = Path(__file__).parents[1] / "tests" / "data" / "chinchilla_fig4_points.csv"


def timed(f, *args, **kw):
    t0 = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0


def show(name, law, seconds):
    print(f"{name:<8} {seconds:8.2f} s  " + "  ".join(f"{k}={getattr(law, k):.4g}" for k in PARAMS))


if __name__ == "__main__":
    table = from_columns(pd.read_csv(CSV), {"N": "Model Size", "C": "Training FLOP", "L": "loss"})
    table = table.sort_values("L").iloc[:-5]  # Epoch drops the 5 highest-loss points
    runs = [timed(fit_chinchilla, table["N"], table["D"], table["L"]) for _ in range(5)]
    varpro = runs[0][0]
    show("varpro", varpro, statistics.median(t for _, t in runs))
    if "--skip-grid" not in sys.argv:
        grid, t_grid = timed(fit_chinchilla, table["N"], table["D"], table["L"], method="grid")
        show("grid", grid, t_grid)
        diff = max(abs(getattr(grid, k) / getattr(varpro, k) - 1) for k in PARAMS)
        print(f"largest relative difference between the two: {diff:.2e}")
    boots, t_boot = timed(bootstrap, table, 1000)
    s = summarize(varpro, boots)
    print(f"bootstrap {t_boot:7.2f} s  for {s['n_bootstrap']} resamples; 95% CI "
          + "  ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in s["ci"].items()))
