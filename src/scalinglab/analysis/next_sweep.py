"""The sweep `scalinglab suggest` writes: the suggested (N, D) as the planner trains them (a listed
shape's N or the shape rule's, D in whole batches), written as the sweep's own settings with
grid.points, a typed SweepSpec dumped by PyYAML, so that `scalinglab run` adds them to the same
results/<sweep>/ and the next fit uses old and new runs. No JAX."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from ..model.counts import flops_per_token
from ..sweep.counts import Shape, shape_for, shapes
from ..sweep.planner import MIN_STEPS
from ..sweep.spec import GridSpec, Point, SweepSpec
from .hparams import predicted
from .suggest import Suggestion
from .sweepfit import Hyperparameters


def family(spec: SweepSpec) -> dict[int, Shape]:
    """N -> shape, for a sweep of listed shapes (grid.shapes): new runs keep to those sizes, as a
    law fitted on one family of shapes (say, 4 layers, only the width growing) says nothing of
    another's. Empty where the shape rule picks the sizes."""
    return {s.N: s for s in shapes(spec)} if spec.grid.shapes is not None else {}


def realisable(spec: SweepSpec, N: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates as the planner trains them: N of a listed shape, or of the shape the rule picks
    (one that the rule picks again from that N, so the YAML plans exactly it), D in whole batches
    of at least MIN_STEPS steps; repeats dropped."""
    tokens, listed = spec.train.batch_size * spec.model.seq_len, family(spec)
    pairs = set()
    for n, d in zip(N, D):
        n_shape = n if n in listed else shape_for(n, spec.model).N
        if n in listed or n_shape == shape_for(n_shape, spec.model).N:
            pairs.add((n_shape, max(MIN_STEPS, round(d / tokens)) * tokens))
    ordered = sorted(pairs)
    return np.array([n for n, _ in ordered], dtype=float), np.array([d for _, d in ordered], dtype=float)


def _shape(spec: SweepSpec, N: float) -> Shape:
    return family(spec).get(int(N)) or shape_for(N, spec.model)


def _point(spec: SweepSpec, N: float, D: float, hyper: Hyperparameters | None, vocab_size: int) -> Point:
    """One suggested run as a grid point: a listed shape or N, D, and in a sweep that tuned lr or
    batch size the fitted optimum at its (N, D) and the FLOPs it will compute."""
    listed = family(spec).get(int(N))
    size = {"shape": dataclasses.asdict(listed)} if listed else {"N": N}
    s = _shape(spec, N)
    C = flops_per_token(s.N, s.n_layers, s.d_model, spec.model.seq_len, vocab_size) * D
    tuned = predicted(hyper, N, D, C) if hyper else {}
    return Point.model_validate({**size, "D": D, **tuned})


def next_spec(spec: SweepSpec, s: Suggestion, hyper: Hyperparameters | None, vocab_size: int) -> SweepSpec:
    """The sweep's own settings (name included), its grid the suggested points, one seed a point:
    what was scored."""
    grid = GridSpec(points=[_point(spec, p.N, p.D, hyper, vocab_size) for p in s.picks])
    return spec.model_copy(update={"grid": grid, "seeds": spec.seeds[:1]})


def next_yaml(spec: SweepSpec, s: Suggestion, C_6ND: float, budget: float, source: Path, tuned: bool) -> str:
    """The YAML of next_spec, with a comment saying why each run is there."""
    total = (1 - s.left) or 1.0  # the share of the removal each run makes
    header = [
        f"scalinglab suggest {source} --target C_6ND={C_6ND:.4g} --budget {budget:.4g}: the runs expected to narrow",
        f"the uncertainty of the loss predicted at C_6ND most per FLOP of 6ND, by {1 - s.left**0.5:.0%} together.",
        f"scalinglab run this file --results {source.parent} adds them to {source}/; refit with scalinglab fit {source}",
    ]
    header += [
        f"grid.points[{i}]: removes {p.share:.1%} of the target's variance ({p.share / total:.0%} of what these runs "
        f"remove); 6ND = {p.cost:.3g} FLOPs, {p.cost / budget:.1%} of the budget"
        for i, p in enumerate(s.picks)
    ]
    if tuned:
        header.append("lr and batch_size: the fitted optimum at each run's (N, D) (scalinglab fit shows the laws)")
    doc = spec.model_dump(mode="json")
    doc["grid"] = spec.grid.model_dump(mode="json", exclude_none=True)
    return "".join(f"# {line}\n" for line in header) + yaml.safe_dump(doc, sort_keys=False)
