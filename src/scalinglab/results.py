"""Reading a sweep from Python: `load(path)` returns its runs as a DataFrame (`per_eval=True`: one
row per evaluation; `tasks=True`: one row per (run, step, task, shots, strategy), with
`items=True` per test item; `curves=True`: one row per point of each run's training curve),
without JAX; damaged files are reported as `DamagedResults` warnings. The
store package holds the implementation; this is its public name."""

from .store.files import DamagedResults
from .store.frame import load

__all__ = ["DamagedResults", "load"]
