"""The schedules study's evidence (sweeps/schedules.yaml, docs/curves.md): per model size, a curve
law fitted jointly on the runs of some schedules (by default constant, cosine and the two-stage
step, Luo et al. 2025's choice) predicts the whole curves of the others (the WSD runs). Reported
per size and schedule: R^2 of each curve (fitted or predicted, over its points after warmup and
the first --skip-early share of its steps, which are not fitted) and the error of its
final loss; and the figure of measured against predicted curves.

    .venv/bin/python experiments/curve_study.py results/schedules [--law multi_power] [--loss val|train]
        [--fit-on constant,cosine,step] [--skip-early 0.1] [--figure docs/curves_schedules.png]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from scalinglab.analysis.curves import Curve, fit_curves
from scalinglab.analysis.curves.fit import r_squared
from scalinglab.analysis.curves.sizes import SKIP_EARLY, CurveLoss, by_size
from scalinglab.analysis.curves.sweep import sweep_curves
from scalinglab.analysis.figstyle import plt, save


def kind(curve: Curve) -> str:
    """The schedule's family: the first word of its label (wsd for every cooldown length)."""
    return curve.label.split(",")[0].split(" ")[0]


def r2(curve: Curve, predicted: np.ndarray) -> float:
    """R^2 over the points a fit reads (after warmup and the skipped start)."""
    return r_squared(curve.loss[curve.fitted], predicted[curve.fitted])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--law", default="multi_power")
    p.add_argument("--loss", default="val", choices=[x.value for x in CurveLoss])
    p.add_argument("--fit-on", default="constant,cosine,step")
    p.add_argument("--skip-early", type=float, default=SKIP_EARLY)
    p.add_argument("--figure", type=Path)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    fit_on = set(args.fit_on.split(","))
    sizes = by_size([c.skipping(args.skip_early) for c in sweep_curves(args.path, CurveLoss(args.loss)).curves])
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False)
    errors = []
    for ax, (N, curves) in zip(axes[0], sizes.items(), strict=True):
        fit = fit_curves([c for c in curves if kind(c) in fit_on], args.law)
        print(f"N {N:,.0f}: {args.law} on {', '.join(sorted(fit_on))} ({args.loss} loss)")
        for curve in sorted(curves, key=lambda c: c.label):
            role = "fitted" if kind(curve) in fit_on else "predicted"
            pred = fit.predict(curve.lr, curve.steps)
            err = pred[-1] / curve.loss[-1] - 1
            if role == "predicted":
                errors.append(err)
            final = f"final {curve.loss[-1]:.4f} vs {pred[-1]:.4f} ({100 * err:+.2f}%)"
            print(f"  {curve.label:30s} {role:9s} R2 {r2(curve, pred):.4f}  {final}")
            line = np.arange(max(curve.warmup, curve.skip) + 1, len(curve.lr) + 1)
            shown = ax.plot(curve.steps[curve.fitted], curve.loss[curve.fitted], ".", ms=2, alpha=0.5)[0]
            ax.plot(line, fit.predict(curve.lr, line), "-" if role == "fitted" else "--", lw=1.2, color=shown.get_color(),
                    label=f"{curve.label} ({role})")  # fmt: skip
        ax.set_title(f"N = {N:,.0f}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{args.loss} loss (nats/token)")
    axes[0][-1].legend(fontsize=6)
    print(f"predicted final losses: worst |error| {100 * np.max(np.abs(errors)):.2f}%, mean {100 * np.mean(np.abs(errors)):.2f}%")
    if args.figure:
        print(f"wrote {save(fig, args.figure)}")


if __name__ == "__main__":
    main()
