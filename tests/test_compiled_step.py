"""What the compiled training step computes, read off its HLO: remat's recomputation inside the
layers' scan carries no optimization barrier."""

import jax
import jax.numpy as jnp
from conftest import tiny_runs
from flax import nnx

from scalinglab.model.transformer import build_model
from scalinglab.training.optimizer import build_optimizer
from scalinglab.training.steps import make_loss_fn, make_train_step


def lowered_step(precision: str = "fp32", remat: bool = False):
    """The one-device training step of a tiny model (d_model 48: no matrix but the readout's is
    vocab_size (256) wide), lowered: the HLO JAX asks any XLA for."""
    run = tiny_runs(shapes=((2, 48, 2),), train={"precision": precision})[0]
    model = build_model(run.model, run.seed, precision=run.precision, remat=remat)
    graphdef, params = nnx.split(model)
    tx = build_optimizer(run.optim, params, model.r)
    tokens = jax.ShapeDtypeStruct((run.batch_size, run.model.seq_len), jnp.int32)
    weights = jax.ShapeDtypeStruct(tokens.shape, jnp.float32)
    return make_train_step(make_loss_fn(run.precision, graphdef), tx).lower((params, tx.init(params)), tokens, tokens, weights)


def test_remat_inside_the_scan_has_no_optimization_barrier():
    """prevent_cse's barrier keeps XLA from merging a recomputed forward into the first; a scan's
    loop cannot merge them."""
    assert "opt-barrier" not in lowered_step(remat=True).as_text(dialect="hlo")
