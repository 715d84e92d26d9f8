"""Softmax attention on CPU by a C++ kernel (cpu_attention.cc): one (batch, head) slice per task on
XLA's intra-op thread pool, where XLA's batched dots use one thread; it reads q, k and v where the
fused projection put them and writes the output where the next projection reads it.

The kernel is compiled on first use with the system C++ compiler against Eigen and the FFI
headers jaxlib ships, then cached per source, jaxlib version, compiler and CPU (model and feature
flags: it is built for the CPU it runs on). Without a compiler or Eigen (apt install g++
libeigen3-dev), or with SCALINGLAB_CPU_ATTENTION=off, model.attention uses XLA's dots instead:
same values, slower.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import subprocess
from functools import partial
from pathlib import Path

import jax
import jaxlib
import numpy as np

from ..store.cache import build_once, cache_dir, cpu_info
from .kernels import EIGEN_INCLUDE, cpu_kernel_missing

SOURCE = Path(__file__).with_name("cpu_attention.cc")
FLAGS = ("-O3", "-march=native", "-std=c++20", "-shared", "-fPIC")
FORWARD, BACKWARD = "scalinglab_attention_fwd", "scalinglab_attention_bwd"
log = logging.getLogger(__name__)


def library_path() -> Path:
    """Where the kernel built for this source, jaxlib, compiler and CPU lies in the cache. Built for
    this CPU (-march=native): nodes of a cluster can share the cache and a model name, and differ
    in AVX-512, so the feature flags are part of the key."""
    cpu = cpu_info()
    flags = cpu.get("flags", cpu.get("Features", ""))
    key = "|".join([SOURCE.read_text(), jaxlib.__version__, os.environ.get("CXX", "c++"), *FLAGS, cpu["model name"], flags])
    return cache_dir() / "kernels" / f"cpu_attention-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _compile() -> Path:
    """The kernel's shared library, compiled unless the cache holds it (once among concurrent jobs)."""
    cxx, path = os.environ.get("CXX", "c++"), library_path()
    if path.exists():
        return path
    missing = cpu_kernel_missing()
    if missing is not None:
        raise RuntimeError(missing)

    def build(tmp: Path) -> None:
        cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", f"-I{EIGEN_INCLUDE}", str(SOURCE), "-o", str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines()[-1:]
            raise RuntimeError(f"{cxx} failed: {errors[0] if errors else done.returncode}")

    return build_once(path, build)


@functools.cache
def available() -> bool:
    """Whether the kernel is compiled and registered with XLA (once per process)."""
    if os.environ.get("SCALINGLAB_CPU_ATTENTION", "on") == "off":
        return False
    try:
        library = ctypes.cdll.LoadLibrary(str(_compile()))
        forward, backward = library.AttentionForward, library.AttentionBackward
    except (RuntimeError, OSError, AttributeError) as e:  # AttributeError: a library without the handlers
        log.warning("CPU attention kernel unavailable (%s); attention uses XLA's dots, slower", e)
        return False
    jax.ffi.register_ffi_target(FORWARD, jax.ffi.pycapsule(forward), platform="cpu")
    jax.ffi.register_ffi_target(BACKWARD, jax.ffi.pycapsule(backward), platform="cpu")
    return True


def _ffi(name: str, results, *args, scale: float, causal: bool):
    return jax.ffi.ffi_call(name, results, vmap_method="broadcast_all")(*args, scale=np.float32(scale), causal=causal)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def attention(qkv: jax.Array, scale: float, causal: bool) -> jax.Array:
    """softmax(scale q k^T [causal mask]) v of the fused projection's q, k, v, qkv [..., L, 3, H, K],
    as [..., L, H, K]: the layouts the model's projections make and take, so nothing is
    transposed; model.attention's contract."""
    return _forward(qkv, scale, causal)[0]


def _forward(qkv, scale, causal):
    *lead, L, _, H, K = qkv.shape
    like = jax.ShapeDtypeStruct
    results = (like((*lead, L, H, K), qkv.dtype), like((*lead, H, L), qkv.dtype))
    o, lse = _ffi(FORWARD, results, qkv, scale=scale, causal=causal)
    return o, (qkv, o, lse)


def _backward(scale, causal, res, g):
    qkv = res[0]
    return (_ffi(BACKWARD, jax.ShapeDtypeStruct(qkv.shape, qkv.dtype), *res, g, scale=scale, causal=causal),)


attention.defvjp(_forward, _backward)
