"""Downstream tasks: items, their few-shot prompts and the continuations a model scores, and user
tasks read from JSONL files in the spirit of lm-evaluation-harness task configs. No JAX.

A prompt is the chosen demonstrations (each context + target_delimiter + answer) joined by
fewshot_delimiter, then fewshot_delimiter, then the test item's context; the continuations start
with target_delimiter, so prompt + continuation reads like a demonstration."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..errors import SpecError
from .sources import json_object

MAX_ITEMS = 100_000
"""The most items of a task file that are read (eval.test_items and eval.pool_items are bounded by
it): a task is scored on far fewer, and each item is scored at every task evaluation of every run."""


class TaskKind(StrEnum):
    """How a task is scored, as tasks.jsonl records it: multiple_choice, the gold choice among the
    choices (acc, acc_norm, p_gold); generation, the target's tokens (exact_match, token_acc)."""

    MULTIPLE_CHOICE = "multiple_choice"
    GENERATION = "generation"


class OutputType(StrEnum):
    """A user task's output_type, in lm-evaluation-harness's words."""

    MULTIPLE_CHOICE = "multiple_choice"
    GENERATE_UNTIL = "generate_until"

    @property
    def kind(self) -> TaskKind:
        return TaskKind.MULTIPLE_CHOICE if self is OutputType.MULTIPLE_CHOICE else TaskKind.GENERATION


@dataclass(frozen=True)
class Item:
    id: str
    """Unique within its split; what is recorded as the chosen demonstrations."""
    context: str
    choices: tuple[str, ...] = ()
    """Multiple choice: the candidate answers."""
    gold: int = 0
    """Multiple choice: the index of the right one in choices."""
    target: str = ""
    """Generation: the right answer."""

    @property
    def answer(self) -> str:
        return self.choices[self.gold] if self.choices else self.target


@dataclass(frozen=True)
class Task:
    name: str
    kind: TaskKind
    pool: tuple[Item, ...]
    """Where demonstrations are drawn from, and only from here."""
    test: tuple[Item, ...]
    chance: float
    """Accuracy of guessing: the mean of 1/len(choices) over test items; ~0 for generation."""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"

    def demonstration(self, item: Item) -> str:
        return item.context + self.target_delimiter + item.answer

    def prompt(self, item: Item, demos: Sequence[Item]) -> str:
        return self.fewshot_delimiter.join([*(self.demonstration(d) for d in demos), item.context])

    def continuations(self, item: Item) -> list[str]:
        """What is scored after the prompt: each choice, or the generation target, after target_delimiter."""
        if self.kind == TaskKind.MULTIPLE_CHOICE:
            return [self.target_delimiter + c for c in item.choices]
        return [self.target_delimiter + item.target]


def load_jsonl_task(
    name: str,
    test: str | Path,
    fewshot: str | Path | None,
    output_type: OutputType,
    doc_to_text: str,
    doc_to_choice: str | None,
    doc_to_target: str,
    target_delimiter: str = " ",
    fewshot_delimiter: str = "\n\n",
    n_test: int | None = None,
    n_pool: int | None = None,
) -> Task:
    """A user task: at most n_test items of the `test` JSONL file (None: all) and a pool of at most
    n_pool items of `fewshot`, both in file order. doc_to_text, doc_to_choice and doc_to_target name
    the fields of each line's object that hold the context, the choices (multiple choice) and the
    answer (for multiple choice an index into the choices or one of them). Without a fewshot file the
    pool is the test file's items, and demonstration choice never shows an item as its own demonstration."""
    if output_type not in tuple(OutputType):
        raise SpecError(f"task {name}: output_type '{output_type}' is not one of {', '.join(OutputType)}")
    kind = OutputType(output_type).kind
    if kind == TaskKind.MULTIPLE_CHOICE and not doc_to_choice:
        raise SpecError(f"task {name}: output_type multiple_choice needs doc_to_choice (the field that holds the choices)")
    for field, n in (("n_test", n_test), ("n_pool", n_pool)):
        if n is not None and n < 1:
            raise SpecError(f"task {name}: {field} is {n}; give at least 1 (or leave it out for the whole file)")
    fields = (doc_to_text, doc_to_choice if kind == TaskKind.MULTIPLE_CHOICE else None, doc_to_target)
    tests = _read_items(Path(test), fields, _most(n_test, n_pool) if fewshot is None else n_test)
    pool = tests[:n_pool] if fewshot is None else _read_items(Path(fewshot), fields, n_pool)
    tests = tests[:n_test]
    chance = sum(1 / len(t.choices) for t in tests) / len(tests) if kind == TaskKind.MULTIPLE_CHOICE else 0.0
    return Task(name, kind, tuple(pool), tuple(tests), chance, target_delimiter, fewshot_delimiter)


def _most(a: int | None, b: int | None) -> int | None:
    """The larger limit, None (no limit) if either is."""
    return None if a is None or b is None else max(a, b)


def _read_items(path: Path, fields: tuple[str, str | None, str], limit: int | None) -> list[Item]:
    """The first `limit` items of a JSONL file (None: all), checked; reading stops there."""
    items: list[Item] = []
    ids: dict[str, int] = {}  # item id -> its line
    for n, row in _rows(path):
        if limit is not None and len(items) == limit:
            break
        if len(items) == MAX_ITEMS:
            raise SpecError(f"{path}:{n}: more than {MAX_ITEMS:,} items; a task is scored on far fewer, cut the file")
        item = _item(row, path, n, fields)
        if item.id in ids:
            raise SpecError(f"{path}:{n}: id {item.id!r} repeats line {ids[item.id]}; give each line its own id")
        ids[item.id] = n
        items.append(item)
    if not items:
        raise SpecError(f"{path}: no items (the file is empty); give one JSON object a line")
    return items


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line."""
    if not path.is_file():
        raise SpecError(f"{path}: no such file; give the path of a JSONL task file")
    with open(path, "rb") as lines:
        # Lines end at "\n" only: JSON strings may hold U+2028, where str.splitlines() would cut.
        for n, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SpecError(f"{path}:{n}: not UTF-8 text (byte {e.start} of the line); save the file as UTF-8") from None
            if not line.strip():
                continue
            yield n, json_object(line, f"{path}:{n}")


def _item(row: dict, path: Path, n: int, fields: tuple[str, str | None, str]) -> Item:
    """Line n's item: fields are (doc_to_text, doc_to_choice or None for generation, doc_to_target)."""
    text_field, choice_field, target_field = fields
    where = f"{path}:{n}"
    context = _text(_field(row, text_field, "doc_to_text", where), f"{where}: field {text_field!r} (doc_to_text)")
    item_id = _item_id(row, n, where)
    target = _field(row, target_field, "doc_to_target", where)
    if choice_field is None:
        return Item(item_id, context, target=_text(target, f"{where}: field {target_field!r} (doc_to_target)"))
    choices = _field(row, choice_field, "doc_to_choice", where)
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise SpecError(f"{where}: field {choice_field!r} (doc_to_choice) is {json.dumps(choices)[:40]}, not a list of strings")
    if len(choices) < 2:
        raise SpecError(f"{where}: field {choice_field!r} (doc_to_choice) has {len(choices)} choice(s); give at least 2")
    for i, choice in enumerate(choices):
        _text(choice, f"{where}: field {choice_field!r} (doc_to_choice) [{i}]")
    return Item(item_id, context, tuple(choices), _gold(target, choices, f"{where}: field {target_field!r} (doc_to_target)"))


def _text(value, where: str) -> str:
    """A context, choice or target: a string with at least one character, as an empty prompt and
    continuation make a row of no tokens to score."""
    if not isinstance(value, str):
        raise SpecError(f"{where} is {json.dumps(value)[:40]}, not a string")
    if not value:
        raise SpecError(f"{where} is empty; give it some text")
    return value


def _item_id(row: dict, n: int, where: str) -> str:
    """The item's "id" (a string or an integer), or its line number."""
    if "id" not in row:
        return str(n)
    if isinstance(row["id"], bool) or not isinstance(row["id"], str | int):
        raise SpecError(f"{where}: field 'id' is {json.dumps(row['id'])[:40]}; give a string or an integer")
    return str(row["id"])


def _field(row: dict, field: str, key: str, where: str):
    if field not in row:
        raise SpecError(f"{where}: no field {field!r} (named by {key}); keys: {', '.join(row) or 'none'}")
    return row[field]


def _gold(target, choices: list[str], where: str) -> int:
    """The index of the right choice: target is an index into choices or one of them."""
    if isinstance(target, str):
        if target not in choices:
            raise SpecError(f"{where} is {target!r}, not one of the choices {json.dumps(choices)[:60]}")
        return choices.index(target)
    if isinstance(target, bool) or not isinstance(target, int):
        raise SpecError(f"{where} is {json.dumps(target)[:40]}; give an index into the choices or one of them")
    if not 0 <= target < len(choices):
        raise SpecError(f"{where} is {target}, out of range for {len(choices)} choices (0..{len(choices) - 1})")
    return target
