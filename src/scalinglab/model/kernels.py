"""Which attention kernel a model runs, decided without JAX: the model asks with its devices, the
planner's memory estimate with the devices a job will get; and the precisions a model computes in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

EIGEN_INCLUDE = Path("/usr/include/eigen3")


class Precision(StrEnum):
    """A run's compute precision (train.precision); weights and optimizer state are float32 in both."""

    FP32 = "fp32"
    BF16 = "bf16"
    """bfloat16 matmuls and activations, the logits too; attention scores, softmax, the loss (its
    softmax over the logits) and LayerNorm statistics stay float32."""


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
