"""Text from a trained run (`scalinglab sample`): the run's kept weights, one token at a time, each
predicted from the last seq_len tokens. Temperature 0 is greedy decoding (the exported model's
generate(do_sample=False)); otherwise the logits over the temperature, cut to the top k, are sampled
with a key folded from the seed and the token's index."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from ..model.transformer import build_model
from ..store.layout import RunDir
from . import weights


def load_model(run, run_dir: RunDir) -> nnx.Module:
    """The run's model with its kept weights."""
    graphdef, fresh = nnx.split(build_model(run.model, run.seed))
    return nnx.merge(graphdef, weights.restore(run_dir.weights, fresh))


def sample(
    model, seq_len: int, prompt: list[int], max_new_tokens: int, temperature: float = 0.0, top_k: int = 0, seed: int = 0
) -> Iterator[int]:
    """The ids that follow prompt (at least one id), each as soon as it is picked; top_k 0: all ids."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def next_logits(params, window, last):
        return nnx.merge(graphdef, params)(window)[0, last]

    ids, key = list(prompt), jax.random.key(seed)
    for i in range(max_new_tokens):
        window = ids[-seq_len:]
        padded = jnp.array([window + [0] * (seq_len - len(window))], dtype=jnp.int32)  # causal: the padding is unseen
        logits = next_logits(params, padded, len(window) - 1)
        ids.append(int(_pick(logits, temperature, top_k, jax.random.fold_in(key, i))))
        yield ids[-1]


def _pick(logits: jax.Array, temperature: float, top_k: int, key) -> int:
    if temperature == 0:
        return int(jnp.argmax(logits))
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = jnp.sort(logits)[-top_k]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return int(jax.random.categorical(key, logits))
