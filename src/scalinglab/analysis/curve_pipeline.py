"""`scalinglab fit --curves` end to end, for a sweep (curves.json and a figure per size, written
only once all are made, where they go checked first) or a table (nothing written but --out), and
the loss predicted along --schedule. No JAX (matplotlib only when figures are made)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.markup import escape

from ..errors import FitError
from ..store.files import write_text
from ..store.layout import SweepDir
from ..store.targets import new_file
from .curve_csv import table_curves
from .curve_text import size_name
from .curves.sizes import HUBER_DELTA, SKIP_EARLY, CurveReport, SizeCurveFit, SkippedSize, fit_sizes, predict_schedule
from .curves.sweep import fit_sweep_curves
from .pipeline import check_outputs
from .table import read_table


@dataclass(frozen=True)
class CurveSettings:
    law: str = "multi_power"
    bootstrap: int = 0
    huber_delta: float = HUBER_DELTA
    schedule: tuple[np.ndarray, np.ndarray] | None = None
    """(steps, rates) to predict the loss along."""
    schedule_name: str = ""
    skip_early: float = SKIP_EARLY
    """The share of each run's first steps whose points are not fitted (Curve.skipping)."""


def _report(source: str, loss: str, s: CurveSettings, fits: list[SizeCurveFit], skipped: list[SkippedSize]) -> CurveReport:
    if not fits:
        why = "; ".join(f"{size_name(k.N)}: {k.skipped}" for k in skipped)
        raise FitError(f"{source}: no size's curves can be fitted with {s.law}: {why}")
    predictions = predict_schedule(fits, *s.schedule) if s.schedule is not None else []
    sizes = [f.record() for f in fits]
    return CurveReport(source=source, loss=loss, law=s.law, skip_early=s.skip_early, sizes=sizes, skipped=skipped, predictions=predictions)


def table_report(path: str, mapping: dict[str, str], s: CurveSettings) -> CurveReport:
    """A table's curves fitted per N (all runs as one group without --map N)."""
    curves, sized = table_curves(read_table(Path(path)), mapping)
    fits, skipped = fit_sizes(curves, s.law, s.bootstrap, s.huber_delta, sized, s.skip_early)
    return _report(path, mapping["loss"], s, fits, skipped)


def sweep_report(sweep: SweepDir, loss: str | None, s: CurveSettings, warn: Callable[[str], None]) -> tuple[CurveReport, list[str]]:
    """A sweep's curves fitted per N, curves.json and the figures written: (the report, a line per
    file written)."""
    check_outputs(sweep)
    new_file(sweep.curves_json, str(sweep.curves_json), force=True, fix="move it away and run again")
    fits, skipped, used = fit_sweep_curves(sweep.path, s.law, loss, s.bootstrap, s.huber_delta, warn, s.skip_early)
    report = _report(str(sweep.path), used.value, s, fits, skipped)
    figures = draw(sweep, fits, used.value)
    write_text(sweep.curves_json, report.json_text())
    return report, [escape(f"wrote {p}") for p in (sweep.curves_json, *figures)]


def draw(sweep: SweepDir, fits: list[SizeCurveFit], loss: str) -> list[Path]:
    """A figure per fitted size, drawn into a new folder and then moved into figures/."""
    from .curve_plots import plot_size  # noqa: PLC0415  (matplotlib only when figures are made)

    names = [sweep.curve_figure(f.N if f.N is not None else 0.0).name for f in fits]
    with tempfile.TemporaryDirectory(prefix=".figures.", dir=sweep.path) as new:
        paths = [plot_size(f, Path(new) / name, loss) for f, name in zip(fits, names, strict=True)]
        sweep.figures.mkdir(exist_ok=True)
        for path in paths:
            os.replace(path, sweep.figures / path.name)
    return [sweep.figures / name for name in names]


def write_predictions(report: CurveReport, path: Path) -> None:
    """--out FILE: the predictions as CSV, one row per (N, step)."""
    table = pd.DataFrame([p.model_dump() for p in report.predictions], columns=["N", "step", "lr", "loss", "loss_low", "loss_high"])
    write_text(path, table.to_csv(index=False))
