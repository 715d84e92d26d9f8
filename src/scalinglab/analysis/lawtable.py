"""The law table of fit.json: every candidate family of the loss with its fit over all the runs,
its backtest errors by rolling origin, and which law was chosen and why (choose.py builds it).
No JAX."""

from __future__ import annotations

from .parts import LawFit, Part, Skipped


class Origin(Part):
    """One rolling origin of the backtest: fitted on the runs with `by` up to `at`, the rest predicted."""

    at: float
    n_fit: int
    n_held: int


class Candidate(Part):
    name: str
    fit: LawFit | Skipped
    """Over every run, with bootstrap intervals; Skipped when the runs cannot fit it (why)."""
    errors: list[float | None]
    """Per origin: mean |relative error| of the held runs' loss (None: not fitted there)."""
    score: float | None = None
    """Mean of the errors (None unless fitted at every origin)."""
    aicc: float | None = None
    noise: float | None = None
    """Residual scale of log L about the fit (a robust standard deviation)."""


class LawChoice(Part):
    by: str
    """What the origins roll along: C, N or D (fit.holdout_by)."""
    origins: list[Origin]
    candidates: list[Candidate]
    chosen: str
    runner_up: str | None = None
    why: str
