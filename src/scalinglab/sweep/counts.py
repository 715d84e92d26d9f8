"""The sweep's model shapes: as the grid gives them, or by the shape rule for a target N. Pure
functions; the counts of a shape (N, FLOPs per token) are the model's (model/counts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SpecError
from ..model.counts import count_N
from .spec import ModelSpec, Point, SweepSpec


@dataclass(frozen=True)
class Shape:
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int

    @property
    def N(self) -> int:
        return count_N(self.n_layers, self.d_model, self.d_ff)


def shape_for(N_target: float, model: ModelSpec) -> Shape:
    """Target non-embedding N -> a shape with d_model ~ aspect_ratio * n_layers.

    Depth comes from the rule N ~ (4 + 2 mlp_ratio) n_layers d_model^2 with d_model =
    aspect_ratio * n_layers; the width is then the multiple of d_head whose N is nearest the
    target in log space, so N lands within a few percent of the target.
    """
    k = 4 + 2 * model.mlp_ratio
    n_layers = max(1, round((N_target / (k * model.aspect_ratio**2)) ** (1 / 3)))
    ideal = (N_target / (k * n_layers)) ** 0.5

    def shape(heads: int) -> Shape:
        d_model = heads * model.d_head
        return Shape(n_layers, d_model, heads, round(model.mlp_ratio * d_model))

    lo = max(1, int(ideal // model.d_head))
    return min((shape(lo), shape(lo + 1)), key=lambda s: abs(math.log(s.N / N_target)))


def point_shape(point: Point, model: ModelSpec) -> Shape:
    """A grid point's shape: as given, or the shape rule's for its N."""
    if point.N is not None:
        return shape_for(point.N, model)
    s = point.shape
    assert s is not None  # rules.check: a point gives exactly one of N and shape
    return Shape(s.n_layers, s.d_model, s.n_heads, s.d_ff or round(model.mlp_ratio * s.d_model))


def shapes(spec: SweepSpec) -> list[Shape]:
    """The sweep's model shapes, as given or by the shape rule; the same shape twice is refused,
    except from grid.points, where several points may share a size."""
    g, m = spec.grid, spec.model
    if g.points is not None:
        return list(dict.fromkeys(point_shape(p, m) for p in g.points))
    if g.shapes is not None:
        out = [Shape(s.n_layers, s.d_model, s.n_heads, s.d_ff or round(m.mlp_ratio * s.d_model)) for s in g.shapes]
        where = "grid.shapes"
    else:
        assert g.N is not None  # rules.check: without points, exactly one of N and shapes
        out = [shape_for(n, m) for n in g.N]
        where = "grid.N"
    seen: dict[Shape, int] = {}
    for i, s in enumerate(out):
        if s in seen:
            raise SpecError(
                f"{where}[{i}]: gives the same shape as {where}[{seen[s]}] "
                f"(n_layers={s.n_layers}, d_model={s.d_model}); space the sizes further apart"
            )
        seen[s] = i
    return out
