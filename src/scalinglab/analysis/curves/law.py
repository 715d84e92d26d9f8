"""What a curve law is: a law of the loss along one run's steps under its learning-rate schedule,
registered in CURVE_LAWS. Each is a laws/base.Law, so laws/solve.py fits it as it fits L(N,D)
(variable projection over the linear coefficients, the best starts polished with L-BFGS-B); its
input columns are what `prepare` reads of a schedule at the observed steps, one row per observed
step, so the runs of a joint fit are rows stacked together and a resample is a choice of rows.

Parameters may be pinned (`fixed`): their bounds close on the value, so the solver keeps them
there, and variable projection moves a pinned linear coefficient into the offset.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from ...choices import Registry
from ..laws.base import Law, Param

CURVE_LAWS: Registry[Law] = Registry("curve_law")
LOWEST = 1e-12
"""A prediction floored here before its log (a start far off may predict a negative loss)."""


class CurveLawName(StrEnum):
    MULTI_POWER = "multi_power"
    ANNEALING = "annealing"


@dataclass(frozen=True)
class CurveLaw(Law):
    """Base of the curve laws. A law declares `all_params` (every one solved as its log: all are
    positive), which of them are `linear` coefficients of its prediction (in basis order), a
    grid of values of the others, `prepare`, `basis` and `scaled_gradient`."""

    registry: ClassVar[Registry[Law]] = CURVE_LAWS
    all_params: ClassVar[tuple[Param, ...]]
    linear: ClassVar[tuple[str, ...]]
    grid_values: ClassVar[dict[str, tuple[float, ...]]]
    positive_inputs: ClassVar[bool] = False  # S2 and the blocks' decrements may be 0 or negative
    polish: ClassVar[int] = 4
    resample_starts: ClassVar[int | None] = 0  # a resample is polished from the full fit alone

    fixed: tuple[tuple[str, float], ...] = ()
    """(name, value) of the parameters pinned at a value."""

    @property
    def pinned(self) -> dict[str, float]:
        return dict(self.fixed)

    @property
    def params(self) -> tuple[Param, ...]:
        pinned = self.pinned
        return tuple(Param(p.name, (np.log(pinned[p.name]),) * 2, log=True) if p.name in pinned else p for p in self.all_params)

    @property
    def free(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in self.pinned)

    @property
    def nonlinear(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in self.linear)

    def problem(self, X: tuple[np.ndarray, ...]) -> str | None:
        if len(X[0]) <= len(self.free):
            free = f"{len(self.free)} free parameters ({', '.join(self.free)})"
            return f"{self.name}: {len(X[0])} observed points after warmup for {free}; observe more steps or fix some"
        return None

    def prepare(self, lr: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, ...]:
        """The law's input columns at observed steps of a schedule (lr per step, normalised)."""
        raise NotImplementedError

    def join(self, parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """Several schedules' columns as one set of rows (2-D columns padded with zeros: a block
        that holds no decrement adds nothing)."""
        width = max((x.shape[1] for part in parts for x in part if x.ndim == 2), default=0)
        pad = [tuple(np.pad(x, ((0, 0), (0, width - x.shape[1]))) if x.ndim == 2 else x for x in part) for part in parts]
        return tuple(np.concatenate(cols) for cols in zip(*pad))

    def basis(self, values: dict[str, np.ndarray], X: tuple[np.ndarray, ...]) -> np.ndarray:
        """(cells, n, K): the prediction's column for each linear coefficient, in `linear`'s order,
        at the nonlinear parameters' values (each (cells,))."""
        raise NotImplementedError

    def scaled_gradient(self, v: dict[str, float], X: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The prediction (n,) and p * d prediction / d p (n, P) for each parameter p, at values v."""
        raise NotImplementedError

    def predict(self, theta, *X) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, theta.shape[-1])
        values = {n: np.exp(flat[:, i]) for i, n in enumerate(self.names)}
        coef = np.stack([values[n] for n in self.linear], axis=-1)
        pred = np.einsum("cnk,ck->cn", self.basis({n: values[n] for n in self.nonlinear}, X), coef)
        return pred.reshape(*theta.shape[:-1], -1)

    def fitted_value(self, theta, *X) -> np.ndarray:
        return np.log(np.maximum(self.predict(theta, *X), LOWEST))

    def value_and_jacobian(self, theta, *X) -> tuple[np.ndarray, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        if theta.ndim > 1:  # the solver scores its polished ends together: one at a time here
            ends = [self.value_and_jacobian(t, *X) for t in theta]
            return np.stack([v for v, _ in ends]), np.stack([j for _, j in ends])
        pred, grads = self.scaled_gradient(self.values(theta), X)
        pred = np.maximum(pred, LOWEST)
        return np.log(pred), grads / pred[:, None]

    def jacobian(self, theta, *X) -> np.ndarray:
        return self.value_and_jacobian(theta, *X)[1]

    # ---- variable projection -------------------------------------------------------------------

    def grid(self, X, y) -> np.ndarray:
        """Cells of the nonlinear parameters (log values), a pinned one at its value alone."""
        axes = [np.log([self.pinned[n]] if n in self.pinned else self.grid_values[n]) for n in self.nonlinear]
        return np.array(list(itertools.product(*axes)))

    def design(self, cells, X) -> tuple[np.ndarray, np.ndarray]:
        basis = self.basis({n: np.exp(cells[:, i]) for i, n in enumerate(self.nonlinear)}, X)
        pinned = [i for i, n in enumerate(self.linear) if n in self.pinned]
        offset = sum((basis[..., i] * self.pinned[self.linear[i]] for i in pinned), np.zeros(basis.shape[:2]))
        return offset, np.delete(basis, pinned, axis=-1)

    def assemble(self, coef, cells) -> np.ndarray:
        theta = np.empty((len(cells), len(self.names)))
        solved = iter(coef.T)
        for i, n in enumerate(self.names):
            if n in self.nonlinear:
                theta[:, i] = cells[:, self.nonlinear.index(n)]
            else:
                theta[:, i] = np.log(self.pinned[n]) if n in self.pinned else np.log(np.maximum(next(solved), LOWEST))
        return theta
