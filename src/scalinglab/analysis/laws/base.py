"""What a law is: a registered family (Chinchilla's L(N,D), a power law, a sigmoid, ...) that knows
its parameters, predicts, and gives the derivatives the solvers need; and a fitted law, a family
with its parameter vector. Pure numpy; no JAX.

A family is a frozen dataclass registered in LAWS under the name fit.json and the YAML use; its
fields are settings fixed before fitting (which column a power law runs along, a sigmoid's
chance). Its parameters are a vector theta in solver coordinates: a parameter marked `log` is
solved as the log of its value (positive, and scaled as the law sees it). Everything a solver or
a bootstrap needs comes from the family, so a new law is a new entry and nothing else:
- `predict(theta, *X)` and, in the space the fit measures residuals in (the log of the prediction
  for a loss, the prediction itself for an accuracy), `fitted_value`, `jacobian` and `hessian`,
  vectorised over leading axes of theta;
- variable projection: for fixed nonlinear parameters (`grid`) the prediction is an offset plus a
  basis times the linear coefficients (`design`), solved by least squares and put back into theta
  (`assemble`); `starts` turns that into starting points (laws may choose others).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from ...choices import Choice, Registry

LAWS: Registry[Law] = Registry("law")


class Space(StrEnum):
    """Where residuals are measured: log (log prediction - log y: a loss, whose noise is relative)
    or linear (prediction - y: an accuracy)."""

    LOG = "log"
    LINEAR = "linear"


@dataclass(frozen=True)
class Param:
    name: str
    bounds: tuple[float, float]
    """In solver coordinates (the log of the value for a `log` parameter)."""
    log: bool = False
    """Solved as log(value): the value is positive."""


@dataclass(frozen=True)
class Loss:
    """The objective: the sum of Huber(r) over residuals r (least squares where delta is None),
    each half r^2 in the quadratic part, as scipy's least_squares counts its cost."""

    delta: float | None = None

    def value(self, r):
        if self.delta is None:
            return 0.5 * r**2
        return np.where(np.abs(r) <= self.delta, 0.5 * r**2, self.delta * (np.abs(r) - 0.5 * self.delta))

    def slope(self, r):
        """d value / d r."""
        return r if self.delta is None else np.clip(r, -self.delta, self.delta)

    def curvature(self, r):
        """d^2 value / d r^2."""
        return np.ones_like(r) if self.delta is None else (np.abs(r) <= self.delta).astype(float)


SQUARES = Loss()


class Law(Choice):
    """Base of the registered law families (each a frozen dataclass)."""

    registry: ClassVar[Registry[Law]] = LAWS
    space: ClassVar[Space] = Space.LOG
    positive_inputs: ClassVar[bool] = True
    """Whether the law takes logs of its inputs (then each must be positive)."""
    polish: ClassVar[int] = 3
    """How many of the best starting points (variable projection's cells, or sampled) are polished."""
    samples: ClassVar[int] = 4096
    """Sampled starts (laws with neither linear terms nor starts of their own): points drawn in
    `start_box`, each scored by the objective; the field's lesson is that ten starts are not enough."""
    resample_starts: ClassVar[int | None] = None
    """The bootstrap: each resample is polished from the full fit's optimum and this many of its own
    best starts (None: from its own `polish` best alone, as any fit)."""

    @property
    def params(self) -> tuple[Param, ...]:
        raise NotImplementedError

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the law reads, in the order predict takes them."""
        raise NotImplementedError

    @property
    def form(self) -> str:
        raise NotImplementedError

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [p.bounds for p in self.params]

    def problem(self, X: tuple[np.ndarray, ...]) -> str | None:
        """Why these points cannot determine the law (too few distinct values), or None."""
        return None

    def predict(self, theta, *X) -> np.ndarray:
        raise NotImplementedError

    def fitted_value(self, theta, *X) -> np.ndarray:
        """The prediction in the residuals' space."""
        y = self.predict(theta, *X)
        return np.log(y) if self.space is Space.LOG else y

    def observed(self, y) -> np.ndarray:
        """The data in the residuals' space."""
        return np.log(y) if self.space is Space.LOG else np.asarray(y, dtype=float)

    def jacobian(self, theta, *X) -> np.ndarray:
        """d fitted_value / d theta, shape (..., n, P); by default central differences (entries
        with a closed form give theirs)."""
        theta = np.asarray(theta, dtype=float)
        h = 1e-6 * np.maximum(1.0, np.abs(theta))
        cols = []
        with np.errstate(invalid="ignore"):  # a start far off may predict inf on both sides
            for j in range(theta.shape[-1]):
                step = np.zeros_like(theta)
                step[..., j] = h[..., j]
                cols.append((self.fitted_value(theta + step, *X) - self.fitted_value(theta - step, *X)) / (2 * h[..., j, None]))
        return np.stack(cols, axis=-1)

    def value_and_jacobian(self, theta, *X) -> tuple[np.ndarray, np.ndarray]:
        """fitted_value and jacobian together (a law whose two share work gives them in one pass)."""
        return self.fitted_value(theta, *X), self.jacobian(theta, *X)

    def hessian(self, theta, *X) -> np.ndarray:
        """d^2 fitted_value / d theta^2, shape (..., n, P, P); by default central differences of
        the jacobian (entries with a closed form give theirs)."""
        theta = np.asarray(theta, dtype=float)
        h = 1e-5 * np.maximum(1.0, np.abs(theta))
        cols = []
        for j in range(theta.shape[-1]):
            step = np.zeros_like(theta)
            step[..., j] = h[..., j]
            cols.append((self.jacobian(theta + step, *X) - self.jacobian(theta - step, *X)) / (2 * h[..., j, None, None]))
        return np.stack(cols, axis=-1)

    def values(self, theta) -> dict[str, float]:
        """Parameter name -> its value (exp of a log parameter)."""
        return {p.name: float(np.exp(t) if p.log else t) for p, t in zip(self.params, np.asarray(theta, dtype=float))}

    def theta(self, values: dict[str, float]) -> np.ndarray:
        return np.array([np.log(values[p.name]) if p.log else values[p.name] for p in self.params], dtype=float)

    # ---- variable projection: laws with linear coefficients ------------------------------------

    def grid(self, X: tuple[np.ndarray, ...], y: np.ndarray) -> np.ndarray | None:
        """Cells (cells, Q) of the nonlinear parameters to search, or None (no linear terms)."""
        return None

    def design(self, cells: np.ndarray, X: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, the prediction as offset (cells, n) + basis (cells, n, K) @ coefficients."""
        raise NotImplementedError

    def coefficient_bounds(self) -> tuple[float, float]:
        """Bounds of the linear coefficients (the same for each)."""
        return 0.0, np.inf

    def assemble(self, coef: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """theta (cells, P) from the linear coefficients (cells, K) and the cells (cells, Q)."""
        raise NotImplementedError

    def start_grid(self) -> np.ndarray | None:
        """Method.GRID's starting points (S, P), where the law has a published grid."""
        return None

    def starts(self, X: tuple[np.ndarray, ...], y: np.ndarray, loss: Loss) -> np.ndarray | None:
        """The starting points to polish (S, P), where the law has its own; None: variable
        projection's best `polish` cells (solve.varpro_starts)."""
        return None

    def start_box(self, X: tuple[np.ndarray, ...], y: np.ndarray) -> np.ndarray | None:
        """(P, 2) bounds in solver coordinates to draw sampled starts in, for a law with neither a
        grid nor starts of its own (None: the law's bounds)."""
        return None

    def solve_exactly(self, X: tuple[np.ndarray, ...], observed: np.ndarray, loss: Loss) -> np.ndarray | None:
        """theta in closed form, where the law has one for this loss (else None)."""
        return None


@dataclass(frozen=True, eq=False)
class Fitted:
    """A law family with its parameters: callable on the law's inputs, in their order."""

    law: Law
    theta: np.ndarray
    objective: float = float("nan")
    n_points: int = 0

    def __call__(self, *X):
        """The prediction at points of any shape (scalars, columns, grids), broadcast together."""
        arrays = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in X))
        out = self.law.predict(self.theta, *(a.ravel() for a in arrays))
        return out.reshape(arrays[0].shape)[()]

    def columns(self, N=None, D=None, U=None) -> tuple:
        return named_inputs(self.law, N, D, U)

    def at(self, N=None, D=None, U=None):
        """The prediction at named inputs (a loss law's N and D, and U where it has them)."""
        return self(*self.columns(N, D, U))

    @property
    def values(self) -> dict[str, float]:
        return self.law.values(self.theta)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    @classmethod
    def of(cls, law: Law, values: dict[str, float], **kwargs) -> Fitted:
        """A law at given parameter values (a truth to sample from, or parameters read back)."""
        return cls(law, law.theta(values), **kwargs)


def named_inputs(law: Law, N=None, D=None, U=None) -> tuple:
    """A loss law's inputs from named ones: C_6ND = 6ND where the law reads compute, and U (unique
    training tokens) D where not given or not a number: no data repeated that a run knows of."""
    if U is not None:
        U = np.where(np.isfinite(np.asarray(U, dtype=float)), U, D)
    named = {"N": N, "D": D, "U": D if U is None else U}
    if N is not None and D is not None:
        named["C_6ND"] = 6 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)
    return tuple(named[k] for k in law.inputs)


def from_record(record: dict) -> Law:
    """The family of a record (Law.record(): {"law": its name, its settings}), as fit.json keeps it."""
    cls = LAWS[record[LAWS.family]]
    return cls(**{f.name: _tuple(record[f.name]) for f in dataclasses.fields(cls)})


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value
