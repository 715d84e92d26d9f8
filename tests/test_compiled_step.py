"""What the compiled training step communicates and computes in, read off its HLO: under fsdp the
parameters are gathered, never the batch's activations; with microbatches the data-parallel
gradients are reduced once a step; under bf16 the tied readout and its gradients are bf16
matmuls; remat's recomputation inside the layers' scan carries no optimization barrier.

The steps over several devices compile in a child process whose CPU is split into XLA devices
(as tests/test_devices.py trains)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_runs
from flax import nnx

from scalinglab.model.transformer import build_model
from scalinglab.store.layout import RunDir
from scalinglab.sweep.runspec import RunSpec
from scalinglab.training.loop import Trainer
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


COLLECTIVE = re.compile(r"^\s*(?:ROOT )?%\S+ = (.+?) (all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(")


def computations(hlo: str) -> dict[str, list[str]]:
    """The HLO module's computations by name, each its instruction lines."""
    out: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in hlo.splitlines():
        if not line.startswith((" ", "}")) and line.endswith("{"):
            lines = out.setdefault(line.removeprefix("ENTRY ").split()[0].lstrip("%"), [])
        else:
            lines.append(line)
    return out


def inside_loops(hlo: str, trips: int) -> set[str]:
    """The computations run by the while loops of `trips` iterations, and those they call."""
    comps = computations(hlo)
    todo = [re.search(r"body=%([\w.\-]+)", line)[1] for lines in comps.values() for line in lines
            if " while(" in line and f'"known_trip_count":{{"n":"{trips}"}}' in line]  # fmt: skip
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [c for line in comps[name] for c in re.findall(r"(?:calls|to_apply|body|condition)=%([\w.\-]+)", line)]
    return seen


def collectives(hlo: str, where: set[str] | None = None) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(op, the shapes of its result) of every collective, or only of those in `where`'s computations."""
    out = []
    for name, lines in computations(hlo).items():
        for match in filter(None, map(COLLECTIVE.match, lines)):
            if where is None or name in where:
                shapes = [tuple(int(d) for d in dims.split(",") if d) for dims in re.findall(r"\w+\[([\d,]*)\]", match[1])]
                out.append((match[2], shapes))
    return out


CHILD = """
import dataclasses, json, sys
import jax, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_compiled_step import compiled_step
from scalinglab.sweep.runspec import RunSpec
run, out = RunSpec.from_record(json.loads(sys.argv[2])), Path(sys.argv[3])
losses = {}
for case in json.loads(sys.argv[4]):
    hlo, losses[case] = compiled_step(dataclasses.replace(run, **json.loads(case)), out / "run")
    (out / f"{len(losses)}.hlo").write_text(hlo)
print(json.dumps(losses))
"""


def compiled_step(run: RunSpec, folder: Path) -> tuple[str, float]:
    """The compiled HLO of the run's training step as the Trainer builds it, on this process's
    devices, and its loss on a fixed batch."""
    trainer = Trainer(run, RunDir(folder), log=lambda _: None)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, run.data.vocab_size, (run.batch_size, run.model.seq_len + 1)).astype(np.int32)
    weights = rng.uniform(0.5, 1.5, (run.batch_size, run.model.seq_len)).astype(np.float32)
    batch = [jax.device_put(a, trainer.by_row) for a in (tokens[:, :-1], tokens[:, 1:], weights)]
    hlo = trainer.train_step.lower(trainer.state, *batch).compile().as_text()
    return hlo, float(trainer.train_step(trainer.state, *batch)[1])


def on_two_devices(run: RunSpec, cases: list[dict], tmp_path: Path, layers: str | None = None) -> tuple[list[str], list[float]]:
    """compiled_step of each case (fields of the run to replace) over two CPU devices; layers:
    scan or unrolled (SCALINGLAB_LAYERS), else the CPU's rule's."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env |= {"SCALINGLAB_LAYERS": layers} if layers else {}
    keys = [json.dumps(case) for case in cases]
    args = [str(Path(__file__).parent), json.dumps(run.record()), str(tmp_path), json.dumps(keys)]
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    losses = json.loads(out.stdout.strip().splitlines()[-1])
    return [(tmp_path / f"{i + 1}.hlo").read_text() for i in range(len(cases))], [losses[k] for k in keys]


def layer_shapes(run: RunSpec) -> set[tuple[int, ...]]:
    """The shapes of the model's parameters, one layer's of the stacked blocks, and their transposes."""
    state = nnx.state(nnx.eval_shape(lambda: build_model(run.model, run.seed)), nnx.Param)
    shapes = {leaf.shape[path[0] == "blocks" :] for path, leaf in nnx.to_flat_state(state)}
    return shapes | {s[::-1] for s in shapes}


@pytest.mark.parametrize("layers", ["scan", "unrolled"])
def test_fsdp_gathers_parameters_never_the_batch_activations(tmp_path, layers):
    """Two devices, fsdp 2, the batch's rows split over both: XLA gathers each parameter where it
    is used; before the stream was held to its rows, every layer gathered the whole batch's
    activations along d_model. The loss is one device's. Scanned layers (accelerators) and
    unrolled (a CPU's) alike."""
    B, L = 8, 48  # sizes no parameter has: an activation's leading dims are recognisable
    run = tiny_runs(shapes=((2, 80, 2),), model={"seq_len": L}, train={"batch_size": B})[0]
    hlos, losses = on_two_devices(run, [{"fsdp": 2}, {"fsdp": 2, "microbatch_size": B // 2}], tmp_path, layers)
    one = compiled_step(run, tmp_path / "one")[1]
    params = layer_shapes(run)
    for hlo, rows in zip(hlos, (B, B // 2)):
        ops = collectives(hlo)
        gathered = {shape for op, shapes in ops if op == "all-gather" for shape in shapes}
        assert gathered <= params and {(80, 240), (80, 320), (320, 80)} & gathered, gathered
        activations = [(op, s) for op, shapes in ops for s in shapes if s[:2] == (rows, L) or s[:1] == (rows * L,)]
        assert not activations, activations
    assert losses == pytest.approx([one, one], rel=1e-5)


def test_data_parallel_gradients_are_reduced_once_a_step(tmp_path):
    """Two data-parallel devices, 1, 2 and 4 microbatches: no collective runs in the loop over
    microbatches; after it, the same reductions whatever their number."""
    run = tiny_runs(shapes=((3, 64, 2),), train={"batch_size": 8})[0]  # 3 layers: the layers' loop runs 3 times
    hlos, losses = on_two_devices(run, [{"microbatch_size": 8 // n} for n in (1, 2, 4)], tmp_path)
    per_step = []
    for hlo, n_micro in zip(hlos[1:], (2, 4)):
        assert inside_loops(hlo, n_micro) and not collectives(hlo, inside_loops(hlo, n_micro))
        per_step.append(sorted((op, shapes) for op, shapes in collectives(hlo) if op == "all-reduce"))
    assert per_step[0] == per_step[1] and (3, 64, 192) in {s for _, shapes in per_step[0] for s in shapes}  # the layers' gradients
    assert losses == pytest.approx([losses[0]] * 3, rel=1e-5)
