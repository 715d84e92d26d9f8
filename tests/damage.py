"""Random damage to a copied study's result files, for the fuzz test (test_results.py): each
mutation puts a wrong type, a wrong shape or an impossible value at one place of one file, or puts
something that is not a file where a file belongs, and names the file it damaged."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

# Values of a JSON type no field of a results file has at once, or impossible for any count,
# loss or name scalinglab writes.
WRONG = [
    "abc",
    "5",
    "",
    -5,
    0,
    -1.5,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    10**40,
    [],
    [1, "x"],
    {},
    {"a": 1},
    True,
    None,
    "<script>x</script>",
]
# Whole-file replacements: other JSON types and non-JSON contents.
WHOLE = [b"[]", b'"text"', b"5", b"null", b"", b"\xff\xfe\x00garbage", b"{", b'{"a": 1}']
NOT_FILES = ("folder", "fifo", "symlink_out", "dangling_symlink")

SWEEP_FILES = ("sweep.json", "fit.json", "jobs.json")
RUN_FILES = ("run.json", "summary.json", "metrics.jsonl", "tasks.jsonl")  # requeues.json: read only for unfinished runs


def _paths(obj, prefix=()):
    """Every (path to a value) inside a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return obj


def _is_change(old, new) -> bool:
    """Whether new is a different value from old, not merely the same number as another type."""
    if isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return False
    return type(old) is not type(new) or old != new


def _mutate_value(text: str, rng: random.Random) -> tuple[str, str] | None:
    """One JSON document with a value somewhere replaced: (new text, what was done), or None."""
    obj = json.loads(text)
    paths = list(_paths(obj))
    for _ in range(20):
        path = rng.choice(paths)
        old = obj
        for key in path:
            old = old[key]
        value = rng.choice(WRONG)
        if _is_change(old, value) and not (isinstance(old, (dict, list)) and len(path) > 0 and rng.random() < 0.5):
            new = _set(json.loads(text), path, value)
            return json.dumps(new), f"{'.'.join(map(str, path)) or '<root>'} = {value!r}"
    return None


def mutate(study: Path, rng: random.Random, avoid: set[Path]) -> tuple[Path, str]:
    """Damages one file of the study at random, not one of `avoid`: (the file, what was done to it)."""
    path = _pick(study, rng)
    while path in avoid:
        path = _pick(study, rng)
    how = rng.random()
    if how < 0.1:
        return path, _not_a_file(path, rng.choice(NOT_FILES))
    if how < 0.25 or not path.exists():
        _remove(path)
        content = rng.choice(WHOLE)
        path.write_bytes(content + b"\n" if path.suffix == ".jsonl" else content)
        return path, f"whole file = {content!r}"
    if path.suffix == ".jsonl":
        lines = path.read_text().splitlines()
        i = rng.randrange(len(lines))
        done = _mutate_value(lines[i], rng)
        if done is None:
            return mutate(study, rng, avoid)
        lines[i] = done[0]
        path.write_text("\n".join(lines) + "\n")
        return path, f"line {i + 1}: {done[1]}"
    done = _mutate_value(path.read_text(), rng)
    if done is None:
        return mutate(study, rng, avoid)
    path.write_text(done[0])
    return path, done[1]


def _pick(study: Path, rng: random.Random) -> Path:
    name = rng.choice(SWEEP_FILES + RUN_FILES)
    return study / name if name in SWEEP_FILES else rng.choice(sorted((study / "runs").iterdir())) / name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        os.rmdir(path) if not any(path.iterdir()) else None
    elif path.exists() or path.is_symlink():
        path.unlink()


def _not_a_file(path: Path, kind: str) -> str:
    """Puts something that is not a regular file (or not one inside the sweep) where `path` is."""
    _remove(path)
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink_out":
        path.symlink_to("/etc/passwd")
    else:
        path.symlink_to(path.parent / "no-such-file")
    return f"a {kind}"
