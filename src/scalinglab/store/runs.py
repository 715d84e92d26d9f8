"""One run's files and state: its spec, evaluations, summary, requeue record and lock. Every file
is replaced atomically (files.write_text), so a reader never sees half of one. No JAX."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .files import NotARegularFile, read_bytes, read_record, report_damage, try_lock, write_json, write_text
from .layout import RunDir
from .records import CurvePoint, Evaluation, Record, Requeues, Role, RunRecord, Status, Summary, TaskScore

__all__ = ["COMPLETE", "Role", "Status"]  # the vocabulary is records.py's; its users import it from here


COMPLETE = (Status.DONE, Status.DIVERGED)  # a re-run would end the same way: skip them


# ---- spec and summary -------------------------------------------------------------------------


def write_spec(run: RunDir, record: dict) -> None:
    write_json(run.spec, record)


def read_spec(run: RunDir) -> dict | None:
    """The run's run.json; None if it is missing or damaged (reported: the launcher rewrites it)."""
    spec, problem = read_record(run.spec, run.sweep.path, RunRecord.check)
    if problem is not None:
        report_damage(run.spec, f"{problem}; the run counts as damaged until `scalinglab run` rewrites it")
    return spec


def write_summary(run: RunDir, summary: dict) -> None:
    write_json(run.summary, summary)


def read_summary(run: RunDir) -> dict | None:
    """The run's summary.json, None if it has none. One that cannot be read is reported and
    reads as status damaged: not complete, so `scalinglab run` trains the run again."""
    summary, problem = read_record(run.summary, run.sweep.path, Summary.check)
    if problem is None:
        return summary
    report_damage(run.summary, f"{problem}; the run counts as damaged")
    return {"status": Status.DAMAGED, "error": f"summary.json: {problem}"}


def record_failure(run: RunDir, error: str, detail: str = "") -> dict:
    summary = {"status": Status.FAILED, "error": error, "traceback": detail}
    write_summary(run, summary)
    return summary


def status(run: RunDir) -> str:
    summary = read_summary(run)
    return summary["status"] if summary else Status.PENDING


def is_complete(run: RunDir) -> bool:
    return status(run) in COMPLETE


# ---- evaluations ------------------------------------------------------------------------------


def append_metrics(run: RunDir, records: list[dict]) -> None:
    """Adds evaluations and curve points; the file is rewritten whole so a reader never sees half a line."""
    _append(run.metrics, records)


def append_tasks(run: RunDir, records: list[dict]) -> None:
    """Adds the task scores of one evaluation, one line per (task, shots, strategy)."""
    _append(run.tasks, records)


def _append(path: Path, records: list[dict]) -> None:
    old = path.read_text() if path.exists() else ""
    write_text(path, old + "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def keep_metrics(run: RunDir, keep) -> None:
    """Drops the evaluations and task scores for which keep(record) is false (those a resumed
    run will redo)."""
    for path, read in ((run.metrics, _metric_lines), (run.tasks, read_tasks)):
        if path.exists():
            write_text(path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in read(run) if keep(m)))


def copy_evaluations(trunk: RunDir, branch: RunDir, upto: int) -> None:
    """A cooldown branch's history up to its branch point is its trunk's: evaluations, its training
    curve and task scores."""
    _append(branch.metrics, [m for m in _metric_lines(trunk) if m["step"] <= upto])
    if trunk.tasks.exists():
        _append(branch.tasks, [t for t in read_tasks(trunk) if t["step"] <= upto])


def read_metrics(run: RunDir) -> list[dict]:
    """The run's evaluations; a line that is not a whole record (truncated, overwritten) is
    reported and skipped."""
    return [m for m in _metric_lines(run) if "L" in m]


def read_curve(run: RunDir) -> list[dict]:
    """The run's training curve: its points (CurvePoint) in step order; damaged lines are
    reported and skipped."""
    return [m for m in _metric_lines(run) if "L" not in m]


def _metric_lines(run: RunDir) -> list[dict]:
    """metrics.jsonl holds evaluations (with a validation loss L) and points of the training curve."""
    return _read_lines(run, run.metrics, "metrics", lambda line: Evaluation if isinstance(line, dict) and "L" in line else CurvePoint)


def read_tasks(run: RunDir) -> list[dict]:
    """The run's task scores, one record per (evaluation, task, shots, strategy); damaged lines
    are reported and skipped."""
    return _read_lines(run, run.tasks, TaskScore.what, lambda line: TaskScore)


def _read_lines(run: RunDir, path: Path, what: str, kind: Callable[[object], type[Record]]) -> list[dict]:
    """The records of a JSON-lines file, each checked as the type kind(line) gives."""
    records: list[dict] = []
    try:
        data = read_bytes(path, run.sweep.path) or b""
    except NotARegularFile as e:
        report_damage(path, f"{e}; no {what} records read")
        return []
    for i, line in enumerate(data.splitlines(), 1):
        problem: str | None
        label = what
        try:
            record = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            problem = "not JSON (truncated?)"
        else:
            problem, label = kind(record).check(record), kind(record).what
        if problem is None:
            records.append(record)
        elif line.strip():
            report_damage(path, f"line {i} is not a whole {label} record: {problem}; skipped")
    return records


# ---- requeues and the lock --------------------------------------------------------------------


def requeue_count(run: RunDir) -> int:
    """How often the run's job was requeued (preempted or timed out); a damaged record is reported, 0."""
    record, problem = read_record(run.requeues, run.sweep.path, Requeues.check)
    if problem is not None:
        report_damage(run.requeues, f"{problem}; counted as 0")
    return record["count"] if record else 0


def record_requeue(run: RunDir, saved_step: int | None) -> None:
    write_json(run.requeues, {"count": requeue_count(run) + 1, "saved_step": saved_step})


def lock(run: RunDir) -> int | None:
    """Takes the run's lock, an flock on its folder, so that no two processes train it at once;
    returns the descriptor that holds it (close it to release), or None if another process holds
    it. The kernel releases the lock when its holder dies, even by kill -9."""
    return try_lock(run.path)


def is_locked(run: RunDir) -> bool:
    """Whether a live process is training the run now."""
    if not run.path.is_dir():
        return False
    fd = lock(run)
    if fd is not None:
        os.close(fd)
    return fd is None
