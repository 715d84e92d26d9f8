"""What the compiled training step computes in, read off its HLO: under bf16 the tied readout and
its gradients are bf16 matmuls; remat's recomputation inside the layers' scan carries no
optimization barrier."""

import re

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


def vocab_dots(hlo: str, vocab_size: int) -> list[tuple[str, str, str]]:
    """The dtypes (left operand, right operand, result) of every dot of the HLO text with an
    operand or result vocab_size wide."""
    typed = re.findall(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\w+)\[([\d,]*)\]", hlo, re.M)
    defined = {name: (dtype, dims.split(",")) for name, dtype, dims in typed}
    out = []
    for name, left, right in re.findall(r"^\s*(?:ROOT )?%?([\w.\-]+) = \S+ dot\(%?([\w.\-]+), %?([\w.\-]+)\)", hlo, re.M):
        types = [defined[n] for n in (left, right, name)]
        if any(str(vocab_size) in dims for _, dims in types):
            out.append(tuple(dtype for dtype, _ in types))
    return out


def test_the_readout_and_its_gradients_are_bf16_matmuls_under_bf16():
    """The logits come out of the matmul in bf16 (the loss upcasts them): the readout, the stream's
    gradient and the embedding's are bf16 x bf16 -> bf16 dots, not float32 ones (TF32's half
    rate). A CPU's XLA computes bf16 in float32: the lowered HLO is what a GPU's compiles."""
    assert vocab_dots(lowered_step("bf16").as_text(dialect="hlo"), 256) == [("bf16", "bf16", "bf16")] * 3
    assert vocab_dots(lowered_step("fp32").as_text(dialect="hlo"), 256) == [("f32", "f32", "f32")] * 3
