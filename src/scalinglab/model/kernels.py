"""Which attention kernel a model runs and how it loops over its layers, decided without JAX: the
model asks with its devices, the planner's memory estimate with the devices a job will get; and
the precisions a model computes in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

EIGEN_INCLUDE = Path("/usr/include/eigen3")
# Deepest model whose layers a CPU runs unrolled: compiling the step took 2.7 s scanned at any
# depth, unrolled 2.6 s at 4 layers, 4.9 s at 16 and 8.2 s at 32 (d_model 128, this machine).
UNROLL_MAX_LAYERS = 32


class Precision(StrEnum):
    """A run's compute precision (train.precision); weights and optimizer state are float32 in both."""

    FP32 = "fp32"
    BF16 = "bf16"
    """bfloat16 matmuls and activations; attention scores, softmax, logits, loss and LayerNorm
    statistics stay float32."""


class Attention(StrEnum):
    """The attention a model runs (its values are jax.nn.dot_product_attention's implementations,
    but for the CPU kernel's)."""

    CPU = "cpu"
    """The C++ kernel (model.cpu_attention)."""
    CUDNN = "cudnn"
    """cuDNN's fused kernel: the causal mask is never materialised."""
    XLA = "xla"
    """XLA's dots, scores and softmax in fp32."""


def cpu_kernel_missing() -> str | None:
    """Why the CPU attention kernel (model.cpu_attention) cannot be built here; None if it can."""
    if os.environ.get("SCALINGLAB_CPU_ATTENTION", "on") == "off":
        return "switched off by SCALINGLAB_CPU_ATTENTION=off"
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler ({cxx})"
    if not (EIGEN_INCLUDE / "Eigen" / "Core").exists():
        return f"no Eigen headers in {EIGEN_INCLUDE}"
    return None


def attention_kind(platform: str, device_kind: str, n_devices: int, precision: Precision, cpu_kernel: Callable[[], bool]) -> Attention:
    """cpu on one CPU device in fp32, where cpu_kernel() says it works (XLA cannot partition a
    custom call); cudnn on NVIDIA GPUs in bf16; xla otherwise."""
    if platform == "cpu":
        return Attention.CPU if precision == Precision.FP32 and n_devices == 1 and cpu_kernel() else Attention.XLA
    if platform == "gpu" and "NVIDIA" in device_kind.upper() and precision == Precision.BF16:
        return Attention.CUDNN
    return Attention.XLA


class Layers(StrEnum):
    """How a model runs its layers: one lax.scan over their stacked parameters, or that scan
    unrolled. The parameters and checkpoints are the same either way."""

    SCAN = "scan"
    """The compiled program is one layer's, whatever the depth."""
    UNROLLED = "unrolled"
    """One copy of the layer's program per layer: XLA's CPU backend runs it 1.2-1.4x faster."""


def layer_loop(platform: str, n_layers: int, remat: bool) -> Layers:
    """Unrolled on a CPU up to UNROLL_MAX_LAYERS without remat, scanned otherwise;
    SCALINGLAB_LAYERS (scan or unrolled) overrides. On a CPU the scan reads each layer's weights
    and writes its gradients and saved activations through dynamic slices of the stacked arrays,
    a fifth of the step at (4, 256). Accelerators keep the scan (compile time flat in depth), and
    so does remat, which asks for memory: unrolled, XLA kept twice the activations of the scan."""
    forced = os.environ.get("SCALINGLAB_LAYERS")
    if forced:
        if forced not in set(Layers):
            raise ValueError(f"SCALINGLAB_LAYERS is {forced!r}: set it to scan or unrolled, or unset it")
        return Layers(forced)
    return Layers.UNROLLED if platform == "cpu" and n_layers <= UNROLL_MAX_LAYERS and not remat else Layers.SCAN
