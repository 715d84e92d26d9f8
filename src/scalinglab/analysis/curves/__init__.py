"""Curve laws: whole training-loss curves under any learning-rate schedule (the multi-power law,
the annealing law), fitted jointly over runs with different schedules. Pure numpy and scipy."""

from . import annealing, multi_power  # noqa: F401  (registers the laws)
from .curve import Curve
from .fit import CurveFit, fit_curves
from .law import CURVE_LAWS, CurveLaw, CurveLawName
from .rates import lr_per_step_from_run, lr_per_step_from_table

__all__ = ["CURVE_LAWS", "Curve", "CurveFit", "CurveLaw", "CurveLawName", "fit_curves", "lr_per_step_from_run", "lr_per_step_from_table"]
