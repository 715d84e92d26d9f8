"""Model FLOPs utilization: achieved model FLOP/s over the devices' peak.

Accelerator peaks are the vendors' dense figures (bf16, and TF32 for fp32 matmuls on GPUs, which
XLA uses by default). A CPU has no datasheet figure that XLA reaches, so its peak is measured: the
best rate of a large fp32 matmul on the cores this process may use, cached per CPU model and core count.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import jax
import jax.numpy as jnp

from ..store.cache import build_once, cache_dir, cpu_info


# device_kind substring -> (fp32 peak, bf16 peak), FLOP/s per device, dense.
PEAKS = {
    "H200": (494.7e12, 989.4e12),
    "H100": (494.7e12, 989.4e12),
    "A100": (156e12, 312e12),
    "L4": (60e12, 121e12),
    "TPU v4": (275e12, 275e12),
    "TPU v5 lite": (197e12, 197e12),
    "TPU v5p": (459e12, 459e12),
    "TPU v6": (918e12, 918e12),
}
MATMUL_N = 1024


def measure_cpu_peak(seconds: float = 2.0) -> float:
    """Best fp32 FLOP/s of an N x N matmul over `seconds`, on the cores this process may use."""
    a = jax.random.normal(jax.random.key(0), (MATMUL_N, MATMUL_N), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * MATMUL_N**3 / best


def cpu_peak() -> float:
    """The measured peak of this CPU model with this many cores, from the cache (measured once,
    by one job while the others wait: two measuring at once would each see half the machine)."""
    key = f"{cpu_info()['model name']}|{len(os.sched_getaffinity(0))} cores"
    path = cache_dir() / "cpu_peak" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    build_once(path, lambda tmp: tmp.write_text(json.dumps({"cpu": key, "flops": measure_cpu_peak()})))
    return json.loads(path.read_text())["flops"]


def peak_flops(precision: str = "fp32") -> float | None:
    """Peak FLOP/s of all local devices together; None for an accelerator not in PEAKS."""
    devices = jax.local_devices()
    if devices[0].platform == "cpu":
        return cpu_peak()
    kind = devices[0].device_kind
    for name, (fp32, bf16) in PEAKS.items():
        if name in kind:
            return len(devices) * (bf16 if precision == "bf16" else fp32)
    return None


def mfu(tokens_per_s: float | None, flops_per_token: float, peak: float | None) -> float | None:
    return None if not tokens_per_s or not peak else tokens_per_s * flops_per_token / peak
