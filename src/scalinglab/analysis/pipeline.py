"""A results folder's fit end to end, for `scalinglab fit`, `plot` and `run`: its inputs, analyze,
fit.json, the figures, the lines printed. No JAX (matplotlib only when figures are made)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.markup import escape

from ..store.layout import SweepDir
from ..sweep.spec import FitSpec
from .analyze import analyze
from .select import FitInputs, fit_inputs, task_setting
from .sweepfit import SweepFit
from .text import lines
from .uncertainty import At


def fit_sweep(sweep: SweepDir, spec: FitSpec, warn: Callable[[str], None], at: Sequence[At] = ()) -> tuple[FitInputs, SweepFit]:
    """Fits the finished runs of a sweep and saves fit.json; warn gets a line per kind of run left out."""
    inputs = fit_inputs(sweep, left_out=warn)
    fit = analyze(inputs, spec, at, task_setting(sweep))
    fit.write(sweep.fit_json)
    return inputs, fit


def draw(sweep: SweepDir, inputs: FitInputs, fit: SweepFit) -> list[Path]:
    """Every figure of the fit, written into the sweep's figures/."""
    from .plot import plot_all  # noqa: PLC0415  (matplotlib only when figures are made)
    from .task_plots import plot_tasks  # noqa: PLC0415  (matplotlib only when figures are made)

    paths = plot_all(inputs.runs, fit, sweep.figures, inputs.evals)
    if fit.tasks is not None and inputs.tasks is not None:
        paths += plot_tasks(inputs.tasks, fit.tasks, sweep.figures)
    return paths


def fit_and_draw(sweep: SweepDir, spec: FitSpec, warn: Callable[[str], None]) -> list[str]:
    """`plot`, and `run` as it ends: fit_sweep and draw; the lines to print, the fit and then a
    line per figure written."""
    inputs, fit = fit_sweep(sweep, spec, warn)
    return [*lines(fit), *(escape(f"wrote {path}") for path in draw(sweep, inputs, fit))]
