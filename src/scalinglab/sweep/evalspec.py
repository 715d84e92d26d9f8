"""The sweep YAML's `eval:` section: the downstream tasks each run is scored on at its evaluations,
their shot counts and demonstration strategies. Its defaults live in the fields below and nowhere
else; sweep/spec.py holds it as SweepSpec.eval."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ..data.builtin_tasks import BUILTIN
from ..data.demonstrations import Strategy, fewest_others
from ..data.objectives import OBJECTIVES
from ..data.tasks import MAX_ITEMS, OutputType, Task, load_jsonl_task
from ..errors import SpecError
from .types import Closed, Int, Section


class TaskEntry(Section):
    """A user task from JSONL files, in the spirit of lm-evaluation-harness task configs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    test: str
    """JSONL file of the test items, one JSON object per line."""
    fewshot: str | None = None
    """JSONL file the demonstrations are drawn from; default: the test file (an item is never its own)."""
    output_type: Closed[OutputType] = OutputType.MULTIPLE_CHOICE
    doc_to_text: str = "context"
    """The field holding each item's context (question)."""
    doc_to_choice: str = "choices"
    """multiple_choice: the field holding the list of choices."""
    doc_to_target: str = "gold"
    """multiple_choice: the field holding the gold choice (its index, or its text); generate_until: the target text."""
    target_delimiter: str = " "
    """Between a context and its answer."""
    fewshot_delimiter: str = "\n\n"
    """Between demonstrations, and between the last one and the test item."""


class EvalSpec(Section):
    tasks: list[str | TaskEntry] = []
    """Built-in task names (recall, copy, cloze, completion) or user tasks {name, test, ...}."""
    num_fewshot: list[Annotated[Int, Field(ge=0)]] = Field([0], min_length=1)
    """Demonstrations per prompt; every task is scored at each."""
    strategies: list[Closed[Strategy]] = Field([Strategy.RANDOM], min_length=1)
    """How demonstrations are chosen: random, first_n, bm25, embedding (the model's mean hidden
    state), mmr (diversity), difficulty (the model's easiest); with 0 shots there is nothing to choose."""
    test_items: Int = Field(100, ge=1, le=MAX_ITEMS)
    """Test items scored per task (the first of its test split)."""
    pool_items: Int = Field(64, ge=1, le=MAX_ITEMS)
    """Items of each task's demonstration pool."""
    every: Int = Field(1, ge=1)
    """Score the tasks at every `every`-th validation evaluation, counted back from the last (which
    is always scored). A cooldown branch scores only its last; before its branch point it has its
    trunk's scores."""


def builtin_name(name: str, where: str) -> str:
    if name not in BUILTIN:
        close = difflib.get_close_matches(name, BUILTIN, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SpecError(
            f"{where}: {name!r} is not a built-in task; {hint}give one of {', '.join(BUILTIN)} "
            "or a user task {name, test: FILE.jsonl, ...}"
        )
    return name


def check_eval(spec: EvalSpec, objective: str) -> None:
    """Task names, files and shot counts; a user task's files are read once here, so that a bad
    line is refused before anything is planned or written."""
    if spec.tasks and not OBJECTIVES[objective].causal:
        raise SpecError(
            f"eval.tasks: scored by the likelihood of answers after a prompt, which needs "
            f"train.objective 'causal', not {objective!r}; remove eval.tasks"
        )
    if spec.tasks and max(spec.num_fewshot) > spec.pool_items:
        raise SpecError(
            f"eval.num_fewshot: {max(spec.num_fewshot)} demonstrations but eval.pool_items is "
            f"{spec.pool_items}; raise pool_items or lower the shots"
        )
    names = []
    for i, task in enumerate(spec.tasks):
        where = f"eval.tasks[{i}]"
        if isinstance(task, str):
            names.append(builtin_name(task, where))
            continue
        names.append(task.name)
        for field in ("test", "fewshot"):
            path = getattr(task, field)
            if path is not None and not Path(path).is_file():
                raise SpecError(f"{where}.{field}: {path} is not a file; give a JSONL file of the task's items")
        try:
            _check_pool(load_jsonl_task(**task_arguments(task), n_test=spec.test_items, n_pool=spec.pool_items), spec, task)
        except SpecError as e:
            raise SpecError(f"{where} ({task.name}): {e}") from None
    repeated = {n for n in names if names.count(n) > 1}
    if repeated:
        raise SpecError(f"eval.tasks: {sorted(repeated)[0]!r} is listed twice; give each task once")


def _check_pool(loaded: Task, spec: EvalSpec, task: TaskEntry) -> None:
    """Every test item has eval.num_fewshot demonstrations to draw, besides itself; choosing them
    would otherwise fail at the run's first task evaluation, after training."""
    item, n = fewest_others(loaded)
    if n < max(spec.num_fewshot):
        raise SpecError(
            f"eval.num_fewshot {max(spec.num_fewshot)}: test item {item!r} has {n} demonstration(s) to draw from "
            f"(the first {spec.pool_items} items of {task.fewshot or task.test}, itself left out); give more items or fewer shots"
        )


def task_arguments(task: TaskEntry) -> dict:
    """A user task's entry as load_jsonl_task's arguments."""
    return task.model_dump()


def _content(paths: list[Path]) -> str:
    """A user task is known by its files' content, not by where they lie (like a corpus)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def run_fields(spec: EvalSpec, eval_steps: tuple[int, ...], trunk_steps: tuple[int, ...] | None = None) -> dict[str, Any]:
    """A run's task settings (sweep.runspec.EvalConfig's fields besides the validation loss's):
    its tasks as records, their files, and the evaluations at which they are scored. A cooldown
    branch (trunk_steps: its trunk's task steps up to the branch point, whose scores it copies)
    scores its final evaluation only: the cooldown's earlier ones are half-annealed, and scoring
    them would cost a short branch more than its training."""
    shots = {"num_fewshot": tuple(spec.num_fewshot), "strategies": tuple(spec.strategies)}
    if not spec.tasks:
        return {"tasks": (), "task_files": (), "task_steps": (), **shots}
    tasks: list[dict[str, Any]] = []
    files: list[list[str | None] | None] = []
    for task in spec.tasks:
        if isinstance(task, str):
            tasks.append({"name": task})
            files.append(None)
            continue
        paths = [Path(task.test).resolve(), *([Path(task.fewshot).resolve()] if task.fewshot else [])]
        settings = task.model_dump(exclude={"test", "fewshot"})
        tasks.append({**settings, "content": _content(paths), "fewshot_file": task.fewshot is not None})
        files.append([str(paths[0]), str(paths[1]) if task.fewshot else None])
    if trunk_steps is not None:
        steps = (*trunk_steps, eval_steps[-1])
    else:
        steps = tuple(sorted(s for i, s in enumerate(reversed(eval_steps)) if i % spec.every == 0))
    return {"tasks": tuple(tasks), "task_files": tuple(files), "task_steps": steps, **shots}
