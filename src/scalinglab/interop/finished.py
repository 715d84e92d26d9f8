"""A finished run's folder, for what reads its kept weights (export, sample)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..store.layout import RunDir
from ..sweep.runspec import RunSpec


def finished_run(path: str | Path) -> tuple[RunSpec, RunDir]:
    """The run at results/<sweep>/runs/<run_id> and its folder; refused (one line) when it is not
    a run folder or has no kept weights."""
    run_dir = RunDir(Path(path))
    if not run_dir.spec.exists():
        raise InputError(f"{path}: not a run folder (no {run_dir.spec.name}); give results/<sweep>/runs/<run_id>")
    if not run_dir.weights.exists():
        raise InputError(f"{run_dir.weights}: no weights; the run has not finished, or trained with train.keep_weights: false")
    return RunSpec.from_record(json.loads(run_dir.spec.read_text())), run_dir
