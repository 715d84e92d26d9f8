"""The results folder is the database: results/<sweep>/runs/<run_id>/{run.json, metrics.jsonl,
summary.json} (and ckpt/ while a run is unfinished), each file replaced atomically. Loading needs pandas only, never JAX."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd

RUNS = "runs"
RESUME_DIR = "ckpt"  # a run's latest checkpoint, while it is unfinished
BRANCH_DIR = "branch_points"  # a cooldown trunk's checkpoints at its branch points
REQUEUES = "requeues.json"  # how often the run's job was preempted or timed out, and the step it saved
COMPLETE = ("done", "diverged")  # a re-run would end the same way: skip them
DAMAGED = "damaged"  # the status of a run whose run.json or summary.json cannot be read
SPEC_KEYS = {"N", "D", "C", "seed", "steps", "flops_per_token"}  # what fits and status read from run.json
EVAL_KEYS = {"step", "tokens", "L"}  # what every evaluation record holds
FILES = ("run.json", "metrics.jsonl", "summary.json", REQUEUES, RESUME_DIR, BRANCH_DIR)


class DamagedResults(UserWarning):
    """A results file that cannot be read as written. Readers report it and go on with the rest."""


def report_damage(path: Path, what: str) -> None:
    warnings.warn(f"{path}: {what}", DamagedResults, stacklevel=3)


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
    """The run's evaluations; a line that is not a whole record (truncated, overwritten) is
    reported and skipped."""
    path = Path(run_path) / "metrics.jsonl"
    records = []
    for i, line in enumerate(path.read_bytes().splitlines() if path.exists() else [], 1):
        try:
            record = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            record = None
        if isinstance(record, dict) and EVAL_KEYS <= record.keys() and isinstance(record["step"], int):
            records.append(record)
        elif line.strip():
            report_damage(path, f"line {i} is not a whole evaluation record (truncated?); skipped")
    return records


def read_record(path: Path, keys: set[str]) -> tuple[dict | None, str | None]:
    """A JSON object file that must hold `keys`: (the object, None), (None, None) if there is no
    such file, or (None, what is wrong with it)."""
    try:
        obj = read_json(path)
    except ValueError as e:  # not JSON, or not UTF-8
        return None, f"not JSON ({e})"
    if obj is None or isinstance(obj, dict) and keys <= obj.keys():
        return obj, None
    missing = sorted(keys - obj.keys()) if isinstance(obj, dict) else None
    return None, f"no {', '.join(missing)} in it" if missing else "not a JSON object"


def read_summary(run_path: Path) -> dict | None:
    """The run's summary.json, None if it has none. One that cannot be read is reported and
    reads as status "damaged": not complete, so `scalinglab run` trains the run again."""
    path = Path(run_path) / "summary.json"
    summary, problem = read_record(path, {"status"})
    if problem is None:
        return summary
    report_damage(path, f"{problem}; the run counts as damaged")
    return {"status": DAMAGED, "error": f"summary.json: {problem}"}


def read_spec(run_path: Path) -> dict | None:
    """The run's run.json; None if it is missing or damaged (reported: the launcher rewrites it)."""
    path = Path(run_path) / "run.json"
    spec, problem = read_record(path, SPEC_KEYS)
    if problem is not None:
        report_damage(path, f"{problem}; the run counts as damaged until `scalinglab run` rewrites it")
    return spec


def _flock(path: Path, flags: int) -> int | None:
    """An flock on a folder: the descriptor that holds it, or None if LOCK_NB and it is taken."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_run(run_path: Path) -> int | None:
    """Takes the run's lock, an flock on its folder, so that no two processes train it at once;
    returns the descriptor that holds it (close it to release), or None if another process holds
    it. The kernel releases the lock when its holder dies, even by kill -9."""
    return _flock(run_path, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def folder_lock(path: Path):
    """Holds an flock on a folder for the block, waiting for any other holder: for the
    read-modify-write of a file that several processes update (a sweep's jobs.json)."""
    fd = _flock(path, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def is_locked(run_path: Path) -> bool:
    """Whether a live process is training the run now."""
    if not Path(run_path).is_dir():
        return False
    fd = lock_run(run_path)
    if fd is not None:
        os.close(fd)
    return fd is None


def status(run_path: Path) -> str:
    summary = read_summary(run_path)
    return summary["status"] if summary else "pending"


def is_complete(run_path: Path) -> bool:
    return status(run_path) in COMPLETE


def _read_run(d: Path) -> dict:
    """One run folder as a row: run.json, then summary.json, reporting what is damaged or foreign."""
    for p in sorted(d.iterdir()):
        in_progress = any(p.name.startswith(f".{f}.") for f in FILES) or p.name.startswith(".nfs")  # atomic writes, NFS
        if p.name not in FILES and not in_progress:
            report_damage(p, "not a scalinglab file; ignored")
    spec = read_spec(d)
    if spec is None:
        return {"status": DAMAGED, "error": "run.json: damaged"}
    summary = read_summary(d)
    if summary is None and not (d / RESUME_DIR).exists():
        metrics = read_metrics(d)
        if metrics and not is_locked(d):  # the lock only where there is something to say: a job may be starting
            report_damage(d, f"evaluations up to step {metrics[-1]['step']} of {spec['steps']} but no summary.json and no "
                             "checkpoint (interrupted before its first checkpoint, or its summary was lost); not in the fits "
                             "until it is trained again")
    return {**spec, **(summary or {"status": "pending"})}


def load(path: str | Path, per_eval: bool = False, trunks: bool = False) -> pd.DataFrame:
    """A sweep's runs as a tidy DataFrame: one row per run (spec, status and final metrics), or
    with per_eval one row per evaluation (the run's columns repeated beside step, tokens, loss).
    Cooldown trunks are left out unless `trunks`: they are shared stable phases, not grid points.
    Damaged and foreign files are reported as DamagedResults warnings, each naming its file;
    a run whose run.json or summary.json cannot be read has status "damaged"."""
    runs_path = Path(path) / RUNS
    if not runs_path.is_dir():
        raise FileNotFoundError(f"{path}: no {RUNS}/ folder; is this a results/<sweep> folder?")
    rows = []
    for d in sorted(runs_path.iterdir()):
        if not d.is_dir() or not (d / "run.json").exists():
            report_damage(d, "not a run folder (no run.json); ignored")
            continue
        row = {"run_id": d.name, **_read_run(d)}
        if row.get("role") == "trunk" and not trunks:
            continue
        if per_eval:
            rows += [{**row, **m} for m in read_metrics(d)] if row["status"] != DAMAGED else []
        else:
            rows.append(row)
    return pd.DataFrame(rows)
