"""Which attention kernel a model runs and how it loops over its layers, decided without JAX: the
model asks with its devices, the planner's memory estimate with the devices a job will get; and
the precisions a model computes in."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
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


# cuDNN's fused attention as jax.nn.dot_product_attention calls it (jax/_src/cudnn/
# fused_attention_stablehlo.py, check_is_flash_attention): 16-bit inputs, a head dim that is a
# multiple of 8 and at most 128 (256 from Hopper, compute capability 9.0, on); cuDNN's flash
# attention itself needs Ampere (8.0) or later. Outside these it raises rather than fall back.
CUDNN_MIN_CAPABILITY = (8, 0)
CUDNN_HEAD_MULTIPLE = 8
CUDNN_MAX_HEAD = {(9, 0): 256, (8, 0): 128}  # from this compute capability on
CUDNN_SMALL_HEAD = 64  # narrower heads use the fused kernel's tiles poorly: said, not refused
# The compute capability of NVIDIA GPUs by name, for callers without a device to ask (first match
# wins). ANY_NVIDIA: the planner's name for a sweep's GPU, not known before its job runs; taken to
# be one of the Ampere-or-later GPUs the '.[cuda]' install targets.
ANY_NVIDIA = "NVIDIA"
CAPABILITIES = (
    (r"\b(B100|B200|GB200)\b", (10, 0)),
    (r"\b(H100|H200|H800|H20|GH200)\b", (9, 0)),
    (r"\b(L4|L40S?|RTX 40\d0|RTX \d000 ADA)\b", (8, 9)),
    (r"\b(A10G?|A16|A2|A30|A40|RTX 30\d0|RTX A\d000)\b", (8, 6)),
    (r"\bA100\b", (8, 0)),
    (r"\b(V100|TITAN V)\b", (7, 0)),
    (r"\b(T4|RTX 20\d0|QUADRO RTX|TITAN RTX)\b", (7, 5)),
    (r"\b(P100|P40|P4|K80|M60|M40|GTX)\b", (6, 0)),
)


@dataclass(frozen=True)
class AttentionChoice:
    """The attention a model runs and why, in one line for its log; warn: the reason deserves a
    warning (cuDNN ruled out where it was the choice, or a head too narrow for it to pay)."""

    kind: Attention
    why: str
    warn: bool = False


def capability(device_kind: str, compute_capability: str | None) -> tuple[int, int] | None:
    """An NVIDIA GPU's compute capability: the device's own ("9.0"), else read off its name
    (CAPABILITIES; ANY_NVIDIA is Ampere's); None when neither says."""
    if compute_capability:
        major, _, minor = compute_capability.partition(".")
        return int(major), int(minor or 0)
    name = " ".join(device_kind.upper().replace("-", " ").replace("_", " ").split())
    if name == ANY_NVIDIA:
        return CUDNN_MIN_CAPABILITY
    return next((cap for pattern, cap in CAPABILITIES if re.search(pattern, name)), None)


def cudnn_refusal(device_kind: str, d_head: int | None, cap: tuple[int, int] | None) -> str | None:
    """Why cuDNN's fused attention would raise on this GPU for heads of d_head (None: not known,
    not checked); None if it runs."""
    if cap is None:
        return f"{device_kind!r} has no known compute capability (cuDNN's fused attention needs Ampere, 8.0, or later)"
    if cap < CUDNN_MIN_CAPABILITY:
        return f"{device_kind} is compute capability {cap[0]}.{cap[1]}; cuDNN's fused attention needs Ampere (8.0) or later"
    max_head = next(h for c, h in CUDNN_MAX_HEAD.items() if cap >= c)
    if d_head is not None and (d_head % CUDNN_HEAD_MULTIPLE or d_head > max_head):
        return (
            f"d_head {d_head}: cuDNN's fused attention needs a multiple of {CUDNN_HEAD_MULTIPLE} of at most {max_head} "
            f"on compute capability {cap[0]}.{cap[1]} (model.d_head, or n_heads of a shape)"
        )
    return None


def choose_attention(
    platform: str,
    device_kind: str,
    n_devices: int,
    precision: Precision,
    cpu_kernel: Callable[[], bool],
    *,
    d_head: int | None = None,
    compute_capability: str | None = None,
) -> AttentionChoice:
    """cpu on one CPU device in fp32, where cpu_kernel() says it works (XLA cannot partition a
    custom call); cudnn on NVIDIA GPUs in bf16 where it runs (cudnn_refusal: compute capability,
    d_head; either None when unknown); xla otherwise."""
    if platform == "cpu":
        if precision != Precision.FP32:
            return AttentionChoice(Attention.XLA, "XLA's attention: the CPU kernel is float32 only")
        if n_devices > 1:
            return AttentionChoice(Attention.XLA, f"XLA's attention: {n_devices} CPU devices (XLA cannot partition the CPU kernel)")
        if not cpu_kernel():
            return AttentionChoice(Attention.XLA, "XLA's attention: the CPU kernel did not build")
        return AttentionChoice(Attention.CPU, "the CPU attention kernel (one CPU device, fp32)")
    if platform != "gpu" or "NVIDIA" not in device_kind.upper():
        return AttentionChoice(Attention.XLA, f"XLA's attention ({platform}, {device_kind})")
    if precision != Precision.BF16:
        return AttentionChoice(Attention.XLA, "XLA's attention: cuDNN's fused kernel is 16-bit and train.precision is fp32")
    refused = cudnn_refusal(device_kind, d_head, capability(device_kind, compute_capability))
    if refused is not None:
        return AttentionChoice(Attention.XLA, f"XLA's attention, with the full score matrix: {refused}", warn=True)
    if d_head is not None and d_head < CUDNN_SMALL_HEAD:
        why = (
            f"cuDNN's fused attention at d_head {d_head}: heads narrower than {CUDNN_SMALL_HEAD} use its tiles poorly; "
            f"model.d_head {CUDNN_SMALL_HEAD} or more (fewer, wider heads) makes it pay"
        )
        return AttentionChoice(Attention.CUDNN, why, warn=True)
    return AttentionChoice(Attention.CUDNN, f"cuDNN's fused attention ({device_kind}, bf16)")


def attention_kind(
    platform: str,
    device_kind: str,
    n_devices: int,
    precision: Precision,
    cpu_kernel: Callable[[], bool],
    *,
    d_head: int | None = None,
    compute_capability: str | None = None,
) -> Attention:
    """The kind choose_attention picks (for callers that need no reason: the memory estimate)."""
    return choose_attention(
        platform, device_kind, n_devices, precision, cpu_kernel, d_head=d_head, compute_capability=compute_capability
    ).kind


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
