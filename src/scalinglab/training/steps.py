"""The jitted pieces of a training step: the loss in a run's precision, gradient accumulation over
microbatches, the step itself (AdamW's update, donated state), and the compile cache the jobs of a
sweep share."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from ..model.kernels import Precision
from ..model.transformer import cross_entropy
from .sharding import DATA, on_mesh


def make_loss_fn(precision: Precision, graphdef: nnx.GraphDef):
    """(params, inputs, targets, weights[, total]) -> the cross-entropy summed with its weights over
    `total` (default: the weights' sum, a weighted mean), computed in `precision`."""
    compute_dtype = jnp.bfloat16 if precision == Precision.BF16 else jnp.float32

    def loss_fn(params, inputs, targets, weights, total=None):
        params = jax.tree.map(lambda p: p.astype(compute_dtype), params)  # master weights stay fp32
        logits = nnx.merge(graphdef, params)(inputs)
        return (cross_entropy(logits, targets) * weights).sum() / (weights.sum() if total is None else total)

    return loss_fn


def accumulated(loss_fn, n_micro: int):
    """value_and_grad of loss_fn over the batch, in n_micro passes of its rows: each pass's loss is
    divided by the whole batch's weight, so the float32 sums are the full batch's loss and
    gradients. Pass m takes rows m, m + n_micro, ... of each data-parallel device's rows, whose
    gradients it sums without communicating: they are reduced over the devices once a step."""
    if n_micro == 1:
        return jax.value_and_grad(loss_fn)

    def passes(params, inputs, targets, weights, total):
        split = lambda a: jnp.swapaxes(a.reshape(-1, n_micro, *a.shape[1:]), 0, 1)  # noqa: E731  (a one-line helper, named where it is read)

        def one_pass(acc, micro):
            loss, grads = jax.value_and_grad(loss_fn)(params, *micro, total)
            return (acc[0] + loss, jax.tree.map(jnp.add, acc[1], grads)), None

        zeros = (jnp.zeros_like(weights, shape=()), jax.tree.map(jnp.zeros_like, params))  # per device in a shard_map, as the sums
        return jax.lax.scan(one_pass, zeros, (split(inputs), split(targets), split(weights)))[0]

    def per_device(params, inputs, targets, weights, total):
        # Differentiated as a per-device value, the parameters get per-device gradients: with the
        # replicated parameters, every pass would all-reduce its own.
        params = jax.lax.pcast(params, DATA, to="varying")
        return jax.lax.psum(passes(params, inputs, targets, weights, total), DATA)

    def value_and_grad(params, inputs, targets, weights):
        mesh = jax.sharding.get_abstract_mesh()  # the step's (on_mesh); none: one device
        if DATA not in mesh.auto_axes or mesh.shape[DATA] == 1:
            return passes(params, inputs, targets, weights, weights.sum())
        rows = PartitionSpec(DATA)
        local = jax.shard_map(per_device, mesh=mesh, in_specs=(PartitionSpec(), rows, rows, rows, PartitionSpec()),
                              out_specs=PartitionSpec(), axis_names={DATA})  # fmt: skip
        return local(params, inputs, targets, weights, weights.sum())

    return value_and_grad


def make_train_step(loss_fn, tx: optax.GradientTransformation, n_micro: int = 1, out_shardings=None, mesh: Mesh | None = None):
    """The jitted step of every run: (params, opt_state), inputs, targets, weights -> new state, loss.
    The state's buffers are donated: XLA updates them in place. n_micro: gradient accumulation;
    out_shardings: the new state's and the loss's (the state keeps its layout step after step);
    mesh: the run's, whose devices split the batch's rows."""
    value_and_grad = accumulated(loss_fn, n_micro)

    @partial(jax.jit, donate_argnums=0, out_shardings=out_shardings)
    @partial(on_mesh, mesh)
    def train_step(train_state, inputs, targets, weights):
        params, opt_state = train_state
        loss, grads = value_and_grad(params, inputs, targets, weights)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return train_step


def enable_compile_cache(directory: Path) -> None:
    """Share compiled steps between the jobs of a sweep: same shapes, same executable. The folder
    is made absolute: the setting outlives the call, and a relative one would follow the working
    directory (a sweep under results/ run in process, then a chdir, wrote its cache nowhere)."""
    jax.config.update("jax_compilation_cache_dir", str(Path(directory).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
