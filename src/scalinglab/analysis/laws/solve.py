"""The one solver every law is fitted with: starting points (variable projection over the law's
linear coefficients, or the law's own), the best polished, the lowest objective kept. Huber
objectives are polished with L-BFGS-B on the law's analytic gradient, least squares with scipy's
least_squares on its Jacobian, both inside the law's bounds. No JAX."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares, lsq_linear, minimize, nnls
from threadpoolctl import threadpool_limits

from ...errors import FitError
from ...sweep.types import Method
from .base import Fitted, Law, Loss, Space

SQUARES = Loss()
# Starts and cells are scored and solved this many (starts x points) at a time: each array of a
# batch is then ~2 MB whatever the table's size (all 16,384 of farseer's cells over 100,000 rows
# at once: over 10 GB).
BATCH_ELEMENTS = 2**18
# Tables of more than SEARCH_PAST rows search for starts, and polish them, on a subsample of
# SEARCH_ROWS (a 100,000-row table's search over every row: ~60 s of a 85 s fit); the fit is then
# polished on every row. Up to SEARCH_PAST (every published table here) all rows are searched.
SEARCH_PAST = 2_000
SEARCH_ROWS = 1_000


def batches(n_starts: int, n_points: int, elements: int = BATCH_ELEMENTS) -> list[slice]:
    """Contiguous slices of n_starts starts (or cells, or resamples), each of at most elements / n_points."""
    size = max(1, elements // max(1, n_points))
    return [slice(i, i + size) for i in range(0, n_starts, size)]


def columns(law: Law, X) -> tuple[np.ndarray, ...]:
    """The law's input columns as float arrays; FitError unless positive and finite where the
    law takes their logs."""
    return tuple(_positive(x) if law.positive_inputs else np.asarray(x, dtype=float) for x in X)


def _positive(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x) & (x > 0)):
        raise FitError("every value must be positive and finite")
    return x


def value(law: Law, theta, X, observed, loss: Loss):
    """The loss summed over points, for theta (..., P)."""
    return loss.value(law.fitted_value(theta, *X) - observed).sum(-1)


def objective(law: Law, theta, X, observed, loss: Loss):
    """The loss summed over points and its gradient, for theta (..., P)."""
    fitted, jacobian = law.value_and_jacobian(theta, *X)
    r = fitted - observed
    return loss.value(r).sum(-1), np.einsum("...np,...n->...p", jacobian, loss.slope(r))


def fit(law: Law, X, y, loss: Loss = SQUARES, method: Method = Method.VARPRO, warm: np.ndarray | None = None) -> Fitted:
    """The law fitted to y at the points X (a tuple of the law's input columns, in its order);
    warm: a bootstrap's full fit, polished first, then law.resample_starts of the usual starts."""
    X = columns(law, X)
    y = _positive(y) if law.space is Space.LOG else np.asarray(y, dtype=float)
    if (problem := law.problem(X)) is not None:
        raise FitError(problem)
    observed = law.observed(y)
    theta = law.solve_exactly(X, observed, loss)
    if theta is None:
        # One BLAS thread: L-BFGS-B's small products are slower threaded, and on cores busy with
        # training OpenBLAS's threads spin against them (a 4-parameter fit: 3.7 s against 0.3 s).
        with threadpool_limits(1, user_api="blas"):
            starts = _search(law, X, y, loss, method, warm)
            theta = np.array([polish(law, p0, X, observed, loss) for p0 in starts])
    values = np.atleast_1d(objective(law, theta, X, observed, loss)[0])  # of each end (one exact solution)
    best = int(np.argmin(values))
    return Fitted(law, np.atleast_2d(theta)[best], float(values[best]), len(y))


def _search(law: Law, X, y, loss: Loss, method: Method, warm: np.ndarray | None) -> np.ndarray:
    """The starts polished on every row. Past SEARCH_PAST rows, the best end of the usual search
    and polish on a seeded subsample of SEARCH_ROWS rows: their cost stops growing with the table,
    and the one polish on every row (whose optimum the fit is) starts next to it."""
    if len(y) <= SEARCH_PAST:
        return _starts(law, X, y, loss, method, warm)
    rows = np.sort(np.random.default_rng(0).choice(len(y), SEARCH_ROWS, replace=False))
    X, y = tuple(x[rows] for x in X), y[rows]
    observed = law.observed(y)
    ends = np.array([polish(law, p0, X, observed, loss) for p0 in _starts(law, X, y, loss, method, warm)])
    return ends[[np.argmin(value(law, ends, X, observed, loss))]]


def _starts(law: Law, X, y, loss: Loss, method: Method, warm: np.ndarray | None) -> np.ndarray:
    """Method.GRID's published grid, the law's own starts, variable projection's or sampled ones;
    with warm (a bootstrap's full fit), it first, then law.resample_starts of those."""
    if warm is not None and law.resample_starts == 0:
        return warm[None]
    grid = law.start_grid() if method is Method.GRID else None
    starts = grid if grid is not None else law.starts(X, y, loss)
    if starts is None:
        starts = varpro_starts(law, X, y, loss) if law.grid(X, y) is not None else sampled_starts(law, X, y, loss)
    if warm is not None and law.resample_starts is not None:
        starts = np.vstack([warm, starts[: law.resample_starts]])
    return starts


def polish(law: Law, p0, X, observed, loss: Loss) -> np.ndarray:
    lo, hi = np.array(law.bounds).T
    p0 = np.clip(p0, lo, hi)
    if loss.delta is None:

        def residuals(p: np.ndarray) -> np.ndarray:
            return law.fitted_value(p, *X) - observed

        def jacobian(p: np.ndarray) -> np.ndarray:
            return law.jacobian(p, *X)

        return least_squares(residuals, p0, jacobian, bounds=(lo, hi)).x

    def value_and_gradient(p: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective(law, p, X, observed, loss)
        return float(value), gradient

    return minimize(
        value_and_gradient,
        p0,
        jac=True,
        method="L-BFGS-B",
        bounds=law.bounds,
        options={"maxiter": 10_000, "ftol": 1e-12, "gtol": 1e-10},
    ).x


def linear_solutions(law: Law, cells, X, y) -> np.ndarray:
    """Per cell, the linear coefficients (cells, K) by least squares on relative residuals
    (pred - y) / y for a law fitted in log space, which approximate its log residuals, or plain
    residuals otherwise; a batch of cells at a time by the normal equations, then those whose
    solution leaves the coefficients' bounds solved again within them, one by one."""
    return np.concatenate([_linear_solutions(law, cells[b], X, y) for b in batches(len(cells), len(y))])


def _linear_solutions(law: Law, cells, X, y) -> np.ndarray:
    offset, basis = law.design(cells, X)
    target = y - offset
    if law.space is Space.LOG:
        basis, target = basis / y[:, None], target / y
    try:
        coef = _normal_equations(basis, target)
    except np.linalg.LinAlgError:  # a cell's columns of wildly different sizes: solved on unit columns
        scale = np.linalg.norm(basis, axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        coef = _normal_equations(basis / scale, target) / scale[:, 0]
    lo, hi = law.coefficient_bounds()
    for i in np.flatnonzero(((coef < lo) | (coef > hi)).any(axis=1)):
        coef[i] = _bounded(basis[i], np.broadcast_to(target, basis.shape[:2])[i], lo, hi)
    return coef


def _normal_equations(basis, target) -> np.ndarray:
    K = basis.shape[-1]
    return np.linalg.solve(
        basis.transpose(0, 2, 1) @ basis + 1e-12 * np.eye(K),
        np.einsum("cnk,cn->ck", basis, np.broadcast_to(target, basis.shape[:2]))[..., None],
    )[..., 0]


def _bounded(A, b, lo, hi) -> np.ndarray:
    if A.shape[1] == 1:  # one unknown: the bounded solution is the clipped one
        return np.clip((A[:, 0] @ b) / max(A[:, 0] @ A[:, 0], 1e-12), lo, hi)[None]
    if lo == 0 and hi == np.inf:
        return nnls(A, b)[0]
    return lsq_linear(A, b, bounds=(lo, hi)).x


def sampled_starts(law: Law, X, y, loss: Loss) -> np.ndarray:
    """law.samples points drawn (seeded) in the law's start box, each scored by the objective; the
    law's `polish` best."""
    box = law.start_box(X, y)
    lo, hi = np.array(law.bounds if box is None else box, dtype=float).T
    return best_starts(law, np.random.default_rng(0).uniform(lo, hi, (law.samples, len(lo))), X, y, loss)


def varpro_starts(law: Law, X, y, loss: Loss) -> np.ndarray:
    """Variable projection: each cell of the law's grid with its best linear coefficients, scored
    by the objective; the law's `polish` best (ties: the first)."""
    cells = law.grid(X, y)
    if cells is None:
        raise FitError(f"{law.name}: no starting points (the law has no grid of its nonlinear parameters)")
    return best_starts(law, law.assemble(linear_solutions(law, cells, X, y), cells), X, y, loss)


def best_starts(law: Law, starts: np.ndarray, X, y, loss: Loss) -> np.ndarray:
    """The law's `polish` starting points (S, P) of lowest objective (ties: the first; a start that
    predicts nan or inf scores last)."""
    observed = law.observed(y)
    with np.errstate(all="ignore"):
        scores = np.concatenate([value(law, starts[b], X, observed, loss) for b in batches(len(starts), len(y))])
    return starts[np.argsort(np.nan_to_num(scores, nan=np.inf), kind="stable")[: law.polish]]
