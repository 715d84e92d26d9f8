"""A results folder's fit end to end, for `scalinglab fit`, `plot` and `run`: its inputs, analyze,
fit.json, the figures, the lines printed. No JAX (matplotlib only when figures are made)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.markup import escape

from ..store.layout import SweepDir
from ..store.targets import Unwritable, folder, new_file
from ..sweep.spec import FitSpec
from ..sweep.types import CurvePoints
from .analyze import analyze
from .select import FitInputs, fit_inputs, task_setting
from .sweepfit import SweepFit
from .text import lines
from .uncertainty import At


def fit_sweep(sweep: SweepDir, spec: FitSpec, warn: Callable[[str], None], at: Sequence[At] = ()) -> tuple[FitInputs, SweepFit]:
    """Fits the finished runs of a sweep and saves fit.json; warn gets a line per kind of run left out."""
    inputs, fit = _fitted(sweep, spec, warn, at)
    fit.write(sweep.fit_json)
    return inputs, fit


def _fitted(sweep: SweepDir, spec: FitSpec, warn: Callable[[str], None], at: Sequence[At]) -> tuple[FitInputs, SweepFit]:
    """The fit, once the sweep is read and where it goes checked; nothing written."""
    inputs = fit_inputs(sweep, left_out=warn, curves=spec.curve_points != CurvePoints.OFF)
    check_outputs(sweep)
    return inputs, analyze(inputs, spec, at, task_setting(sweep))


def check_outputs(sweep: SweepDir) -> None:
    """What fit_and_draw writes, checked before the fit: fit.json a file (or none), figures/ a
    folder (or none), both writable."""
    new_file(sweep.fit_json, str(sweep.fit_json), force=True, fix="move it away and run again")
    folder(sweep.figures, str(sweep.figures), fix="move it away and run again")
    for name in os.listdir(sweep.figures) if sweep.figures.is_dir() else ():
        if (sweep.figures / name).is_dir():
            raise Unwritable(f"{sweep.figures / name}: a folder where scalinglab writes a figure; move it away and run again")


def draw(sweep: SweepDir, inputs: FitInputs, fit: SweepFit) -> list[Path]:
    """Every figure of the fit, drawn into a new folder and then moved into figures/, so that a
    figure that fails leaves figures/ as it was."""
    from .plot import plot_all  # noqa: PLC0415  (matplotlib only when figures are made)
    from .task_plots import plot_tasks  # noqa: PLC0415  (matplotlib only when figures are made)

    with tempfile.TemporaryDirectory(prefix=".figures.", dir=sweep.path) as new:
        paths = plot_all(inputs.runs, fit, Path(new), inputs.evals)
        if fit.tasks is not None and inputs.tasks is not None:
            paths += plot_tasks(inputs.tasks, fit.tasks, Path(new))
        sweep.figures.mkdir(exist_ok=True)
        for path in paths:
            os.replace(path, sweep.figures / path.name)  # each one atomic: readers see the old figure or the new
    return [sweep.figures / path.name for path in paths]


def fit_and_draw(sweep: SweepDir, spec: FitSpec, warn: Callable[[str], None]) -> list[str]:
    """`plot`, and `run` as it ends: the fit and its figures, each written only once all are made;
    the lines to print, the fit and then a line per figure written."""
    inputs, fit = _fitted(sweep, spec, warn, ())
    figures = draw(sweep, inputs, fit)
    fit.write(sweep.fit_json)
    return [*lines(fit), *(escape(f"wrote {path}") for path in figures)]
