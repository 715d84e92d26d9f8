"""Sweeps compared as a compute multiplier k (`scalinglab compare`): each sweep's law of the loss
(multiplier.py), optionally with exponents shared (shared.py), task accuracy at equal compute
(tasks.py), and the report as text, figure or page (text.py, plots.py, page.py). No JAX."""

from .multiplier import CompareReport, Comparison, SweepLaw, compare, sweep_law

__all__ = ["CompareReport", "Comparison", "SweepLaw", "compare", "sweep_law"]
