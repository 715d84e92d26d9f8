import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scalinglab.model import TransformerLM


def test_changing_a_later_token_never_changes_earlier_logits():
    model = TransformerLM(2, 32, 4, 64, 16, 256, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 256)
    base = model(tokens)
    for t in (3, 9, 15):
        changed = tokens.at[:, t].set((tokens[:, t] + 7) % 256)
        out = model(changed)
        np.testing.assert_allclose(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t])  # the changed position itself does see it


def test_no_gradient_flows_from_a_position_to_earlier_inputs():
    model = TransformerLM(1, 16, 2, 32, 8, 256, rngs=nnx.Rngs(0))
    x = model.embed(jnp.arange(8)[None])
    graphdef, state = nnx.split(model)

    def logit_at(x_BLD, t):
        m = nnx.merge(graphdef, state)
        h = x_BLD + m.pos[:8]
        for block in m.blocks:
            h = block(h, 0)
        return m.embed.attend(m.ln_f(h))[0, t].sum()

    for t in range(8):
        g = jax.grad(logit_at)(x, t)
        assert np.all(np.asarray(g[0, t + 1 :]) == 0)
        assert np.any(np.asarray(g[0, : t + 1]) != 0)
