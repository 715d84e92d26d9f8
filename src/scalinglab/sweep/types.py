"""The number types and the frozen, closed section every part of the sweep schema is built from."""

from __future__ import annotations

from typing import Annotated

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
