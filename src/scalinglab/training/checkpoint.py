"""Training-state checkpoints with orbax: the model and optimizer state as a PyTree, and the loop's
own counters as JSON, under one step folder. Saves are synchronous, so a checkpoint that is listed
is complete; orbax writes to a temporary folder and renames it, so a kill mid-save leaves the
previous checkpoint intact.

A run keeps its latest checkpoint in `ckpt/` and deletes it when it finishes. A trunk of cooldown
branches also keeps one checkpoint per branch point in `branch_points/`, which its branches start from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp


def _manager(directory: Path, keep: int | None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(directory: Path, step: int, state, meta: dict, keep: int | None = 1) -> None:
    with _manager(directory, keep) as mgr:
        mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))


def steps(directory: Path) -> list[int]:
    if not Path(directory).is_dir():
        return []
    with _manager(directory, None) as mgr:
        return list(mgr.all_steps())


def restore(directory: Path, step: int, like) -> tuple[object, dict]:
    """The state saved at `step`, with the structure, dtypes and shardings of `like`, and its JSON."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with _manager(directory, None) as mgr:
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
