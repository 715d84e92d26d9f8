"""A finished run's folder, for what reads its kept weights (export, sample): its run.json read
through store/records.py and its weights file's header (names, shapes, dtypes) checked against
the model run.json describes, so a damaged or foreign file is one line before any work. No JAX."""

from __future__ import annotations

import stat
from pathlib import Path

from ..errors import InputError
from ..store.files import read_record
from ..store.layout import RunDir
from ..store.records import RunRecord
from ..sweep.runspec import RunSpec


def finished_run(path: str | Path) -> tuple[RunSpec, RunDir]:
    """The run at results/<sweep>/runs/<run_id> and its folder; refused (one line) when it is not
    a run folder, its run.json is damaged, or its kept weights are missing or not its model's."""
    run_dir = RunDir(Path(path))
    run = run_spec(run_dir, path)
    check_weights(run, run_dir)
    return run, run_dir


def run_spec(run_dir: RunDir, given: str | Path) -> RunSpec:
    record, problem = read_record(run_dir.spec, run_dir.path, RunRecord.check)
    if record is None and problem is None:
        raise InputError(f"{given}: not a run folder (no {run_dir.spec.name}); give results/<sweep>/runs/<run_id>")
    try:
        if record is not None:
            return RunSpec.from_record(record)
    except (ValueError, KeyError, TypeError) as e:  # each value valid, together not a run spec
        problem = str(e)
    raise InputError(f"{run_dir.spec}: damaged ({problem}); retrain the run or restore the file")


def check_weights(run: RunSpec, run_dir: RunDir) -> None:
    """Reads only the header: a truncated file fails it (its tensors would overrun the file)."""
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415  (safetensors only where weights are read)

    weights = run_dir.weights
    if not weights.exists():
        raise InputError(f"{weights}: no weights; the run has not finished, or trained with train.keep_weights: false")
    if not stat.S_ISREG(weights.stat().st_mode):  # a FIFO would block the read
        raise InputError(f"{weights}: not a regular file; retrain the run")
    try:
        with safe_open(str(weights), "numpy") as f:
            found = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
    except SafetensorError as e:
        raise InputError(f"{weights}: damaged ({e}); retrain the run") from None
    for name, shape in run.model.param_shapes.items():
        if found.get(name) != (shape, "F32"):
            got = "nothing" if name not in found else f"{found[name][1]} {found[name][0]}"
            raise InputError(f"{weights}: {name} should be F32 {shape}, found {got}; these are not this run's weights")
