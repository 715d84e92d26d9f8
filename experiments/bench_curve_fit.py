"""How long a joint curve-law fit takes: 5 curves of 4,000 steps (constant, cosine, WSD, two-stage,
linear) observed at 100 points each, or at every 10th step (the dense training curve of a run
logging every 10 steps), for each law. Medians of --repeats fits, one process.

    .venv/bin/python experiments/bench_curve_fit.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from scalinglab.analysis.curves import Curve, fit_curves
from scalinglab.analysis.curves.fit import law_of, predict

T, PEAK, W = 4000, 3e-3, 200
TRUE = {
    "multi_power": {"L0": 2.5, "A": 1.2, "alpha": 0.45, "B": 0.6, "C": 0.02, "beta": 0.6, "gamma": 0.5},
    "annealing": {"L0": 2.5, "A": 1.2, "alpha": 0.45, "C": 3e-4},
}


def rates() -> dict[str, np.ndarray]:
    t = np.arange(1, T + 1)
    f = np.clip((t - W) / (T - W), 0, 1)
    shapes = {
        "constant": np.ones(T),
        "cosine": 0.1 + 0.45 * (1 + np.cos(np.pi * f)),
        "wsd": np.where(t <= 0.8 * T, 1.0, 1 - 0.9 * np.clip((t - 0.8 * T) / (0.2 * T), 0, 1)),
        "step": np.where(t < 0.7 * T, 1.0, 0.1),
        "linear": 1 - 0.9 * f,
    }
    return {k: PEAK * np.where(t <= W, t / W, v) for k, v in shapes.items()}


def curves(name: str, every: int, rng: np.random.Generator) -> list[Curve]:
    law = law_of(name)
    steps = np.arange(every, T + 1, every) if every else np.unique(np.linspace(1, T, 100).astype(int))
    out = []
    for kind, lr in rates().items():
        loss = predict(law, law.theta(TRUE[name]), PEAK, lr, steps) * (1 + 0.003 * rng.standard_normal(len(steps)))
        out.append(Curve(kind, 1e6, lr, steps, loss, W))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    for name in TRUE:
        for every, what in ((0, "100 points"), (10, "every 10th step")):
            data = curves(name, every, np.random.default_rng(0))
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fit_curves(data, name)
                times.append(time.perf_counter() - start)
            spread = f"min {min(times):.2f}, max {max(times):.2f}"
            print(f"{name:12s} 5 curves x {T} steps, {what:16s}: median {statistics.median(times):.2f} s ({spread})")


if __name__ == "__main__":
    main()
