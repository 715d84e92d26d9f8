"""Emergence (Schaeffer et al. 2023, "Are Emergent Abilities of LLMs a Mirage?"): is a task's curve
against model size sharp under a discontinuous metric (accuracy, exact match) and smooth under a
continuous one (gold-answer probability, per-token accuracy, loss)? Pure functions; no JAX.

Sharpness of a curve over sizes N_1 < ... < N_k (values averaged per size, oriented so that up is
better): of the total rise from N_1 to N_k, the largest share that one step N_i -> N_i+1 carries,
minus the share of the log N range that step spans. 0 for a curve straight in log N, near 1 for a
single jump; sharp at SHARP_EXCESS or more. Flat when the total rise is within twice the standard
error of the difference between the end points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FitError
from .taskfit import Emergence, Shape, Sharpness

# With 4 sizes evenly spaced in log N, 0.3 asks one step for 63% of the rise or more (a straight
# line gives each 33%): accuracy at chance, then up, is sharp; a sigmoid across the range is not.
SHARP_EXCESS = 0.3
SHARPNESS_MEASURE = (
    "largest share of the total rise between two consecutive sizes, minus that step's "
    "share of the log N range; sharp at or above the threshold"
)
VERDICTS = {
    (Shape.SHARP, Shape.SHARP): "sharp under both",
    (Shape.SHARP, Shape.SMOOTH): "sharp only under the discontinuous metric (smooth under the continuous one: the mirage)",
    (Shape.SMOOTH, Shape.SMOOTH): "smooth under both",
    (Shape.SMOOTH, Shape.SHARP): "sharp only under the continuous metric",
}
FLAT = "flat (no rise beyond noise)"
ONLY_DISCONTINUOUS = "rises only under the discontinuous metric (the continuous one is flat)"


def _by_size(N, y, se):
    """Mean per distinct N, and the standard error of that mean."""
    g = pd.DataFrame(
        {"N": np.asarray(N, dtype=float), "y": np.asarray(y, dtype=float), "v": np.asarray(se, dtype=float) ** 2 if se is not None else 0.0}
    ).groupby("N")
    return g["y"].mean(), np.sqrt(g["v"].sum()) / g.size()


def sharpness(N, y, se=None, higher_is_better: bool = True, metric: str = "y") -> Sharpness:
    """The sharpness of y against N (the module's docstring) and its shape: "sharp", "smooth" or
    "flat". se: the standard errors of the values, for the noise; none: only no rise is flat."""
    mean, err = _by_size(N, y, se)
    if len(mean) < 3:
        raise FitError(f"emergence: need at least 3 model sizes, got {len(mean)}")
    v = mean.to_numpy() * (1 if higher_is_better else -1)
    lN = np.log(mean.index.to_numpy())
    rise, noise = v[-1] - v[0], float(np.hypot(err.iloc[0], err.iloc[-1]))
    excess = np.diff(v) / rise - np.diff(lN) / (lN[-1] - lN[0]) if rise > 0 else np.zeros(len(v) - 1)
    i = int(np.argmax(excess))
    shape = Shape.FLAT if rise <= 2 * noise else (Shape.SHARP if excess[i] >= SHARP_EXCESS else Shape.SMOOTH)
    return Sharpness(
        metric=metric,
        sharpness=float(excess[i]),
        between=(float(mean.index[i]), float(mean.index[i + 1])),
        rise=float(rise),
        noise=noise,
        shape=shape,
        N=mean.index.tolist(),
        values=mean.tolist(),
    )


def emergence(
    N,
    discontinuous,
    continuous,
    discontinuous_se=None,
    continuous_se=None,
    continuous_higher_is_better: bool = True,
    names: tuple[str, str] = ("acc", "continuous"),
) -> Emergence:
    """Per-run final values of a task under a discontinuous metric (accuracy, exact match) and a
    continuous one (gold-answer probability, per-token accuracy, or a loss: then
    continuous_higher_is_better=False): each metric's sharpness and one verdict (VERDICTS)."""
    disc = sharpness(N, discontinuous, discontinuous_se, metric=names[0])
    cont = sharpness(N, continuous, continuous_se, continuous_higher_is_better, metric=names[1])
    if disc.shape is Shape.FLAT:
        verdict = FLAT
    elif cont.shape is Shape.FLAT:
        verdict = ONLY_DISCONTINUOUS
    else:
        verdict = VERDICTS[disc.shape, cont.shape]
    return Emergence(discontinuous=disc, continuous=cont, verdict=verdict, measure=SHARPNESS_MEASURE, threshold=SHARP_EXCESS)
