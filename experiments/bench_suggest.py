"""Does `scalinglab suggest` spend FLOPs better than a grid or kyo-takano/chinchilla's rule?

Campaigns simulated from a known law, Chinchilla's fit on Epoch's data (E 1.8172, A 477.8,
B 2143, alpha 0.3473, beta 0.3672), with noise drawn from the reference study's relative
residuals (results/cpu-study refitted: L / L_pred - 1, resampled). Each campaign: the same 9 small
runs (3 N x 3 D), then the same budget spent by
  suggest  analysis.suggest on the runs' fit, for the target C_6ND, in ROUNDS rounds of equal budget
           (suggest, train, refit, suggest again: as the command is used);
  grid     a 4 x 4 log-spaced grid from the smallest start run up to the size that spends the budget;
  greedy   kyo-takano/chinchilla's scaling rule: fit, train at the fitted law's compute-optimal
           (N, D) for twice the largest run's C_6ND, repeat (the last run gets what is left).
Budgets and costs are FLOPs of C_6ND = 6ND, the law's compute.
Error: |L_hat(N_hat, D_hat) / L_true(N_hat, D_hat) - 1| at the target C_6ND, where (N_hat, D_hat) is
the final fit's own compute-optimal allocation: how far off the loss it promises for the run it
recommends is. Each strategy's k-th new run of a campaign draws the same noise (common random
numbers), so the strategies are compared on equal luck. Prints medians and quartiles per strategy
and suggest's median over the grid's, with a 95% interval from resampling the campaigns.
Usage: python experiments/bench_suggest.py [--campaigns 1000] [--workers 2] [--rounds 8]
"""

import os

os.environ.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))  # 15x faster fits

import argparse  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import brentq  # noqa: E402

from scalinglab.analysis.laws import Fitted  # noqa: E402
from scalinglab.analysis.laws.chinchilla import CHINCHILLA, compute_optimal  # noqa: E402
from scalinglab.analysis.select import fit_inputs  # noqa: E402
from scalinglab.analysis.suggest import candidate_grid, suggest  # noqa: E402
from scalinglab.analysis.uncertainty import fit_law  # noqa: E402
from scalinglab.store.layout import SweepDir  # noqa: E402
from scalinglab.sweep.spec import FitSpec  # noqa: E402

TRUE = Fitted.of(CHINCHILLA, {"E": 1.8172, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672})
START_N, START_D = np.geomspace(2e7, 2e8, 3), np.geomspace(4e8, 4e9, 3)
TARGET_C_6ND = 1e21  # ~200x the largest start run
BUDGET = 5e19  # C_6ND, ~5x what the start runs cost
SPEC = FitSpec()  # the fit section's defaults: Huber delta 1e-3, variable projection
ROUNDS = 8
STUDY = Path(__file__).parents[1] / "results" / "cpu-study"


def study_residuals() -> np.ndarray:
    runs = fit_inputs(SweepDir(STUDY)).runs
    law = fit_law(runs, SPEC)
    return (runs["L"] / law(runs["N"], runs["D"]) - 1).to_numpy()


def train(N, D, rng, residuals) -> pd.DataFrame:
    """Simulated runs: the true law's loss times 1 + a resampled residual of the study."""
    N, D = np.atleast_1d(np.asarray(N, float)), np.atleast_1d(np.asarray(D, float))
    L = TRUE(N, D) * (1 + rng.choice(residuals, len(N)))
    return pd.DataFrame({"N": N, "D": D, "L": L})


def error(runs: pd.DataFrame) -> float:
    law = fit_law(runs, SPEC)
    N, D = compute_optimal(law, TARGET_C_6ND)
    return float(abs(law(N, D) / TRUE(N, D) - 1))


def by_suggest(start, rng, residuals, rounds):
    runs, left = start, BUDGET
    for r in range(rounds):
        budget = left / (rounds - r)  # what a round has: a share of what is left
        law = fit_law(runs, SPEC)
        picks = suggest(law, runs, TARGET_C_6ND, budget, *candidate_grid(runs, law, TARGET_C_6ND, budget)).picks
        runs = pd.concat([runs, train([p.N for p in picks], [p.D for p in picks], rng, residuals)])
        left -= sum(p.cost for p in picks)
    return runs


def by_grid(start, rng, residuals):
    def points(scale):
        N, D = np.meshgrid(np.geomspace(START_N[0], START_N[-1] * scale, 4), np.geomspace(START_D[0], START_D[-1] * scale, 4))
        return N.ravel(), D.ravel()

    scale = brentq(lambda s: 6 * np.prod(points(s), axis=0).sum() - BUDGET, 1e-3, 1e3)
    return pd.concat([start, train(*points(scale), rng, residuals)])


def by_greedy(start, rng, residuals):
    runs, left = start, BUDGET
    while left > 0:
        C_6ND = min(2 * (6 * runs["N"] * runs["D"]).max(), left)
        law = fit_law(runs, SPEC)
        runs = pd.concat([runs, train(*compute_optimal(law, C_6ND), rng, residuals)])
        left -= C_6ND
    return runs


def campaign(i: int, residuals: np.ndarray, rounds: int) -> tuple[float, float, float]:
    N, D = (a.ravel() for a in np.meshgrid(START_N, START_D))
    start = train(N, D, np.random.default_rng([i, 0]), residuals)

    def noise():  # the same draws for each strategy's k-th new run (common random numbers): a paired comparison
        return np.random.default_rng([i, 1])

    return (error(by_suggest(start, noise(), residuals, rounds)), error(by_grid(start, noise(), residuals)),
            error(by_greedy(start, noise(), residuals)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--campaigns", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args()
    residuals = study_residuals()
    start_cost = 6 * START_N.sum() * START_D.sum()
    true = ", ".join(f"{k}={v:.5g}" for k, v in TRUE.values.items())
    print(f"true law {true}; target C_6ND {TARGET_C_6ND:.3g}, budget {BUDGET:.3g} of C_6ND (start runs: {start_cost:.3g}); "
          f"{len(residuals)} residuals, sd {residuals.std():.2%}")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(campaign, range(args.campaigns), [residuals] * args.campaigns, [args.rounds] * args.campaigns))
    errors = np.array(rows)
    for name, e in zip(("suggest", "grid", "greedy"), errors.T):
        q1, med, q3 = np.quantile(e, [0.25, 0.5, 0.75])
        print(f"{name:<8} median {med:.3%}  quartiles [{q1:.3%}, {q3:.3%}]")
    ratio = np.median(errors[:, 0]) / np.median(errors[:, 1])
    idx = np.random.default_rng(0).integers(0, len(errors), (2000, len(errors)))  # campaigns resampled
    lo, hi = np.quantile(np.median(errors[idx, 0], axis=1) / np.median(errors[idx, 1], axis=1), [0.025, 0.975])
    print(f"suggest / grid median error: {ratio:.2f} [{lo:.2f}, {hi:.2f}] (goal <= 0.5); "
          f"{args.campaigns} campaigns in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
