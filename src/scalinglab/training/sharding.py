"""Where a run's arrays live: a mesh of every device of the run (over all its processes) with a
data axis and an fsdp axis; parameters annotated with Flax NNX sharding metadata, each sharded
along one of its axes over fsdp (replicated when fsdp is 1), the optimizer state like its
parameters; batch rows split over both axes, each process building only the rows of its own
devices (global_array)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA, FSDP = "data", "fsdp"
ROWS = PartitionSpec((DATA, FSDP))  # a batch's rows over every device


def make_mesh(fsdp: int, devices: list | None = None) -> Mesh:
    """(data, fsdp) over the run's devices; consecutive devices (those of one process, then of one
    node) share an fsdp group, so the gathers of parameters stay as local as they can."""
    devices = jax.devices() if devices is None else devices
    if len(devices) % fsdp:
        raise ValueError(f"train.fsdp {fsdp} does not divide the run's {len(devices)} devices")
    return Mesh(np.array(devices).reshape(len(devices) // fsdp, fsdp), (DATA, FSDP))


def on_mesh(mesh: Mesh | None, fn):
    """fn traced with the mesh's axes in context: the model splits its activations' rows over
    them (model.transformer.rows)."""
    if mesh is None:
        return fn

    @functools.wraps(fn)
    def traced(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args)

    return traced


def fsdp_axis(shape: tuple[int, ...], fsdp: int, stacked: bool) -> int | None:
    """The axis a parameter of `shape` is sharded along: its largest that fsdp divides (the last
    of equals), never the layer axis of the stacked blocks (the scan walks it); None: replicated."""
    candidates = [i for i in range(int(stacked), len(shape)) if shape[i] % fsdp == 0]
    if fsdp == 1 or not candidates:
        return None
    return max(candidates, key=lambda i: (shape[i], i))


def annotate(params: nnx.State, fsdp: int) -> None:
    """Sets each parameter's NNX sharding annotation (out_sharding) for an fsdp-way mesh."""
    for path, variable in nnx.to_flat_state(params):
        shape = variable[...].shape
        axis = fsdp_axis(shape, fsdp, stacked=path[0] == "blocks")
        variable.set_metadata(out_sharding=tuple("fsdp" if i == axis else None for i in range(len(shape))))


def state_shardings(mesh: Mesh, params: nnx.State, tx: optax.GradientTransformation, opt_state) -> tuple:
    """NamedShardings of (params, opt_state): the parameters' annotations; the optimizer's moments
    like their parameters, its counters replicated."""
    param_specs = nnx.get_partition_spec(params)
    opt_specs = optax.tree_map_params(tx, lambda _, spec: spec, opt_state, param_specs, transform_non_params=lambda _: PartitionSpec())
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), (param_specs, opt_specs), is_leaf=lambda x: isinstance(x, PartitionSpec))


def place(tree, shardings):
    """A tree of values every process holds alike (a model drawn from the seed), as global arrays:
    each process puts only its devices' shards."""
    return jax.tree.map(lambda a, s: jax.make_array_from_callback(a.shape, s, lambda i: np.asarray(a)[i]), tree, shardings)


def global_arrays(
    shape: tuple[int, ...], sharding: NamedSharding, rows: Callable[[int, int], Sequence[np.ndarray]], n: int
) -> tuple[jax.Array, ...]:
    """n global arrays of `shape` split by rows (of the first axis): rows(start, stop) gives those
    rows of all n, for this process's devices only, and is called once per device's rows."""
    rows = functools.cache(rows)

    def part(k: int) -> jax.Array:
        def shard(index: tuple[slice, ...] | None) -> np.ndarray:
            assert index is not None  # JAX gives every shard its index (its annotation allows None)
            start, stop, _ = index[0].indices(shape[0])
            return rows(start, stop)[k][(slice(None), *index[1:])]

        return jax.make_array_from_callback(shape, sharding, shard)

    return tuple(part(k) for k in range(n))
