"""The number types, the choice types and the frozen, closed section every part of the sweep
schema is built from."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema


def _not_bool(value):
    """YAML's true/false would pass as 1/0: a number field refuses them."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "expected a number, not true/false")
    return value


MAX_COUNT = 2**63 - 1
"""The most an integer setting holds: an int64's, which numpy and pandas (plan, the results) read
it as; far past any real sweep's."""


def _count(value):
    """An integer setting past MAX_COUNT (1e30, or more digits than an int64 has) is refused by one
    message, whether the YAML wrote it as a float or an int."""
    value = _not_bool(value)
    if isinstance(value, int | float) and abs(value) > MAX_COUNT:
        raise PydanticCustomError("count_too_big", f"beyond what a count can hold (at most {MAX_COUNT:,})")
    return value


Int = Annotated[int, BeforeValidator(_count)]
"""A whole number (its field's Field(ge=...) gives the floor)."""
Count = Annotated[int, BeforeValidator(_count), Field(ge=1)]
Float = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
"""A finite number: .inf or .nan would overflow what is derived from it (steps, shapes, FLOPs)."""
Positive = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, allow_inf_nan=False)]
MAX_SEED = 2**32
Seed = Annotated[int, BeforeValidator(_count), Field(ge=0, lt=MAX_SEED)]
"""A run's seed: what numpy's generators take."""


class Section(BaseModel):
    # use_attribute_docstrings: a field's docstring becomes its description, which the generated
    # YAML reference of the docs site shows (docs/hooks/reference.py).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class OneOf:
    """The metadata of a field that takes one of `names` (a registry's, e.g. SCHEDULES.names) as the
    YAML spells it, `Annotated[str, OneOf(SCHEDULES.names)]`: pydantic validates it as
    Literal[names] would, so its one-line error and the JSON schema's enum list them, while the
    checker sees the str it is (the names are known only when the registry is filled)."""

    def __init__(self, names: Iterable[str]):
        self.names = tuple(names)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.literal_schema(list(self.names))


class _Inline:
    """The JSON schema of an enum where the field is, not as a reference into $defs."""

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return dict(handler.resolve_ref_schema(handler(schema)))


_Enum = TypeVar("_Enum", bound=StrEnum)

Closed = Annotated[_Enum, _Inline()]
"""The type of a field of a closed vocabulary, `Closed[Kind]`: the YAML's string becomes the member
of the StrEnum `Kind`; pydantic's error lists the values, and the JSON schema lists them inline as
an enum (with the enum's docstring), as for OneOf, so that a reader of the schema finds them at the
field."""


class Executor(StrEnum):
    """launch.executor: where a sweep's jobs run (submitit's executors)."""

    DEBUG = "debug"
    """In this process, one job at a time (tests)."""
    LOCAL = "local"
    """Subprocesses of `scalinglab run` on this machine."""
    SLURM = "slurm"
    """Jobs of a SLURM job array; one run over several nodes where launch.slurm.nodes says so."""


class LawName(StrEnum):
    """fit.law: the families of L(N, D) a sweep's loss is fitted with (analysis.laws registers one
    law under each name), or auto."""

    AUTO = "auto"
    """Every family the runs can fit, chosen by a rolling-origin backtest."""
    CHINCHILLA = "chinchilla"
    """Hoffmann et al. 2022: L = E + A/N^alpha + B/D^beta."""
    FARSEER = "farseer"
    """Li et al. 2025: L = exp(s N^q + S) + exp(B N^b + Q) D^-exp(A N^a + E)."""
    KAPLAN = "kaplan"
    """Kaplan et al. 2020: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D."""
    DATA_CONSTRAINED = "data_constrained"
    """Muennighoff et al. 2023: Chinchilla's form at the effective N and D of repeated data (needs U)."""
    POWER_C = "power_C"
    """L = E + a C_6ND^b, E fitted or pinned (fit.pin_E)."""


class Method(StrEnum):
    """How the L(N,D) solver finds its starting points (analysis.laws.solve)."""

    VARPRO = "varpro"
    """Variable projection over (alpha, beta), the linear E, A, B solved at each: fast."""
    GRID = "grid"
    """L-BFGS-B from Hoffmann et al.'s 4,500 starts: the published recipe, minutes."""


class CurvePoints(StrEnum):
    """fit.curve_points: whether the L(N,D) fit also reads final losses that each size's curve law
    predicts for runs of lengths between its trained ones (analysis.curvepoints)."""

    OFF = "off"
    """Trained runs only."""
    ON = "on"
    """The trained runs and the predicted points."""
    AUTO = "auto"
    """The points kept only where they lower the chosen law's backtest error."""
