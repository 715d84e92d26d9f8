"""Model FLOPs utilization: achieved model FLOP/s over the peak of all the run's devices.

Two figures (mfu_figures): `mfu` counts the FLOPs a training step computes (causal attention
kernels skip the score blocks above the diagonal: computed_flops_per_token), `mfu_palm` the PaLM
convention of the run's flops_per_token (the full score matrix), which is never the smaller.

Accelerator peaks are the vendors' dense figures per device (ACCELERATORS), bf16 and the one XLA
gets for fp32 matmuls by default (TF32 on NVIDIA GPUs; one bf16 pass on TPUs), summed over
jax.devices(); a device_kind not in the table (or a MIG slice) gives None, never a guess.

A CPU has no datasheet figure XLA reaches, so its peak is measured: the best rate of XLA's matmul
over CPU_SHAPES on one core, in a child process pinned to one of this process's cores, times the
number of cores this process may use (os.sched_getaffinity), the cores its FLOPs are computed on;
n cores cannot beat n times one core's best, so MFU <= 1. The shapes are mid-sized and have no
power-of-two leading dimension: the 1024 x 1024 matmul that was the peak before runs at half the
rate of the model's own matmuls (42-46 against 85-91 GFLOP/s on a core of an AMD EPYC, where
1000 and 1056 run at 83-87: likely cache-set conflicts), which let MFU reach 1.1. Trials last a
few ms, and rounds go on until every shape had trials with the core to itself, so a busy
machine does not lower the figure by much.
Cached per CPU (model name and flags), jaxlib version, XLA_FLAGS and dtype.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib

from ..model import counts
from ..model.kernels import Attention, Precision
from ..store.cache import build_once, cache_dir, cpu_info

log = logging.getLogger(__name__)

# name, pattern over normalize(device_kind), fp32 and bf16 FLOP/s per device (dense, no sparsity).
# First match wins: NVL and PCIe before the SXM part of the same GPU. NVIDIA fp32 is TF32, which
# XLA uses for fp32 matmuls by default; a TPU runs an fp32 matmul at default precision in bf16.
ACCELERATORS = (
    ("A100", r"\bA100\b", 156e12, 312e12),  # SXM4 and PCIe, 40 and 80 GB
    ("H100 NVL", r"\bH100\b.*\bNVL\b", 417.5e12, 835.5e12),
    ("H100 PCIe", r"\bH100\b.*\bPCIE\b", 378e12, 756e12),
    ("H100 SXM", r"\bH100\b", 494.7e12, 989.4e12),  # "NVIDIA H100 80GB HBM3"
    ("H200 NVL", r"\bH200\b.*\bNVL\b", 417.5e12, 835.5e12),
    ("H200 SXM", r"\bH200\b", 494.7e12, 989.4e12),
    ("B200", r"\bB200\b", 1.125e15, 2.25e15),
    ("L4", r"\bL4\b", 60e12, 121e12),  # not L40, L40S
    ("TPU v4", r"^TPU V4$", 275e12, 275e12),  # not "TPU v4 lite" (v4i)
    ("TPU v5e", r"^TPU V5 ?(LITE|E)$", 197e12, 197e12),  # reported as "TPU v5 lite"
    ("TPU v5p", r"^TPU V5P?$", 459e12, 459e12),  # reported as "TPU v5"
    ("TPU v6e", r"^TPU V6 ?(LITE|E)$", 918e12, 918e12),  # reported as "TPU v6 lite"
)

# Matmuls (m, k, n) whose best rate is the CPU's peak: mid-sized (operands in L2 to L3), no
# power-of-two leading dimension, a few milliseconds on one core; among them the model's kind.
CPU_SHAPES = ((480, 240, 720), (480, 480, 480), (432, 432, 432), (640, 160, 640), (512, 176, 704), (512, 704, 176))
CPU_DTYPES = {Precision.FP32: ("float32",), Precision.BF16: ("float32", "bfloat16")}  # bf16: whichever XLA runs faster
MEASURE_S, MAX_MEASURE_S = 3.0, 30.0
CLEAN_TRIALS = 10  # per shape: trials whose process CPU time was >= CLEAN of their wall time
CLEAN = 0.97
# Query rows per block in which each attention kind (model.transformer.attention_kind) skips the
# causal score blocks above the diagonal: the CPU kernel's (cpu_attention.cc, kBlock); cuDNN's
# tiles are its own, counted as the triangle (1: the least any kernel computes); XLA's dots
# compute the whole matrix and mask it (None).
SKIPPED_BLOCKS = {Attention.CPU: 64, Attention.CUDNN: 1, Attention.XLA: None}
CHILD = """
import json, os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})  # before JAX starts its threads
from scalinglab.training.throughput import measure_core_peak
print(json.dumps(measure_core_peak(sys.argv[2])))
"""


def normalize(device_kind: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'NVIDIA A100 SXM4 80GB': upper case, '-' and '_' as spaces."""
    return " ".join(re.sub(r"[-_]", " ", device_kind).upper().split())


def device_peak(device_kind: str, precision: Precision = Precision.FP32) -> float | None:
    """Dense peak FLOP/s of one accelerator of this device_kind; None if not in ACCELERATORS."""
    kind = normalize(device_kind)
    if re.search(r"\bMIG\b", kind):  # a slice of a GPU: the whole GPU's figure would be wrong
        return None
    for _, pattern, fp32, bf16 in ACCELERATORS:
        if re.search(pattern, kind):
            return bf16 if precision == Precision.BF16 else fp32
    return None


def devices_peak(devices, precision: Precision = Precision.FP32) -> float | None:
    """Peak FLOP/s of `devices` together: CPUs by cpu_peak (cores, not devices) of each process, accelerators by
    the table; None if any accelerator is unknown."""
    if not devices:
        return None
    if all(d.platform == "cpu" for d in devices):
        try:  # each process's cores (processes of one run are given alike)
            return cpu_peak(precision) * len({d.process_index for d in devices})
        except RuntimeError as e:
            log.warning("no CPU peak: %s", e)
            return None
    peaks = [device_peak(d.device_kind, precision) for d in devices]
    known = [p for p in peaks if p is not None]
    return None if len(known) < len(peaks) else sum(known)


def peak_flops(precision: Precision = Precision.FP32) -> float | None:
    """Peak FLOP/s of all the run's devices (jax.devices(): with one process, the local ones)."""
    return devices_peak(jax.devices(), precision)


def array_peak(x: jax.Array, precision: Precision = Precision.FP32) -> float | None:
    """Peak FLOP/s of the devices holding `x`, an output of a step: a step run on one device of
    several is measured against that device alone, not against every device of the process."""
    return devices_peak(sorted(x.devices(), key=lambda d: d.id), precision)


def cpu_peak(precision: Precision = Precision.FP32) -> float:
    """The CPU peak of this process: its cores (os.sched_getaffinity) times one core's peak."""
    per_core = max(core_peak(dtype) for dtype in CPU_DTYPES[precision])
    return len(os.sched_getaffinity(0)) * per_core


def core_peak(dtype: str = "float32") -> float:
    """One core's peak FLOP/s for `dtype` matmuls, from the cache; measured once (by one job while
    the others wait) in a child process pinned to the first of this process's cores. Keyed by
    the CPU, jaxlib and XLA_FLAGS (flags can change XLA's matmuls, e.g. --xla_cpu_use_onednn)."""
    cpu, xla_flags = cpu_info(), os.environ.get("XLA_FLAGS", "")
    key = "|".join([cpu["model name"], cpu.get("flags", cpu.get("Features", "")), jaxlib.__version__, xla_flags, dtype])
    path = cache_dir() / "cpu_core_peak" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"

    def build(tmp: Path) -> None:
        entry = measure_in_child(min(os.sched_getaffinity(0)), dtype)
        about = {"cpu": cpu["model name"], "jaxlib": jaxlib.__version__, "xla_flags": xla_flags, "dtype": dtype}
        tmp.write_text(json.dumps({**about, **entry}))

    build_once(path, build)
    return json.loads(path.read_text())["flops"]


def measure_in_child(core: int, dtype: str) -> dict:
    """measure_core_peak(dtype) in a fresh Python pinned to `core` (it inherits the environment,
    XLA_FLAGS included, and runs on the CPU)."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(core), dtype],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=MAX_MEASURE_S + 300,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"measuring the CPU peak: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(f"measuring the CPU peak failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_core_peak(dtype: str = "float32", seconds: float = MEASURE_S) -> dict:
    """The best rate of XLA's matmul over CPU_SHAPES on the cores of this process (one, in
    measure_in_child): rounds over all shapes for `seconds`, and on until every shape had
    CLEAN_TRIALS trials with the core to itself (at most MAX_MEASURE_S). Returns {"flops": the
    best rate, "by_shape": each shape's best, "clean_trials": the fewest of any shape}."""
    calls = []
    for i, (m, k, n) in enumerate(CPU_SHAPES):
        a, b = (jax.random.normal(jax.random.key(i), shape, jnp.dtype(dtype)) for shape in ((m, k), (k, n)))
        matmul = jax.jit(jnp.matmul)
        matmul(a, b).block_until_ready()
        calls.append((matmul, a, b))
    best, clean = [float("inf")] * len(calls), [0] * len(calls)
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < MAX_MEASURE_S and (elapsed < seconds or min(clean) < CLEAN_TRIALS):
        for i, (matmul, a, b) in enumerate(calls):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            matmul(a, b).block_until_ready()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            best[i] = min(best[i], wall)
            clean[i] += cpu >= CLEAN * wall
    rates = {f"{m}x{k}x{n}": 2 * m * k * n / t for (m, k, n), t in zip(CPU_SHAPES, best)}
    return {"flops": max(rates.values()), "by_shape": rates, "clean_trials": min(clean)}


def computed_flops_per_token(run, attention: Attention) -> float:
    """FLOPs per token a training step of `run` (a RunSpec) computes with `attention`, the kind
    its model was built with (model.transformer.attention_kind): counts.computed_flops_per_token."""
    m = run.model
    causal, block = m.objective.causal, SKIPPED_BLOCKS[attention]
    return counts.computed_flops_per_token(run.N, m.n_layers, m.d_model, m.seq_len, m.vocab_size, causal, block)


def mfu(tokens_per_s: float | None, flops_per_token: float, peak: float | None) -> float | None:
    return None if not tokens_per_s or not peak else tokens_per_s * flops_per_token / peak


def mfu_figures(tokens_per_s: float | None, run, peak: float | None, attention: Attention) -> dict[str, float | None]:
    """{"mfu": over the FLOPs the step computes (computed_flops_per_token), "mfu_palm": over
    run.flops_per_token (PaLM's convention: the full attention score matrix)}; None without a
    rate or a peak. Causal attention that skips score blocks makes mfu the smaller."""
    return {
        "mfu": mfu(tokens_per_s, computed_flops_per_token(run, attention), peak),
        "mfu_palm": mfu(tokens_per_s, run.flops_per_token, peak),
    }
