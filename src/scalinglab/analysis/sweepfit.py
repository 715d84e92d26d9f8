"""SweepFit: everything fitted for a sweep or a table, as typed parts. `analyze` builds it, `fit`
prints it, the figures, the report page and `suggest` read it, and fit.json is it written down and
read back whole (`write`, `read`), with a schema version. A part that the data cannot support is
`Skipped(why)` in its place, never a missing key. No JAX.

Two computes, named apart everywhere: C, the FLOPs a run really computes (attention and
embeddings counted; runs' C, IsoFLOP budgets, Approach 1's C_seen), and C_6ND = 6 N D, the laws'
compute (the L(N,D) frontier, predictions at a compute, suggest's targets and costs)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from ..errors import InputError
from ..store.files import NotARegularFile, read_bytes, write_text
from ..sweep.types import CurvePoints, Method
from .lawtable import LawChoice
from .parts import CI, Estimate, LawFit, Part, Skipped
from .taskfit import TaskReport

SCHEMA = 3  # fit.json's version: 3 adds the law families and their table; 2 was the typed SweepFit (1 had no "schema" key)
__all__ = ["CI", "Estimate", "LawFit", "Part", "Skipped", "SweepFit"]


class MainLaw(LawFit):
    """The law of the loss over the runs (fit.law's choice), with how it was solved and how far
    the runs pin it."""

    method: Method
    n_bootstrap: int
    level: float
    loose: list[str] | None = None
    """Parameters whose interval reaches 0 or spans more than uncertainty.LOOSE (None: no bootstrap)."""
    noise: float | None = None
    """The runs' residual scale of log L about the law (prediction intervals widen by it)."""


class PowerLawFit(LawFit):
    at: str
    """The slice of the runs it was fitted on, e.g. "D=1e+06" or "compute frontier"."""


class Frontier(Part):
    """The compute-optimal allocation L(N,D) implies: N_opt ~ C_6ND^a, D_opt ~ C_6ND^b."""

    a: Estimate
    b: Estimate
    C_6ND: list[float]
    N_opt: list[float]
    D_opt: list[float]
    N_opt_ci: list[CI] | None = None
    D_opt_ci: list[CI] | None = None


class Prediction(Part):
    """At a compute C_6ND: N_opt, D_opt, tokens per parameter and the loss there; or at (N, D)."""

    C_6ND: float | None = None
    N: float | None = None
    D: float | None = None
    U: float | None = None
    law: str
    """The law that predicts (fit.law's choice)."""
    L: Estimate
    L_pi: CI | None = None
    """Where a run's measured loss should fall: the law's interval widened by the runs' noise."""
    N_opt: Estimate | None = None
    D_opt: Estimate | None = None
    tokens_per_param: Estimate | None = None


class Budget(Part):
    """One IsoFLOP budget (Approach 2): the parabola of L in log N over its runs and its minimum."""

    C: float
    N_opt: float
    D_opt: float
    L_min: float
    parabola: tuple[float, float, float]
    N: list[float]
    L: list[float]


class IsoFLOP(Part):
    budgets: list[Budget]
    N_opt: LawFit
    """N_opt = a * C^b across budgets."""
    D_opt: LawFit


class Envelope(Part):
    """Approach 1: the run on the lower envelope of the training curves at each C so far."""

    C: list[float]
    N_opt: list[float]
    D: list[float]
    """The tokens the envelope's run had seen there (6 N_opt D is its C_6ND)."""
    L: list[float]
    N_opt_law: LawFit


class HeldOut(Part):
    N: float
    D: float
    C: float
    L: float
    L_pred: float
    L_pred_ci: CI | None = None
    """The law's bootstrap interval."""
    L_pred_pi: CI | None = None
    """The prediction interval of the measured loss (the law's interval and the runs' noise)."""
    rel_error: float


class Extrapolation(Part):
    """L(N,D) fitted without the largest runs by `by`, predicting them."""

    by: str
    fraction: float
    n_fit: int
    law: LawFit
    """The law chosen on the runs in the fit (fit.law), as they alone choose it."""
    why: str = ""
    runner_up: LawFit | None = None
    held_out: list[HeldOut]
    mean_abs_rel_error: float
    max_abs_rel_error: float


class Cell(Part):
    """One (N, D) of a sweep that tunes lr (and batch size): its optimum and the run it came from."""

    N: float
    D: float
    C: float
    L: float
    """The loss at the fitted optimum: what L(N,D) is fitted on."""
    L_ci: CI | None = None
    batch_size: float
    lr_opt: float
    lr_ci: CI | None = None
    lr_interior: bool
    n_lr: int
    lr_parabola: tuple[float, float, float] | None = None
    """L against log lr at the cell's best batch size (None below 3 learning rates)."""
    run_id: str
    batch_opt: float | None = None
    batch_ci: CI | None = None
    batch_interior: bool | None = None


class Hyperparameters(Part):
    axes: list[str]
    noise: float | None
    n_bootstrap: int
    laws: dict[str, LawFit | Skipped]
    cells: list[Cell]


class CurvePointsFit(Part):
    """fit.curve_points: the final losses each size's curve law predicted at lengths between its
    trained D (analysis.curvepoints), and whether the law of the loss was fitted with them."""

    setting: CurvePoints
    curve_law: str
    used: bool
    n_points: int
    """Points predicted (used or not)."""
    sizes: int
    """Sizes whose curve law gave points."""
    error_with: float | None = None
    """The chosen law's mean backtest error with the points (None: not scored)."""
    error_without: float | None = None
    """auto: the chosen law's mean backtest error on the trained runs alone."""
    chosen_with: str | None = None
    chosen_without: str | None = None
    why: str
    left_out: list[str] = []
    """Sizes that gave no points, and why."""


class SweepFit(Part):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants", populate_by_name=True)

    version: int = Field(SCHEMA, alias="schema")
    n_runs: int
    law: MainLaw | Skipped
    laws: LawChoice | None = None
    """Every candidate law with its backtest, and why `law` was chosen (None: no law fitted)."""
    frontier: Frontier | Skipped | None = None
    predictions: list[Prediction] = []
    power_laws: list[PowerLawFit] = []
    isoflop: IsoFLOP | Skipped
    envelope: Envelope | Skipped | None = None
    """None: no training curves (a table, or every evaluation record damaged)."""
    extrapolation: Extrapolation | Skipped
    hyperparameters: Hyperparameters | None = None
    tasks: TaskReport | None = None
    curve_points: CurvePointsFit | Skipped | None = None
    """None: fit.curve_points off (and the key left out of fit.json, as before it existed)."""

    def json_text(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1, exclude={"curve_points"} if self.curve_points is None else None) + "\n"

    def write(self, path: Path) -> None:
        write_text(path, self.json_text())

    @classmethod
    def read(cls, path: Path) -> SweepFit:
        """fit.json read back; InputError (one line) when it is from another version or damaged."""
        redo = f"regenerate it with `scalinglab plot {Path(path).parent}`"
        try:
            data = json.loads(read_bytes(path, Path(path).parent) or b"")
        except NotARegularFile as e:
            raise InputError(f"{path}: {e}; {redo}") from None
        except ValueError as e:
            raise InputError(f"{path}: not JSON ({e}); {redo}") from None
        version = data.get("schema", 1) if isinstance(data, dict) else None
        if version != SCHEMA:
            raise InputError(f"{path}: written by another version of scalinglab (schema {version}, this one reads {SCHEMA}); {redo}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            where = ".".join(str(x) for x in e.errors()[0]["loc"])
            raise InputError(f"{path}: {where}: {e.errors()[0]['msg']}; {redo}") from None
