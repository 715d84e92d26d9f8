"""Registered choices: families of small frozen types chosen by name (learning-rate schedules,
parametrizations, objectives), each holding only the fields it uses, so code asks the chosen type
instead of switching on a string. Pure Python: the planner builds them, models and training use them."""

from __future__ import annotations

import dataclasses
from typing import ClassVar


class Choice:
    """Base of every registered choice; its subclasses are frozen dataclasses. A family's base
    class names its registry; each member is registered under the name the YAML uses."""

    registry: ClassVar[Registry]
    name: ClassVar[str]

    def record(self) -> dict:
        """The flat record of this choice: the family's key holds its name, then its fields."""
        return {self.registry.family: self.name, **dataclasses.asdict(self)}


class Registry:
    """name -> class, for one family; `family` is the key that names the choice in YAML and records."""

    def __init__(self, family: str):
        self.family = family
        self.classes: dict[str, type[Choice]] = {}

    def register(self, name: str):
        def add(cls: type[Choice]) -> type[Choice]:
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

    def __getitem__(self, name: str) -> type[Choice]:
        try:
            return self.classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.family} {name!r}; choose one of {', '.join(self.classes)}") from None

    def from_record(self, record: dict) -> Choice:
        cls = self[record[self.family]]
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})


def field_names(source) -> tuple[str, ...]:
    """The declared fields of a pydantic model or a dataclass instance."""
    if dataclasses.is_dataclass(source):
        return tuple(f.name for f in dataclasses.fields(source))
    return tuple(type(source).model_fields)


def pick(cls, *sources, **values):
    """An instance of the dataclass `cls`: each field from `values`, else from the first source
    (a spec section or a dataclass) that declares a field of that name."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = values[f.name]
        else:
            source = next((s for s in sources if f.name in field_names(s)), None)
            if source is not None:
                kwargs[f.name] = getattr(source, f.name)
    return cls(**kwargs)
