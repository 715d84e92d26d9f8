"""How sure a curve fit is: the law refitted on resamples of the curves, each polished from the
full fit's optimum alone (laws/solve.py's warm start), so a resample costs one polish. With at
least MIN_RUNS curves whole runs are resampled; with fewer, blocks of consecutive observed points
within each curve (a moving-block bootstrap: neighbouring points of one run share their errors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import FitError
from ..laws.base import Loss
from ..laws.bootstrap import LEVEL, draw, interval, seeds
from ..laws.solve import fit
from .curve import Curve
from .fit import CurveFit, Rows, fit_curves, law_of, rows
from .law import CurveLaw

MIN_RUNS = 3


@dataclass(frozen=True, eq=False)
class CurveIntervals:
    fit: CurveFit
    thetas: np.ndarray
    """(resamples, P): each resample's optimum in solver coordinates."""
    level: float = LEVEL

    @property
    def params(self) -> dict[str, tuple[float, float]]:
        """Per parameter, its central `level` interval over the resamples."""
        values = [self.fit.law.values(t) for t in self.thetas]
        return {name: interval([v[name] for v in values], self.level) for name in self.fit.law.names}

    def predict(self, lr, steps) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): the central `level` interval of the loss at `steps` of the schedule lr."""
        law, lr, steps = self.fit.law, np.asarray(lr, dtype=float), np.asarray(steps, dtype=int)
        preds = law.predict(self.thetas, *law.prepare(lr / self.fit.lr_scale, steps))  # (resamples, steps)
        bounds = np.array([interval(column, self.level) for column in preds.T]).reshape(-1, 2)
        return bounds[:, 0], bounds[:, 1]


def bootstrap_curves(
    curves: Sequence[Curve],
    law: str | CurveLaw = "multi_power",
    n: int = 200,
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
    huber_delta: float = 1e-3,
    level: float = LEVEL,
) -> CurveIntervals:
    """fit_curves, and the law refitted on n seeded resamples (the same n and seed, the same
    intervals); resamples too degenerate to fit are dropped."""
    full = fit_curves(curves, law, fixed, huber_delta)
    entry = law_of(law, fixed)
    data = rows(entry, curves, full.lr_scale)
    thetas = []
    for s in seeds(n, seed):
        picked = resample(data, len(curves), s)
        try:
            thetas.append(fit(entry, tuple(x[picked] for x in data.X), data.loss[picked], Loss(huber_delta), warm=full.theta).theta)
        except FitError:
            continue
    return CurveIntervals(full, np.array(thetas).reshape(-1, len(entry.names)), level)


def resample(data: Rows, n_curves: int, seed: int) -> np.ndarray:
    """The rows of one resample: whole curves drawn with replacement (MIN_RUNS curves or more),
    else each curve's rows in moving blocks."""
    members = [np.flatnonzero(data.curve == i) for i in range(n_curves)]
    if n_curves >= MIN_RUNS:
        return np.concatenate([members[i] for i in draw(n_curves, seed)])
    rng = np.random.default_rng(seed)
    return np.concatenate([moving_blocks(m, rng) for m in members])


def moving_blocks(members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many rows as members, in blocks of ~n^(1/3) consecutive ones starting anywhere."""
    n = len(members)
    size = max(1, int(np.ceil(n ** (1 / 3))))
    starts = rng.integers(0, n - size + 1, int(np.ceil(n / size)))
    return members[(starts[:, None] + np.arange(size)).ravel()[:n]]
