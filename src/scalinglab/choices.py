"""Registered choices: families of small frozen types chosen by name (learning-rate schedules,
parametrizations, objectives), each holding only the fields it uses, so code asks the chosen type
instead of switching on a string. Pure Python: the planner builds them, models and training use them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from typing_extensions import TypeVar  # TypeVar(default=...) (PEP 696), in typing from Python 3.13

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from pydantic import BaseModel


class Choice:
    """Base of every registered choice; its subclasses are frozen dataclasses. A family's base
    class names its registry; each member is registered under the name the YAML uses."""

    registry: ClassVar[Registry[Any]]
    name: ClassVar[str]
    # Declared, not set: each subclass is a dataclass, which the dataclasses functions need.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def record(self) -> dict[str, Any]:
        """The flat record of this choice: the family's key holds its name, then its fields."""
        return {self.registry.family: self.name, **dataclasses.asdict(self)}


C = TypeVar("C", bound=Choice, default=Choice)
"""The family's base class (a registry declared without one holds any Choice)."""
D = TypeVar("D", bound="DataclassInstance")


class Registry(Generic[C]):
    """name -> class, for one family; `family` is the key that names the choice in YAML and records."""

    def __init__(self, family: str):
        self.family = family
        self.classes: dict[str, type[C]] = {}

    def register(self, name: str) -> Callable[[type[C]], type[C]]:
        def add(cls: type[C]) -> type[C]:
            cls.name = name
            self.classes[name] = cls
            return cls

        return add

    @property
    def names(self) -> tuple[str, ...]:
        """Every registered name, in the order registered: the YAML's choices."""
        return tuple(self.classes)

    def having(self, field: str) -> tuple[str, ...]:
        """The names of the choices whose type declares `field`: the only ones a spec setting of
        that name reaches, as `pick` copies fields by name."""
        return tuple(name for name, cls in self.classes.items() if field in {f.name for f in dataclasses.fields(cls)})

    def __getitem__(self, name: str) -> type[C]:
        try:
            return self.classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.family} {name!r}; choose one of {', '.join(self.classes)}") from None

    def from_record(self, record: dict[str, Any]) -> C:
        cls = self[record[self.family]]
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})


def field_names(source: DataclassInstance | BaseModel) -> tuple[str, ...]:
    """The declared fields of a pydantic model or a dataclass instance."""
    if dataclasses.is_dataclass(source):
        return tuple(f.name for f in dataclasses.fields(source))
    return tuple(type(source).model_fields)


def pick(cls: type[D], *sources: DataclassInstance | BaseModel, **values: Any) -> D:
    """An instance of the dataclass `cls`: each field from `values`, else from the first source
    (a spec section or a dataclass) that declares a field of that name."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = values[f.name]
        else:
            source = next((s for s in sources if f.name in field_names(s)), None)
            if source is not None:
                kwargs[f.name] = getattr(source, f.name)
    return cls(**kwargs)
