"""The number types, the choice types and the frozen, closed section every part of the sweep
schema is built from."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


def _not_bool(value):
    """YAML's true/false would pass as 1/0: a number field refuses them."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "expected a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Positive = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]


class Section(BaseModel):
    # use_attribute_docstrings: a field's docstring becomes its description, which the generated
    # YAML reference of the docs site shows (docs/hooks/reference.py).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def one_of(names: Iterable[str]):
    """The type of a field that takes one of `names` (a registry's, e.g. SCHEDULES.names) as the
    YAML spells it: pydantic's one-line error and the JSON schema's enum list them."""
    return Literal[tuple(names)]


class _Inline:
    """The JSON schema of an enum where the field is, not as a reference into $defs."""

    def __get_pydantic_json_schema__(self, core_schema, handler):
        return dict(handler.resolve_ref_schema(handler(core_schema)))


def closed(kind: type[StrEnum]):
    """The type of a field of a closed vocabulary: the YAML's string becomes the member of `kind`;
    pydantic's error lists the values, and the JSON schema lists them inline as an enum (with the
    enum's docstring), as for one_of, so that a reader of the schema finds them at the field."""
    return Annotated[kind, _Inline()]


class Executor(StrEnum):
    """launch.executor: where a sweep's jobs run (submitit's executors)."""

    DEBUG = "debug"
    """In this process, one job at a time (tests)."""
    LOCAL = "local"
    """Subprocesses of `scalinglab run` on this machine."""
    SLURM = "slurm"
    """Jobs of a SLURM job array; one run over several nodes where launch.slurm.nodes says so."""


class Method(StrEnum):
    """How the L(N,D) solver finds its starting points (analysis.laws.solve)."""

    VARPRO = "varpro"
    """Variable projection over (alpha, beta), the linear E, A, B solved at each: fast."""
    GRID = "grid"
    """L-BFGS-B from Hoffmann et al.'s 4,500 starts: the published recipe, minutes."""
