"""The sweep's numbers: every number field is finite and every whole number within what a count
holds, each refused naming its YAML key; the settings that size work are bounded, on the command
line too. (The probe's cases are files of tests/data/bad_sweeps/.)"""

import re
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from conftest import with_sections
from scalinglab.cli import main
from scalinglab.errors import SpecError
from scalinglab.sweep import planner
from scalinglab.sweep.read import parse
from scalinglab.sweep.spec import MAX_BOOTSTRAP, MAX_EVALS, SweepSpec
from scalinglab.sweep.types import MAX_COUNT

BASE = {"name": "s", "grid": {"N": [1e5], "D": [1e6]}}
STUDY = Path(__file__).parents[1] / "results" / "cpu-study"


def _numbers(model: type[BaseModel], path: tuple[str, ...] = ()):
    """(YAML path, int or float, whether a list of them) of every number field of the sections
    under model, the grid left out (its numbers meet each other: the test below)."""
    for name, field in model.model_fields.items():
        listed = typing.get_origin(field.annotation) is list
        for kind in typing.get_args(field.annotation) or (field.annotation,):
            kind = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Annotated else kind  # X | None, list[X]
            if isinstance(kind, type) and issubclass(kind, BaseModel) and name != "grid":
                yield from _numbers(kind, (*path, name))
            elif kind in (int, float):
                yield (*path, name), kind, listed


NUMBERS = list(_numbers(SweepSpec))


@pytest.mark.parametrize("path,kind,listed", NUMBERS, ids=[".".join(p) for p, _, _ in NUMBERS])
def test_every_number_is_finite_and_every_count_fits_naming_the_key(path, kind, listed):
    key = ".".join(path) + ("[0]" if listed else "")
    for value in [float("inf"), float("-inf"), float("nan")] if kind is float else [1e30, MAX_COUNT + 1, -MAX_COUNT - 1]:
        doc = _nested(list(path), [value] if listed else value)
        with pytest.raises(SpecError, match=rf"^{re.escape(key)}: "):
            parse(with_sections(BASE, **doc))


def _nested(keys: list[str], value) -> dict:
    return {keys[0]: value if len(keys) == 1 else _nested(keys[1:], value)}


GRID = {
    "D-inf": ({"D": [float("inf")]}, r"^grid.D\[0\]: Input should be a finite number"),
    "tokens_per_param-huge": (
        {"D": None, "tokens_per_param": [1e300]}, r"^grid.tokens_per_param\[0\]: 9.89e\+304 tokens, more than a count can hold"
    ),
    "C-huge": ({"D": None, "C": [1e300]}, r"^grid.C\[0\]: 1.13e\+294 tokens, more than a count can hold"),
    "lr-nan": ({"lr": [float("nan")]}, r"^grid.lr\[0\]: Input should be greater than 0"),
    "batch_size-past-int64": ({"batch_size": [MAX_COUNT + 1]}, r"^grid.batch_size\[0\]: beyond what a count can hold"),
}


@pytest.mark.parametrize("case", GRID)
def test_the_grids_numbers_are_refused_naming_their_entry(case):
    grid, message = GRID[case]
    with pytest.raises(SpecError, match=message):
        planner.plan(parse(with_sections(BASE, grid=grid)))


def test_n_evals_past_a_runs_steps_evaluates_every_step():
    """The most evaluations a run can have; planning them costs no more than the run's steps."""
    spec = parse(with_sections(BASE, train={"n_evals": MAX_EVALS}, grid={"D": [16 * 128 * 20]}))
    assert planner.plan(spec)[0].eval.steps == tuple(range(1, 21))
    with pytest.raises(SpecError, match=r"^train.n_evals: Input should be less than or equal to 10000 \(got 10001\)$"):
        parse(with_sections(BASE, train={"n_evals": MAX_EVALS + 1}))


@pytest.mark.parametrize("flags,message", [
    (["--bootstrap", str(MAX_BOOTSTRAP + 1)], "--bootstrap: Input should be less than or equal to 10000"),
    (["--bootstrap", "1e9"], "scalinglab fit: argument --bootstrap: invalid int value: '1e9' (see scalinglab fit --help)"),
    (["--huber-delta", "inf"], "--huber-delta: Input should be a finite number"),
    (["--pin-E", "nan"], "--pin-E: Input should be greater than 0"),
])
@pytest.mark.parametrize("verb", ["fit", "plot"])
def test_fits_flags_are_bounded_and_finite_and_write_nothing(verb, flags, message, tmp_path, capsys):
    study = Path(shutil.copytree(STUDY, tmp_path / "study"))
    assert main([verb, str(study), *flags]) == 2
    assert capsys.readouterr().err == f"scalinglab: error: {message.replace('scalinglab fit', f'scalinglab {verb}')}\n"
    assert _files(study) == _files(STUDY)


def _files(folder: Path) -> dict[Path, bytes]:
    return {f.relative_to(folder): f.read_bytes() for f in folder.rglob("*") if f.is_file()}
