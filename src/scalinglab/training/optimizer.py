"""AdamW with the parametrization's learning-rate multiplier per parameter kind and the run's
schedule; weight decay on matrices only, not on LayerNorm scales and biases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ..model.parametrization import Rules, param_kind


def state_keys(path) -> tuple:
    """A pytree path in an nnx.State as plain names, without the Variable's trailing 'value'."""
    keys = tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return keys[:-1] if keys[-1] == "value" else keys


def build_optimizer(optim, params, rules: Rules) -> optax.GradientTransformation:
    """optim: the run's optimizer section (sweep.runspec.OptimConfig). One AdamW over the whole
    tree, with the multipliers and the decay mask as trees: fewer and larger XLA ops than one
    AdamW per kind."""
    kinds = jax.tree_util.tree_map_with_path(lambda path, _: param_kind(state_keys(path)), params)
    lr_scale = jax.tree.map(lambda kind: rules.lr_scale[kind], kinds)
    return optax.chain(
        optax.clip_by_global_norm(optim.grad_clip),
        optax.scale_by_adam(b1=optim.b1, b2=optim.b2),
        optax.add_decayed_weights(optim.weight_decay, mask=jax.tree.map(lambda kind: kind != "vector", kinds)),
        optax.stateless(lambda updates, _: jax.tree.map(jnp.multiply, updates, lr_scale)),
        optax.scale_by_learning_rate(lambda t: optim.schedule.lr(optim.lr, t, jnp)),
    )
