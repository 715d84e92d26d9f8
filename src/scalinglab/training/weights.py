"""A finished run's parameters, kept as runs/<id>/weights.safetensors (float32, 4 bytes a
parameter) for export and sampling. Each tensor is named by its place in the model, e.g.
`blocks.qkv.kernel`, which holds every layer's matrix along its first axis (the model's scan)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ..store.files import replacing


def _name(path) -> str:
    return ".".join(str(p.key) for p in path if isinstance(p, jax.tree_util.DictKey))


def named(params) -> dict[str, np.ndarray]:
    """Every parameter on the host, by name; sharded over several processes, gathered (every
    process must call this)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        value = leaf if leaf.is_fully_addressable else multihost_utils.process_allgather(leaf, tiled=True)
        out[_name(path)] = np.asarray(jax.device_get(value), dtype=np.float32)
    return out


def save(path: Path, params, run_id: str, write: bool = True) -> None:
    """params -> path (atomically); write: this process writes (the main one)."""
    from safetensors.numpy import save_file  # noqa: PLC0415  (safetensors only where a run keeps its weights)

    tensors = named(params)
    if write:
        with replacing(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "scalinglab", "run_id": run_id})


def restore(path: Path, like):
    """The parameters saved at path, in the tree (and dtypes) of `like`, a fresh model's."""
    from safetensors.numpy import load_file  # noqa: PLC0415  (safetensors only where a run keeps its weights)

    saved = load_file(str(path))

    def leaf(p, x):
        name = _name(p)
        if name not in saved or saved[name].shape != x.shape:
            got = saved[name].shape if name in saved else "nothing"
            raise ValueError(f"{path}: {name} should be {x.shape}, found {got}; the weights are not this run's model")
        return jnp.asarray(saved[name], dtype=x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, like)
