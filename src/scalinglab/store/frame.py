"""A sweep's results as pandas DataFrames, read from the results folder alone. No JAX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import runs
from .files import is_in_progress, report_damage
from .layout import RUN_FILES, RunDir, SweepDir


class NotASweep(FileNotFoundError):
    """A path that is not a results/<sweep> folder (the command line: one line, exit code 2)."""


def _read_run(run: RunDir) -> dict:
    """One run folder as a row: run.json, then summary.json, reporting what is damaged or foreign."""
    for p in sorted(run.path.iterdir()):
        if p.name not in RUN_FILES and not any(is_in_progress(p.name, f) for f in RUN_FILES):
            report_damage(p, "not a scalinglab file; ignored")
    spec = runs.read_spec(run)
    if spec is None:
        return {"status": runs.Status.DAMAGED, "error": "run.json: damaged"}
    summary = runs.read_summary(run)
    if summary is None and not run.resume.exists():
        metrics = runs.read_metrics(run)
        if metrics and not runs.is_locked(run):  # the lock only where there is something to say: a job may be starting
            report_damage(
                run.path,
                f"evaluations up to step {metrics[-1]['step']} of {spec['steps']} but no summary.json "
                "and no checkpoint (interrupted before its first checkpoint, or its summary was lost); "
                "not in the fits until it is trained again",
            )
    return {**spec, **(summary or {"status": runs.Status.PENDING})}


ITEM_KEYS = ("items", "item_acc", "item_score", "demos")  # per test item lists of a task record


def _task_rows(run: RunDir, row: dict, items: bool) -> list[dict]:
    """A run's task records as rows: one per record, or with `items` one per test item (its id,
    acc, continuous score and demonstration ids)."""
    out = []
    for record in runs.read_tasks(run):
        scalars = {k: v for k, v in record.items() if k not in ITEM_KEYS}
        if not items:
            out.append({**row, **scalars})
            continue
        lists = [record.get(k) or [None] * len(record.get("items", [])) for k in ITEM_KEYS]
        out += [{**row, **scalars, "item": i, "item_acc": a, "item_score": x, "demos": d} for i, a, x, d in zip(*lists)]
    return out


def load(
    path: str | Path, per_eval: bool = False, trunks: bool = False, tasks: bool = False, items: bool = False, curves: bool = False
) -> pd.DataFrame:
    """A sweep's runs as a tidy DataFrame: one row per run (spec, status and final metrics, U the
    unique training tokens it could see); with
    per_eval one row per evaluation (the run's columns repeated beside step, tokens, loss); with
    tasks one row per scored (evaluation, task, shots, strategy): task, kind, shots, strategy, acc,
    acc_norm, task_loss, task_bpb, p_gold, exact_match, token_acc, chance, n_items, acc_se; with
    tasks and items one row per test item of those (item, item_acc, item_score, demos); with
    curves one row per point of the training curve (step, tokens, step_lr, train_loss: the mean over
    the n_steps steps up to step, train_loss_ema: smoothed); a cooldown branch's includes its trunk's up to the branch point.
    Cooldown trunks are left out unless `trunks`: they are shared stable phases, not grid points.
    Damaged and foreign files are reported as DamagedResults warnings, each naming its file;
    a run whose run.json or summary.json cannot be read has status "damaged"."""
    sweep = SweepDir(path)
    if not sweep.runs.is_dir():
        raise NotASweep(f"{path}: no {sweep.runs.name}/ folder; is this a results/<sweep> folder?")
    rows = []
    for d in sweep.run_dirs():
        run = RunDir(d)
        if not d.resolve().is_relative_to(sweep.path.resolve()):
            report_damage(d, f"a symlink out of {sweep.path} (to {d.resolve()}); ignored")
            continue
        if not d.is_dir() or not run.spec.exists():
            report_damage(d, "not a run folder (no run.json); ignored")
            continue
        row = {"run_id": run.run_id, **_read_run(run)}
        if row.get("role") == runs.Role.TRUNK and not trunks:
            continue
        if row["status"] == runs.Status.DAMAGED and (per_eval or tasks or curves):
            continue
        if curves:
            rows += [{**row, **m} for m in runs.read_curve(run)]
        elif tasks:
            rows += _task_rows(run, row, items)
        elif per_eval:
            rows += [{**row, **m} for m in runs.read_metrics(run)]
        else:
            rows.append(row)
    df = pd.DataFrame(rows)
    # U, the unique training tokens a run could see: its summary's once trained, else its run.json's
    # cap (data.U) if it has one; NaN for runs trained before U was recorded.
    df["U"] = df["U"].astype(float) if "U" in df else np.nan
    return df
