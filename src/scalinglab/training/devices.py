"""Whether JAX sees the accelerators a job was given: a job given GPUs (or run on a TPU VM) whose
JAX backend is the CPU would train there without a word, hours slower. Imports JAX only when
called: a job calls it after setup_job."""

from __future__ import annotations

import importlib.util
import os


def _cuda_plugin() -> str | None:
    """The JAX CUDA plugin installed, if any (jax[cuda12] or jax[cuda13])."""
    return next((name for name in ("jax_cuda12_plugin", "jax_cuda13_plugin") if importlib.util.find_spec(name)), None)


def on_cpu() -> bool:
    """Whether JAX computes on the CPU (its default backend)."""
    import jax  # noqa: PLC0415  (only inside a job, after its process settings)

    return jax.default_backend() == "cpu"


def missing_accelerator(gpus: int, tpu_files: list[str]) -> str | None:
    """One line saying why this job cannot use what it was given (gpus GPUs; a TPU VM's chips,
    tpu_files), and what to do; None when JAX's backend is not the CPU, or the job is a CPU job."""
    if not gpus and not tpu_files:
        return None
    if not on_cpu():
        return None
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:  # the user's choice of JAX backends
        if gpus:
            return f"launch.gpus_per_job is {gpus} but JAX_PLATFORMS is {platforms!r}: unset it, or set launch.gpus_per_job 0"
        return f"this is a TPU VM ({tpu_files[0]}) but JAX_PLATFORMS is {platforms!r}: unset it"
    if gpus:
        plugin = _cuda_plugin()
        if plugin is None:
            return f"launch.gpus_per_job is {gpus} but JAX sees no GPU (a CPU-only jaxlib): pip install -e '.[cuda]'"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = "CUDA_VISIBLE_DEVICES unset" if visible is None else f"CUDA_VISIBLE_DEVICES={visible!r}"
        return (
            f"launch.gpus_per_job is {gpus} but JAX ({plugin}) finds no GPU ({where}): check that "
            "nvidia-smi lists it and that the driver supports the plugin's CUDA version"
        )
    if importlib.util.find_spec("libtpu") is None:
        return f"this is a TPU VM ({tpu_files[0]}) but JAX sees no TPU (a CPU-only jaxlib): pip install -e '.[tpu]'"
    return (
        f"this is a TPU VM ({tpu_files[0]}) but JAX finds no TPU: another process may hold the chips "
        "(one JAX process per TPU VM; launch.max_parallel 1)"
    )
