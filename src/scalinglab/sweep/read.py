"""Sweep YAML -> SweepSpec. PyYAML's safe loader only (a tag cannot build a Python object); a key
given twice, nesting deeper than any sweep needs, YAML aliases that repeat or contain themselves,
and every validation error are reported as one SpecError line naming the field and what to do."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import SpecError
from .rules import check
from .spec import SweepSpec

# The deepest value a sweep has is 4 levels down (launch.slurm.extra.<flag>, grid.shapes[i].n_layers).
MAX_DEPTH = 8
MAX_VALUES = 100_000  # far more than any sweep; YAML aliases can multiply a small file past it
_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) or part == "" else (f".{part}" if out else str(part))
    return out or "(top level)"


def _too_deep(where: str) -> SpecError:
    return SpecError(f"{where}: nested deeper than {MAX_DEPTH} levels; a sweep's values are at most 4 levels down")


def _check_nesting(text: str, origin: str) -> None:
    """Refuses nesting past MAX_DEPTH from the token stream, before PyYAML's composer, which
    recurses once per level, would run out of stack. Sequence levels show as [] in the path."""
    keys: list[str] = []
    after_key = False
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            keys.append("" if "Sequence" in type(token).__name__ else "?")
            if len(keys) > MAX_DEPTH:
                raise _too_deep(f"{origin}:{token.start_mark.line + 1}: {_path(keys[:MAX_DEPTH])}")
        elif isinstance(token, _CLOSE) and keys:
            keys.pop()
        elif isinstance(token, yaml.ScalarToken) and after_key and keys:
            keys[-1] = token.value
        after_key = isinstance(token, yaml.KeyToken)


def _check_size(data: object, origin: str) -> None:
    """Refuses what the token stream cannot show: aliases nesting a value in itself, or repeating
    values past MAX_VALUES. Walks without recursion."""
    stack: list[tuple[object, tuple[object, ...]]] = [(data, ())]
    seen = 0
    while stack:
        value, loc = stack.pop()
        seen += 1
        if len(loc) > MAX_DEPTH:
            raise _too_deep(f"{origin}: {_path(loc[:MAX_DEPTH])}")
        if seen > MAX_VALUES:
            raise SpecError(f"{origin}: more than {MAX_VALUES:,} values (YAML aliases repeating a value?); a sweep is far smaller")
        if isinstance(value, dict):
            stack += [(v, (*loc, k)) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, (*loc, i)) for i, v in enumerate(value)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping instead of silently keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The model class whose field set holds the last key of loc (for did-you-mean)."""
    cls: type[BaseModel] = SweepSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        cands = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        cands += [a for c in getattr(ann, "__args__", ()) for a in getattr(c, "__args__", ())]
        models = [a for a in cands if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return None
        cls = models[0]
    return cls


def _error_line(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    where = _path(loc)
    if err["type"] == "extra_forbidden":
        section = _section_at(loc)
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key; {hint}"
    if err["type"] == "missing":
        return f"{where}: required, but missing"
    return f"{where}: {err['msg']} (got {err['input']!r})"


def parse(data: object, origin: str = "sweep") -> SweepSpec:
    if data is None:
        raise SpecError(f"{origin}: empty; a sweep needs at least name and grid")
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: expected a mapping of sections (name, data, model, ...), got {type(data).__name__}")
    _check_size(data, origin)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        # A misspelt key also makes its correct spelling "missing": report the typo.
        first = min(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        raise SpecError(_error_line(first)) from None
    check(spec)
    return spec


def load(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}); save the sweep as UTF-8") from None
    try:
        _check_nesting(text, str(path))
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise SpecError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse(data, str(path))


def with_launch(spec: SweepSpec, **flags) -> SweepSpec:
    """The spec with launch fields replaced by command-line flags (None: not given), which win over
    the YAML; parsed and checked whole again, as a flag can break a rule across sections
    (--executor local on a sweep whose runs span 2 SLURM nodes). An error names the flags first."""
    changes = {k: v for k, v in flags.items() if v is not None}
    if not changes:
        return spec
    data = spec.model_dump(mode="json")
    data["launch"].update(changes)
    given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())
    try:
        return parse(data, given)
    except SpecError as e:
        raise SpecError(f"{given}: {e}") from None
