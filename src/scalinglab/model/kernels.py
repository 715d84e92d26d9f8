"""Which attention kernel a model runs, decided without JAX: the model asks with its devices, the
planner's memory estimate with the devices a job will get."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

EIGEN_INCLUDE = Path("/usr/include/eigen3")


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


def attention_kind(platform: str, device_kind: str, n_devices: int, precision: str, cpu_kernel: Callable[[], bool]) -> str:
    """cpu: the C++ kernel (one CPU device, fp32, where cpu_kernel() says it works; XLA cannot
    partition a custom call); cudnn: cuDNN's fused kernel (NVIDIA GPUs, bf16: the causal mask is
    never materialised); xla: XLA's dots, scores and softmax in fp32."""
    if platform == "cpu":
        return "cpu" if precision == "fp32" and n_devices == 1 and cpu_kernel() else "xla"
    if platform == "gpu" and "NVIDIA" in device_kind.upper() and precision == "bf16":
        return "cudnn"
    return "xla"
