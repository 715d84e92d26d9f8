"""MFU: the accelerators' peak table, the CPU peak over the process's cores, the FLOPs a training
step computes, and MFU <= 1 for a real training step on this CPU."""

import itertools
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from scalinglab.model import counts
from scalinglab.training import throughput

# device_kind as JAX reports it -> dense fp32 (TF32 on NVIDIA, bf16 passes on TPU) and bf16 FLOP/s per device
KINDS = [
    ("NVIDIA A100-SXM4-80GB", 156e12, 312e12),
    ("NVIDIA A100-SXM4-40GB", 156e12, 312e12),
    ("NVIDIA A100-PCIE-40GB", 156e12, 312e12),
    ("NVIDIA A100 80GB PCIe", 156e12, 312e12),
    ("NVIDIA H100 80GB HBM3", 494.7e12, 989.4e12),
    ("NVIDIA H100 PCIe", 378e12, 756e12),
    ("NVIDIA H100 NVL", 417.5e12, 835.5e12),
    ("NVIDIA H200", 494.7e12, 989.4e12),
    ("NVIDIA H200 NVL", 417.5e12, 835.5e12),
    ("NVIDIA B200", 1.125e15, 2.25e15),
    ("NVIDIA L4", 60e12, 121e12),
    ("TPU v4", 275e12, 275e12),
    ("TPU v5 lite", 197e12, 197e12),
    ("TPU v5", 459e12, 459e12),
    ("TPU v6 lite", 918e12, 918e12),
]
UNKNOWN = [
    "NVIDIA GeForce RTX 4090", "Tesla V100-SXM2-16GB", "NVIDIA L40S", "NVIDIA H800", "NVIDIA GH200 480GB",
    "NVIDIA GB200", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "TPU v4 lite", "TPU v3", "TPU7x", "",
]


def devices(kind: str, n: int) -> list:
    platform = "tpu" if kind.startswith("TPU") else "gpu"
    return [SimpleNamespace(platform=platform, device_kind=kind, id=i) for i in range(n)]


@pytest.mark.parametrize("n", [1, 8])
@pytest.mark.parametrize(("kind", "fp32", "bf16"), KINDS)
def test_accelerator_peaks_by_device_kind_over_all_devices(kind, fp32, bf16, n):
    assert throughput.devices_peak(devices(kind, n), "fp32") == pytest.approx(n * fp32)
    assert throughput.devices_peak(devices(kind, n), "bf16") == pytest.approx(n * bf16)


@pytest.mark.parametrize("kind", UNKNOWN)
def test_an_unknown_accelerator_has_no_peak(kind):
    assert throughput.device_peak(kind) is None
    assert throughput.devices_peak(devices(kind, 2), "bf16") is None


def test_device_kinds_match_whatever_their_case_spacing_and_dashes():
    assert throughput.device_peak("nvidia  h100-nvl", "bf16") == 835.5e12
    assert throughput.device_peak("NVIDIA H100_PCIE", "bf16") == 756e12
    assert throughput.device_peak(" tpu v5  lite ", "bf16") == 197e12
    assert throughput.device_peak("TPU v5p") == throughput.device_peak("TPU v5") == 459e12  # the alias XLA accepts


def test_peak_flops_counts_every_device_of_the_run(monkeypatch):
    monkeypatch.setattr(throughput.jax, "devices", lambda: devices("NVIDIA H200", 4))
    assert throughput.peak_flops("bf16") == pytest.approx(4 * 989.4e12)
    assert throughput.peak_flops("fp32") == pytest.approx(4 * 494.7e12)


def test_a_step_on_one_device_of_several_is_measured_against_that_device_alone(monkeypatch):
    """experiments/gpu_check.py trains GPT-2 small on one GPU of a multi-GPU host: its MFU divides
    by that GPU's peak (the devices its output lives on), not by all eight."""
    monkeypatch.setattr(throughput.jax, "devices", lambda: devices("NVIDIA H100 80GB HBM3", 8))
    one = SimpleNamespace(devices=lambda: devices("NVIDIA H100 80GB HBM3", 1))  # what loss.devices() gives
    assert throughput.array_peak(one, "bf16") == pytest.approx(989.4e12)
    assert throughput.peak_flops("bf16") == pytest.approx(8 * 989.4e12)
    two = SimpleNamespace(devices=lambda: devices("NVIDIA H100 80GB HBM3", 2))
    assert throughput.array_peak(two, "bf16") == pytest.approx(2 * 989.4e12)


def test_a_run_with_one_unknown_device_has_no_peak():
    assert throughput.devices_peak(devices("NVIDIA H100 80GB HBM3", 1) + devices("NVIDIA L40S", 1)) is None
    assert throughput.devices_peak([]) is None


def test_the_cpu_peak_is_one_cores_times_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(throughput, "core_peak", {"float32": 80e9, "bfloat16": 30e9}.get)
    monkeypatch.setattr(throughput.os, "sched_getaffinity", lambda pid: {0, 2, 5})
    cpus = [SimpleNamespace(platform="cpu", device_kind="cpu", id=i, process_index=0) for i in range(2)]  # 2 devices, 3 cores
    assert throughput.devices_peak(cpus, "fp32") == 3 * 80e9
    assert throughput.devices_peak(cpus, "bf16") == 3 * 80e9  # bf16: the faster of the two
    # One run over 4 processes (SLURM tasks), each given 3 cores alike.
    ranks = [SimpleNamespace(platform="cpu", device_kind="cpu", id=i, process_index=i) for i in range(4)]
    assert throughput.devices_peak(ranks, "fp32") == 4 * 3 * 80e9


def test_computed_flops_of_causal_attention_skip_the_blocks_above_the_diagonal():
    N = counts.count_N(2, 64, 256)
    weights = 6 * (N + 64 * 256)
    computed = partial(counts.computed_flops_per_token, N, 2, 64, vocab_size=256, causal=True)
    # seq_len 128 in 64-row blocks: scores 64 x 64 (the diagonal block, whole) and 64 x 128, i.e.
    # 96 keys per query where PaLM counts 128.
    assert computed(seq_len=128, block=64) == weights + 12 * 2 * 64 * 96
    assert counts.flops_per_token(N, 2, 64, 128, 256) == weights + 12 * 2 * 64 * 128
    # seq_len 200: 64 x 64 + 64 x 128 + 64 x 192 + 8 x 200 = 26176 scores for 200 queries
    assert computed(seq_len=200, block=64) == pytest.approx(weights + 12 * 2 * 64 * 26176 / 200, rel=1e-12)
    # one block (seq_len <= 64) is computed whole; so is the matrix XLA's dots mask (block None)
    assert computed(seq_len=64, block=64) == counts.flops_per_token(N, 2, 64, 64, 256)
    assert computed(seq_len=128, block=None) == counts.flops_per_token(N, 2, 64, 128, 256)
    # block 1: the triangle, (128 + 1) / 2 keys per query
    assert computed(seq_len=128, block=1) == weights + 12 * 2 * 64 * 64.5


def test_computed_flops_of_bidirectional_attention_are_palms():
    N = counts.count_N(3, 96, 384)
    for seq_len, block in itertools.product((32, 128, 200), (1, 64, None)):
        palm = counts.flops_per_token(N, 3, 96, seq_len, 257)
        assert counts.computed_flops_per_token(N, 3, 96, seq_len, 257, causal=False, block=block) == palm


def test_mfu_figures_of_the_studys_largest_model():
    """results/cpu-study: 1.49M parameters (4 x 176), seq_len 128, bytes; flops_per_token 10,291,776."""
    causal = SimpleNamespace(causal=True)
    model = SimpleNamespace(n_layers=4, d_model=176, seq_len=128, vocab_size=256, objective=causal)
    run = SimpleNamespace(N=counts.count_N(4, 176, 704), model=model, flops_per_token=10_291_776)
    assert counts.flops_per_token(run.N, 4, 176, 128, 256) == run.flops_per_token
    assert throughput.computed_flops_per_token(run, "cpu") == 10_021_440  # 96 of 128 keys per query
    assert throughput.computed_flops_per_token(run, "xla") == 10_291_776  # the whole matrix, masked
    assert throughput.computed_flops_per_token(run, "cudnn") == 10_291_776 - 12 * 4 * 176 * (128 - 64.5)
    figures = throughput.mfu_figures(5000.0, run, 100e9, "cpu")
    assert figures == pytest.approx({"mfu": 5000 * 10_021_440 / 100e9, "mfu_palm": 5000 * 10_291_776 / 100e9})
    assert throughput.mfu_figures(None, run, 100e9, "cpu") == {"mfu": None, "mfu_palm": None}
    assert throughput.mfu_figures(5000.0, run, None, "cpu") == {"mfu": None, "mfu_palm": None}


def test_the_cpu_kernels_block_is_the_counted_one():
    kernel = (Path(throughput.__file__).parents[1] / "model" / "cpu_attention.cc").read_text()
    assert f"constexpr int64_t kBlock = {throughput.SKIPPED_BLOCKS['cpu']};" in kernel


# The study's largest model (4 x 176, seq_len 128, batch 4, byte vocabulary), trained as a sweep
# job trains it: a process pinned to one core (launch.job.setup_job), the real step.
STEP = """
import json, sys, time
from scalinglab.launch.job import setup_job
setup_job([int(sys.argv[1])])
import numpy as np
from flax import nnx
from scalinglab.model.transformer import attention_kind, build_model
from scalinglab.sweep import planner, read
from scalinglab.training import throughput
from scalinglab.training.steps import make_loss_fn, make_train_step
from scalinglab.training.optimizer import build_optimizer

doc = {"name": "mfu", "model": {"seq_len": 128, "parametrization": "mup"},
       "grid": {"shapes": [{"n_layers": 4, "d_model": 176, "n_heads": 11}], "D": [200 * 4 * 128]},
       "train": {"batch_size": 4, "lr": 3e-3}}
run = planner.plan(read.parse(doc))[0]
peak = throughput.peak_flops(run.precision)
model = build_model(run.model, run.seed)
graphdef, params = nnx.split(model)
tx = build_optimizer(run.optim, params, model.r)
step = make_train_step(make_loss_fn(run.precision, graphdef), tx)
state = (params, tx.init(params))
windows = np.random.default_rng(0).integers(0, 256, (4, 129), dtype=np.int32)
batch = (windows[:, :-1], windows[:, 1:], np.ones((4, 128), np.float32))
times = []
for i in range(12):
    t0 = time.perf_counter()
    state, loss = step(state, *batch)
    loss.block_until_ready()
    times.append(time.perf_counter() - t0)
rate = 4 * 128 / min(times[2:])  # the fastest step after compilation: the most MFU could be
attention = attention_kind(run.precision)
print(json.dumps({"peak": peak, "core_peak": throughput.core_peak(), "tokens_per_s": rate, "attention": attention,
                  "flops_per_token": run.flops_per_token, **throughput.mfu_figures(rate, run, peak, attention)}))
"""


def test_mfu_of_a_real_training_step_on_one_core_is_at_most_one():
    core = max(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", STEP, str(core)], check=False, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["flops_per_token"] == 10_291_776  # as in the study's run.json
    assert result["peak"] == result["core_peak"]  # one core
    assert 0 < result["mfu"] <= result["mfu_palm"] <= 1, result
    if result["attention"] == "cpu":  # the kernel (built where g++ and Eigen are) skips causal blocks
        assert result["mfu"] < result["mfu_palm"]
