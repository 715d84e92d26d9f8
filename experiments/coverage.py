"""Do the prediction intervals cover? Simulated campaigns for each law family: runs drawn from a
known law (its truth below) with 1% log-normal noise, 16 small runs fitted (4 N x 4 D) with the
bootstrap, and 3 held-out runs of a model 3x larger than any fitted, at the fitted D, predicted.
A 95% interval should cover 90-98% of the held-out runs' measured losses. Two intervals per
prediction: the law's bootstrap interval alone (fit.json's L_pred_ci: where the law's mean is)
and the prediction interval (L_pred_pi: that widened by the runs' residual scale, where a run's
measured loss falls). Coverage is of fresh noisy measurements of the held-out runs.

Found (50 campaigns x 3 held-out runs each, 50 resamples per fit), coverage of the law's interval
and of the prediction interval:
  chinchilla 93.3% 97.3%; farseer 64.0% 69.3%; kaplan 82.7% 91.3%; data_constrained 99.3% 99.3%;
  power_C 75.3% 93.3%  (docs/fitting.md says what it means)
Usage: python experiments/coverage.py [CAMPAIGNS] [RESAMPLES]   (50 50: ~40 minutes on 2 busy cores)
"""

import os
import sys

os.environ.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scalinglab.analysis.choose import fit_on, noise, predict_runs  # noqa: E402
from scalinglab.analysis.laws import LAWS, Fitted  # noqa: E402
from scalinglab.analysis.laws.bootstrap import interval  # noqa: E402
from scalinglab.analysis.uncertainty import bootstrap_law, prediction_interval  # noqa: E402
from scalinglab.sweep.spec import FitSpec  # noqa: E402

NOISE = 0.01
TRUTHS = {
    "chinchilla": {"E": 1.8172, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672},  # Epoch AI's replication
    "farseer": {"s": 3.0, "q": -0.15, "S": 0.4, "B": 1.0, "b": -0.1, "Q": 6.0, "A": -2.0, "a": -0.1, "E": -0.8},
    "kaplan": {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095},  # Kaplan et al. 2020
    "data_constrained": {  # Muennighoff et al. 2023 (huggingface/datablations)
        "E": np.exp(0.6254804), "A": np.exp(6.255414), "B": np.exp(7.3049974), "alpha": 0.3526596, "beta": 0.3526596,
        "R_D": 15.387756, "R_N": 5.309743,
    },
    "power_C": {"E": 1.7, "a": 2000.0, "b": -0.2},
}


def design(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    N, D = (g.ravel() for g in np.meshgrid(np.geomspace(1e7, 1e8, 4), np.geomspace(1e9, 1e10, 4)))
    fit = pd.DataFrame({"N": N, "D": D})
    held = pd.DataFrame({"N": 3e8, "D": np.geomspace(1e9, 1e10, 3)})
    if name == "data_constrained":  # 1, 2, 4 or 8 epochs over U unique tokens
        fit["U"] = fit["D"] / np.array([1, 2, 4, 8])[np.arange(len(fit)) % 4]
        held["U"] = held["D"] / 2
    return fit, held


def campaign(name: str, seed: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out run: covered by the law's interval, covered by the prediction interval."""
    rng = np.random.default_rng(seed)
    truth = Fitted.of(LAWS[name](), TRUTHS[name])
    fit, held = design(name)
    fit["L"] = predict_runs(truth, fit) * np.exp(rng.normal(0, NOISE, len(fit)))
    measured = predict_runs(truth, held) * np.exp(rng.normal(0, NOISE, len(held)))
    spec = FitSpec(bootstrap=resamples)
    law = fit_on(LAWS[name](), fit, spec)
    boots = bootstrap_law(fit, spec, seed=seed, workers=1, law=law.law)
    pred = predict_runs(law, held)
    samples = np.array([predict_runs(m, held) for m in boots])
    ci = np.array([interval(samples[:, i]) for i in range(len(held))])
    pi = np.array([prediction_interval(p, samples[:, i], noise(law, fit)) for i, p in enumerate(pred)])
    return (ci[:, 0] <= measured) & (measured <= ci[:, 1]), (pi[:, 0] <= measured) & (measured <= pi[:, 1])


def coverage(name: str, campaigns: int, resamples: int) -> tuple[str, float, float]:
    hits = [campaign(name, seed, resamples) for seed in range(campaigns)]
    return name, float(np.mean([h[0] for h in hits])), float(np.mean([h[1] for h in hits]))


def main() -> None:
    campaigns, resamples = (int(a) for a in (sys.argv[1:] + ["60", "60"])[:2])
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(coverage, TRUTHS, [campaigns] * len(TRUTHS), [resamples] * len(TRUTHS)))
    print(f"{campaigns} campaigns x 3 held-out runs, {resamples} resamples, noise {NOISE:.0%}")
    print(f"{'law':<18}{'law interval':>14}{'prediction interval':>22}")
    for name, ci, pi in rows:
        print(f"{name:<18}{ci:>14.1%}{pi:>22.1%}")


if __name__ == "__main__":
    main()
