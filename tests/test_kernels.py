"""The attention rule (model/kernels.py), without JAX: cuDNN's fused kernel only where it runs
(jax's check_is_flash_attention: a head dim that is a multiple of 8, at most 128 before Hopper and
256 from it; cuDNN's flash attention: Ampere or later), XLA's with a logged reason elsewhere."""

import pytest

from scalinglab.model.kernels import Attention, capability, choose_attention

H100, A100, V100, T4 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-16GB", "Tesla T4"


def gpu(device_kind=H100, d_head=64, cc="9.0", precision="bf16"):
    return choose_attention("gpu", device_kind, 1, precision, lambda: False, d_head=d_head, compute_capability=cc)


@pytest.mark.parametrize("device_kind, cc, d_head, kind, warn", [
    (H100, "9.0", 64, "cudnn", False),
    (H100, "9.0", 128, "cudnn", False),
    (H100, "9.0", 256, "cudnn", False),  # Hopper takes up to 256
    (H100, "9.0", 264, "xla", True),
    (A100, "8.0", 128, "cudnn", False),
    (A100, "8.0", 256, "xla", True),  # 128 at most before Hopper
    (A100, "8.0", 100, "xla", True),  # not a multiple of 8
    (A100, "8.0", 36, "xla", True),
    (A100, "8.0", 32, "cudnn", True),  # runs, but narrow heads pay little: a warning
    (A100, "8.0", None, "cudnn", False),  # head width unknown: not checked
    ("NVIDIA GeForce RTX 3090", "8.6", 64, "cudnn", False),
    ("NVIDIA GeForce RTX 2080 Ti", "7.5", 64, "xla", True),  # pre-Ampere
    ("NVIDIA Tesla V100-SXM2-16GB", "7.0", 64, "xla", True),
    ("NVIDIA B200", "10.0", 256, "cudnn", False),
])  # fmt: skip
def test_cudnn_only_where_it_runs(device_kind, cc, d_head, kind, warn):
    choice = gpu(device_kind, d_head, cc)
    assert (choice.kind, choice.warn) == (kind, warn), choice.why


@pytest.mark.parametrize("device_kind, d_head, kind", [
    (H100, 256, "cudnn"),  # compute capability from the name: 9.0
    ("NVIDIA H200", 64, "cudnn"),
    ("NVIDIA GH200 480GB", 64, "cudnn"),
    (A100, 256, "xla"),  # 8.0
    ("NVIDIA L4", 64, "cudnn"),
    ("NVIDIA RTX A6000", 64, "cudnn"),
    ("NVIDIA TITAN RTX", 64, "xla"),  # Turing
    ("NVIDIA Quadro RTX 8000", 64, "xla"),
    ("NVIDIA Graphics Device", 64, "xla"),  # unknown: fall back rather than raise
    ("NVIDIA", None, "cudnn"),  # the planner's stand-in for a sweep's GPU
])  # fmt: skip
def test_without_a_compute_capability_the_name_decides(device_kind, d_head, kind):
    assert gpu(device_kind, d_head, cc=None).kind == kind


def test_reasons_name_what_to_change():
    assert "d_head 100" in gpu(A100, 100, "8.0").why and "model.d_head" in gpu(A100, 100, "8.0").why
    assert "at most 128" in gpu(A100, 256, "8.0").why and "at most 256" in gpu(H100, 264, "9.0").why
    assert "7.5" in gpu("NVIDIA GeForce RTX 2080 Ti", 64, "7.5").why and "Ampere" in gpu("NVIDIA GeForce RTX 2080 Ti", 64, "7.5").why
    assert "model.d_head 64" in gpu(A100, 32, "8.0").why
    assert "no known compute capability" in gpu("NVIDIA Graphics Device", 64, None).why


def test_fp32_other_platforms_and_the_cpu():
    fp32 = gpu(H100, 64, "9.0", precision="fp32")
    assert (fp32.kind, fp32.warn) == (Attention.XLA, False) and "16-bit" in fp32.why
    assert choose_attention("gpu", "AMD Instinct MI300X", 1, "bf16", lambda: True, d_head=64).kind == "xla"
    assert choose_attention("tpu", "TPU v5 lite", 4, "bf16", lambda: True, d_head=128).kind == "xla"
    assert choose_attention("cpu", "cpu", 1, "fp32", lambda: True, d_head=7).kind == "cpu"  # no head rule on the CPU
    assert choose_attention("cpu", "cpu", 1, "fp32", lambda: False).kind == "xla"
    assert choose_attention("cpu", "cpu", 2, "fp32", lambda: True).kind == "xla"
    assert choose_attention("cpu", "cpu", 1, "bf16", lambda: True).kind == "xla"


def test_capability_from_the_device_or_its_name():
    assert capability(H100, "9.0") == (9, 0) and capability(H100, "12.1") == (12, 1)
    assert capability(H100, None) == (9, 0) and capability(A100, None) == (8, 0)
    assert capability(V100, None) == (7, 0) and capability(T4, None) == (7, 5)
    assert capability("NVIDIA H20", None) == (9, 0) and capability("NVIDIA A2", None) == (8, 6)
    assert capability("NVIDIA Graphics Device", None) is None
