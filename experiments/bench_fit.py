"""Speed and agreement of the L(N,D) solvers on Chinchilla's Figure 4 data (240 points).

Prints the variable-projection fit time (median of 5), the published grid-of-starts recipe's
time and parameters, the largest relative difference between the two, and the time of 1,000
bootstrap resamples with their 95% intervals (the parameters', and those of the frontier
exponents a, b of N_opt ~ C_6ND^a, D_opt ~ C_6ND^b). Usage: python experiments/bench_fit.py [--skip-grid]
"""

import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from scalinglab.analysis.laws import Method
from scalinglab.analysis.laws.bootstrap import interval
from scalinglab.analysis.laws.chinchilla import CHINCHILLA, frontier_exponents
from scalinglab.analysis.table import from_columns
from scalinglab.analysis.uncertainty import bootstrap_law, fit_law, main_law
from scalinglab.sweep.spec import FitSpec

CSV = Path(__file__).parents[1] / "tests" / "data" / "chinchilla_fig4_points.csv"
NAMES = CHINCHILLA.names  # E, A, B, alpha, beta


def timed(f, *args, **kw):
    t0 = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0


def show(name, law, seconds):
    print(f"{name:<8} {seconds:8.2f} s  " + "  ".join(f"{k}={law[k]:.4g}" for k in NAMES))


if __name__ == "__main__":
    # Epoch's csv gives 6ND as "Training FLOP": the law's compute C_6ND, from which D = C_6ND / (6N).
    table = from_columns(pd.read_csv(CSV), {"N": "Model Size", "C_6ND": "Training FLOP", "L": "loss"})
    table = table.sort_values("L").iloc[:-5]  # Epoch drops the 5 highest-loss points
    spec = FitSpec(method=Method.VARPRO)  # the defaults: Huber delta 1e-3 on log residuals
    runs = [timed(fit_law, table, spec) for _ in range(5)]
    varpro = runs[0][0]
    show("varpro", varpro, statistics.median(t for _, t in runs))
    if "--skip-grid" not in sys.argv:
        grid, t_grid = timed(fit_law, table, FitSpec(method=Method.GRID))
        show("grid", grid, t_grid)
        diff = max(abs(grid[k] / varpro[k] - 1) for k in NAMES)
        print(f"largest relative difference between the two: {diff:.2e}")
    boot_spec = FitSpec(method=Method.VARPRO, bootstrap=1000)
    boots, t_boot = timed(bootstrap_law, table, boot_spec)
    ci = dict(main_law(varpro, boots, boot_spec).ci)
    exponents = [frontier_exponents(m) for m in boots]
    ci["a"], ci["b"] = interval([a for a, _ in exponents]), interval([b for _, b in exponents])
    print(f"bootstrap {t_boot:7.2f} s  for {len(boots)} resamples; 95% CI "
          + "  ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in ci.items()))
