"""Memory per device (sweep/memory.py) held to XLA's own figure of the real training step and
evaluation (the compiled memory analysis), and plan's check against the device (exit 2, one line).

The estimate may exceed XLA's figure by up to HIGH (it counts a layer's backward and the head
generously: the shallow models here leave XLA's fusions the most room) and fall below it by no
more than LOW (XLA's buffer assignment moves by a few percent between versions): an estimate
that says a run fits must be right."""

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import yaml
from flax import nnx

from scalinglab.cli import main
from scalinglab.launch.resources import GIB, device_memory_bytes
from scalinglab.model import cpu_attention, transformer
from scalinglab.sweep import memory, planner
from scalinglab.sweep.read import parse
from scalinglab.sweep.spec import LaunchSpec
from scalinglab.training.steps import make_loss_fn, make_train_step
from scalinglab.training.optimizer import build_optimizer

LOW, HIGH = 0.95, 1.25
BAD_SWEEP = Path(__file__).parent / "data" / "bad_sweeps" / "N_too_big_for_memory.yaml"


def planned(n_layers, d_model, n_heads, seq_len, batch_size, vocab=None, val_tokens=None, **train):
    """The run of a one-shape sweep (the byte tokenizer's 256 ids, or a BPE vocabulary of `vocab`)."""
    data = {"val_tokens": val_tokens or 2 * seq_len} | ({"tokenizer": "bpe", "vocab_size": vocab} if vocab else {})
    doc = {"name": "m", "data": data, "model": {"seq_len": seq_len, "d_head": d_model // n_heads},
           "grid": {"shapes": [{"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads}], "D": [batch_size * seq_len * 20]},
           "train": {"batch_size": batch_size, **train}}
    return planner.plan(parse(doc))[0]


def _model(run):
    """The run's model, shapes only, its parameters split off; and its optimizer."""
    model = nnx.eval_shape(lambda: transformer.build_model(run.model, run.seed, precision=run.precision, remat=run.remat))
    graphdef, params = nnx.split(model)
    return graphdef, params, build_optimizer(run.optim, params, model.r)


def xla_bytes(compiled) -> dict:
    """A compiled program's memory analysis; total: its peak (the donated state's outputs alias its inputs)."""
    m = compiled.memory_analysis()
    out = {"args": m.argument_size_in_bytes, "temp": m.temp_size_in_bytes, "outputs": m.output_size_in_bytes, "alias": m.alias_size_in_bytes}
    return out | {"total": out["args"] + out["temp"] + out["outputs"] - out["alias"]}


def measure_step(run, sharding=None) -> dict:
    """XLA's memory analysis of the run's training step as training/loop.py builds it (Trainer._build_steps)."""
    graphdef, params, tx = _model(run)
    step = make_train_step(make_loss_fn(run.precision, graphdef), tx, run.batch_size // (run.microbatch_size or run.batch_size))
    state = jax.eval_shape(lambda p: (p, tx.init(p)), params)
    rows = (run.batch_size, run.model.seq_len)
    replicated, by_row = sharding or (None, None)
    state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), state)
    tokens, weights = (jax.ShapeDtypeStruct(rows, dtype, sharding=by_row) for dtype in (jnp.int32, jnp.float32))
    return xla_bytes(step.lower(state, tokens, tokens, weights).compile())


def measure_evaluation(run) -> dict:
    """XLA's memory analysis of the run's validation loss (Trainer._build_steps), plus the validation
    windows it closes over."""
    graphdef, params, _ = _model(run)
    loss_fn = make_loss_fn(run.precision, graphdef)
    windows, chunk = memory.validation_windows(run)
    shape = (windows // chunk, chunk, run.model.seq_len)
    val = (jnp.zeros(shape, jnp.int32), jnp.zeros(shape, jnp.int32), jnp.ones(shape, jnp.float32))
    val_loss = jax.jit(lambda params: jax.lax.map(lambda c: loss_fn(params, *c), val).mean())
    out = xla_bytes(val_loss.lower(params).compile())
    return out | {"total": out["total"] + sum(a.nbytes for a in val)}


def estimate_here(run, devices=1) -> memory.Memory:
    return memory.estimate(run, jax.default_backend(), devices, cpu_attention.available())


def step_figure(est: memory.Memory) -> int:
    """The estimate of what XLA measures of the step: without the next batch on its way and the
    validation windows."""
    return est.step - est.inputs // 2 - est.validation


# (n_layers, d_model, n_heads, seq_len, batch_size), vocab, train settings: the kernel's attention,
# remat, microbatches, XLA's attention (bf16 on a CPU), all of them, a large vocabulary (its logits
# in float32, and in bf16).
SHAPES = {
    "plain": ((4, 128, 4, 128, 8), None, {}),
    "remat": ((4, 128, 4, 256, 8), None, {"remat": True}),
    "microbatch": ((4, 128, 4, 128, 16), None, {"microbatch_size": 4}),
    "bf16": ((3, 96, 3, 256, 8), None, {"precision": "bf16"}),
    "bf16_remat_microbatch": ((6, 192, 6, 128, 8), None, {"precision": "bf16", "remat": True, "microbatch_size": 2}),
    "vocab": ((2, 64, 2, 64, 16), 4096, {"microbatch_size": 8}),
    "vocab_bf16": ((2, 64, 2, 128, 8), 8192, {"precision": "bf16"}),  # bf16 logits
}


@pytest.fixture
def scanned(monkeypatch):
    """The count is the scanned layers' (accelerators, remat); a CPU unrolls them (unrolled_layers_keep_less)."""
    monkeypatch.setenv("SCALINGLAB_LAYERS", "scan")


@pytest.mark.parametrize("name", SHAPES)
def test_step_estimate_is_within_tolerance_of_xla(name, scanned):
    shape, vocab, train = SHAPES[name]
    run = planned(*shape, vocab=vocab, **train)
    xla, est = measure_step(run), estimate_here(run)
    assert LOW <= step_figure(est) / xla["total"] <= HIGH, (name, xla, est)
    assert est.params + est.optimizer + est.inputs // 2 == pytest.approx(xla["args"], rel=0.01)  # the state and the batch


def test_evaluation_estimate_is_within_tolerance_of_xla():
    """Few training rows and a large vocabulary: evaluation's 32 windows at once take more than a step."""
    run = planned(2, 64, 2, 128, 8, vocab=4096, val_tokens=64 * 128, microbatch_size=1)
    xla, est = measure_evaluation(run), estimate_here(run)
    train_state = est.optimizer + est.inputs  # held while evaluation runs, not its program's (the windows are)
    assert est.evaluation > est.step
    assert LOW <= (est.evaluation - train_state) / xla["total"] <= HIGH, (xla, est)


DATA_PARALLEL = """
import json, sys
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
sys.path.insert(0, sys.argv[1])
from test_memory import SHAPES, measure_step, planned
mesh = Mesh(np.array(jax.devices()), ("data",))
sharding = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
shape, vocab, train = SHAPES[sys.argv[2]]
print(json.dumps(measure_step(planned(*shape, vocab=vocab, **train), sharding)))
"""


@pytest.mark.parametrize("name", ["plain", "microbatch", "vocab"])
def test_unrolled_layers_keep_less_than_the_estimate(name):
    """A CPU unrolls the layers (model.kernels.layer_loop), and XLA then keeps fewer activations
    than the scan's count: the estimate is an upper bound there, so plan never passes a run that
    cannot fit."""
    shape, vocab, train = SHAPES[name]
    run = planned(*shape, vocab=vocab, **train)
    assert step_figure(estimate_here(run)) >= measure_step(run)["total"]


@pytest.mark.parametrize("name", ["plain", "remat"])
def test_data_parallel_devices_divide_the_batch(name):
    """Two CPU devices (XLA's attention: the kernel runs on one device only), the batch split by row."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "SCALINGLAB_LAYERS": "scan"}
    out = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(Path(__file__).parent), name],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    xla = json.loads(out.stdout.strip().splitlines()[-1])
    shape, vocab, train = SHAPES[name]
    est = memory.estimate(planned(*shape, vocab=vocab, **train), "cpu", 2)
    assert LOW <= step_figure(est) / xla["total"] <= HIGH, (name, xla, est)


def test_attention_kind_is_the_models():
    for precision in ("fp32", "bf16"):
        run = planned(2, 64, 2, 64, 4, precision=precision)
        assert memory.job_attention(run, "cpu", 1, cpu_attention.available()) == transformer.attention_kind(precision)


def test_what_lowers_the_estimate():
    """Microbatches, remat and more devices lower the activations; on a GPU in bf16 (cuDNN) no
    seq_len x seq_len scores are kept and the activations the matmuls take are bf16."""
    base = planned(6, 256, 8, 512, 16)
    smaller = [planned(6, 256, 8, 512, 16, microbatch_size=4), planned(6, 256, 8, 512, 16, remat=True)]
    assert all(memory.estimate(r).step < memory.estimate(base).step for r in smaller)
    assert memory.estimate(base, "gpu", 2).step < memory.estimate(base, "gpu", 1).step
    bf16 = planned(6, 256, 8, 512, 16, precision="bf16")
    assert memory.estimate(bf16, "gpu").activations < memory.estimate(base, "gpu").activations / 2  # no scores
    assert memory.estimate(bf16, "cpu", cpu_kernel=True).activations > memory.estimate(base, "cpu").activations  # XLA's path


def test_device_memory_bytes(tmp_path, monkeypatch):
    """Given; SLURM's mem_gb; this machine's over the jobs at once; the smallest visible GPU over jobs_per_gpu."""
    assert device_memory_bytes(LaunchSpec(device_memory_gb=80)) == 80 * GIB
    assert device_memory_bytes(LaunchSpec(executor="slurm", slurm={"mem_gb": 16})) == 16 * GIB
    assert device_memory_bytes(LaunchSpec(executor="slurm")) is None
    assert device_memory_bytes(LaunchSpec(executor="slurm", gpus_per_job=1)) is None  # SLURM picks the node
    total = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))) * 1024
    assert device_memory_bytes(LaunchSpec(executor="debug")) <= total
    assert device_memory_bytes(LaunchSpec(max_parallel=4), n_runs=10) == device_memory_bytes(LaunchSpec(executor="debug")) // 4
    assert device_memory_bytes(LaunchSpec(max_parallel=4), n_runs=2) == device_memory_bytes(LaunchSpec(executor="debug")) // 2
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nif [ \"$1\" = -L ]; then echo 'GPU 0: A'; echo 'GPU 1: B'; exit 0; fi\n"
                   "echo '0, GPU-aaa, 81559'; echo '1, GPU-bbb, 40960'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_memory_bytes(LaunchSpec(gpus_per_job=1)) == 40960 * 2**20
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaa")
    assert device_memory_bytes(LaunchSpec(gpus_per_job=1)) == 81559 * 2**20
    assert device_memory_bytes(LaunchSpec(gpus_per_job=1, jobs_per_gpu=2)) == 81559 * 2**20 // 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert device_memory_bytes(LaunchSpec(gpus_per_job=1)) is None


def _sweep(tmp_path, **train) -> Path:
    doc = {"name": "m", "model": {"seq_len": 256}, "grid": {"shapes": [{"n_layers": 4, "d_model": 256, "n_heads": 8}], "D": [1e6]},
           "train": {"batch_size": 32, **train}, "launch": {"device_memory_gb": 0.5}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_plan_refuses_a_run_that_cannot_fit_and_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for verb in ("plan", "run"):
        assert main([verb, str(_sweep(tmp_path))]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("scalinglab: error: grid.shapes[0]: the model of N 3.15e+06 (n_layers 4, d_model 256) needs 1.21 "), err
        assert "GiB per device, more than the 0.5 GiB usable (launch.device_memory_gb 0.5); set train.microbatch_size, set train.remat" in err
        assert err.rstrip().endswith("or give the device's memory (launch.device_memory_gb) if it has more")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]  # run wrote nothing
    assert main(["plan", str(_sweep(tmp_path, microbatch_size=4, remat=True)), "--json", str(tmp_path / "p.json")]) == 0
    rows = json.loads((tmp_path / "p.json").read_text())
    assert 0 < rows[0]["memory"] < 0.5 and rows[0]["memory"] == max(rows[0]["memory_step"], rows[0]["memory_evaluation"])
    assert "memory" in capsys.readouterr().out


def test_a_model_of_N_1e15_is_refused_by_arithmetic(capsys):
    """Refused from the counts alone: nothing the size of the model (1e15 parameters) or of its
    steps (1e13) is built on the way, so the refusal takes milliseconds (experiments/bench_preflight.py)."""
    main(["plan", str(BAD_SWEEP)])  # the modules a first call imports are not the plan's memory
    capsys.readouterr()
    tracemalloc.start()
    try:
        assert main(["plan", str(BAD_SWEEP)]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "n_layers 4334" in err and "plan smaller models" in err
