"""The results folder is the database: results/<sweep>/runs/<run_id>/{run.json, metrics.jsonl,
summary.json} (and ckpt/ while a run is unfinished), each file replaced atomically. Loading needs pandas only, never JAX."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

RUNS = "runs"
RESUME_DIR = "ckpt"  # a run's latest checkpoint, while it is unfinished
BRANCH_DIR = "branch_points"  # a cooldown trunk's checkpoints at its branch points
COMPLETE = ("done", "diverged")  # a re-run would end the same way: skip them


def run_dir(sweep_dir: Path, run_id: str) -> Path:
    return Path(sweep_dir) / RUNS / run_id


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def append_metrics(run_path: Path, record: dict) -> None:
    """Adds one evaluation; the file is rewritten whole so a reader never sees half a line."""
    path = Path(run_path) / "metrics.jsonl"
    old = path.read_text() if path.exists() else ""
    write_text_atomic(path, old + json.dumps(record, sort_keys=True) + "\n")


def keep_metrics(run_path: Path, keep) -> None:
    """Drops the evaluations for which keep(record) is false (those a resumed run will redo)."""
    path = Path(run_path) / "metrics.jsonl"
    if path.exists():
        write_text_atomic(path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in read_metrics(run_path) if keep(m)))


def read_json(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def read_metrics(run_path: Path) -> list[dict]:
    path = Path(run_path) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lock_run(run_path: Path) -> int | None:
    """Takes the run's lock, an flock on its folder, so that no two processes train it at once;
    returns the descriptor that holds it (close it to release), or None if another process holds
    it. The kernel releases the lock when its holder dies, even by kill -9."""
    fd = os.open(run_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_locked(run_path: Path) -> bool:
    """Whether a live process is training the run now."""
    if not Path(run_path).is_dir():
        return False
    fd = lock_run(run_path)
    if fd is not None:
        os.close(fd)
    return fd is None


def status(run_path: Path) -> str:
    summary = read_json(Path(run_path) / "summary.json")
    return summary["status"] if summary else "pending"


def is_complete(run_path: Path) -> bool:
    return status(run_path) in COMPLETE


def load(path: str | Path, per_eval: bool = False, trunks: bool = False) -> pd.DataFrame:
    """A sweep's runs as a tidy DataFrame: one row per run (spec, status and final metrics), or
    with per_eval one row per evaluation (the run's columns repeated beside step, tokens, loss).
    Cooldown trunks are left out unless `trunks`: they are shared stable phases, not grid points."""
    runs_path = Path(path) / RUNS
    if not runs_path.is_dir():
        raise FileNotFoundError(f"{path}: no {RUNS}/ folder; is this a results/<sweep> folder?")
    rows = []
    for d in sorted(p for p in runs_path.iterdir() if (p / "run.json").exists()):
        spec = read_json(d / "run.json")
        if spec.get("role") == "trunk" and not trunks:
            continue
        summary = read_json(d / "summary.json") or {"status": "pending"}
        row = {"run_id": d.name, **spec, **summary}
        if per_eval:
            rows += [{**row, **m} for m in read_metrics(d)]
        else:
            rows.append(row)
    return pd.DataFrame(rows)
