"""Curve laws: whole training-loss curves under any learning-rate schedule (the multi-power law,
the annealing law), fitted jointly over runs with different schedules. Pure numpy and scipy."""

from . import annealing, multi_power  # noqa: F401  (registers the laws)
from .bootstrap import CurveIntervals, bootstrap_curves
from .curve import Curve
from .fit import CurveFit, fit_curves
from .frame import curves_from_frame
from .law import CURVE_LAWS, CurveLaw, CurveLawName
from .rates import lr_per_step_from_run, lr_per_step_from_table
from .sizes import CurveLoss, CurveReport, SizeCurveFit, fit_sizes, predict_schedule
from .sweep import fit_sweep_curves

__all__ = [
    "CURVE_LAWS",
    "Curve",
    "CurveFit",
    "CurveIntervals",
    "CurveLaw",
    "CurveLawName",
    "CurveLoss",
    "CurveReport",
    "SizeCurveFit",
    "bootstrap_curves",
    "curves_from_frame",
    "fit_curves",
    "fit_sizes",
    "fit_sweep_curves",
    "lr_per_step_from_run",
    "lr_per_step_from_table",
    "predict_schedule",
]
