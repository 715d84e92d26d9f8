"""A run uses every local device (data parallel), optionally computes in bf16, and a sweep's jobs
share one persistent compilation cache."""

import json
import os
import subprocess
import sys

import pytest
from conftest import tiny_runs

from scalinglab import results
from scalinglab.cli import main
from scalinglab.training.loop import train

CHILD = """
import json, sys
from scalinglab.sweep.runspec import RunSpec
from scalinglab.training.loop import train
print(json.dumps(train(RunSpec.from_record(json.loads(sys.argv[1])), sys.argv[2], log=lambda _: None)))
"""


def train_on(n_devices: int, run, path) -> dict:
    """Trains in a fresh process whose CPU is split into n_devices XLA devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(run.record()), str(path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_data_parallel_over_local_devices_matches_one_device(tmp_path):
    run = tiny_runs()[0]
    one = train_on(1, run, tmp_path / "one")
    two = train_on(2, run, tmp_path / "two")
    assert one["n_devices"] == 1 and two["n_devices"] == 2
    assert two["L"] == pytest.approx(one["L"], rel=1e-4)  # the same batch, split in two


def test_a_batch_that_does_not_split_over_the_devices_fails_clearly(tmp_path):
    run = tiny_runs(train={"batch_size": 3})[0]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(run.record()), str(tmp_path)], env=env, capture_output=True, text=True)
    assert "train.batch_size 3 does not divide over 2 devices" in out.stderr


def test_bf16_compute_trains_within_half_a_percent_of_fp32(tmp_path):
    """Softmax, loss, LayerNorm statistics and the residual stream are float32 under bf16: only the
    matmuls round, the readout's logits too. Measured here: +0.0001% (+0.03% with float32 logits)."""
    runs = {p: tiny_runs(shapes=((2, 64, 2),), D=(4 * 32 * 100,), data={"val_tokens": 8192}, train={"lr": 3e-3, "precision": p})[0]
            for p in ("fp32", "bf16")}  # fmt: skip
    fp32, bf16 = (train(run, tmp_path / p, log=lambda _: None) for p, run in runs.items())
    assert bf16["status"] == "done" and bf16["L"] == pytest.approx(fp32["L"], rel=0.005)
    assert bf16["L"] != fp32["L"] and bf16["attention"] == "xla" and fp32["attention"] == "cpu"


CACHE_CHILD = """
import json, sys
from scalinglab.launch.job import setup_job
setup_job(None)  # a job's process settings: XLA flags are part of the cache key
import jax
from scalinglab.sweep.runspec import RunSpec
from scalinglab.training.loop import train
hits = []
jax.monitoring.register_event_listener(lambda event, **_: hits.append(event) if event.endswith("cache_hits") else None)
train(RunSpec.from_record(json.loads(sys.argv[1])), sys.argv[2], log=lambda _: None, compile_cache=sys.argv[3])
print(len(hits))
"""


def test_local_jobs_share_a_compilation_cache(sweep_file, tmp_path):
    grid = {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": [2560, 5120]}  # one run per job slot
    path = sweep_file(executor="local", grid=grid, launch={"max_parallel": 2})
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 0
    # CPU jobs see no GPU (tests/test_launch_devices.py has the GPU slots).
    assert set(results.load(tmp_path / "res" / "tiny")["cuda_visible_devices"]) == {""}
    cache = tmp_path / "res" / "tiny" / "jax_cache"
    assert os.listdir(cache)  # compiled steps and evaluations, written by the jobs
    run = json.loads(next((tmp_path / "res" / "tiny" / "runs").glob("*/run.json")).read_text())

    def hits(cache_dir) -> int:
        out = subprocess.run(
            [sys.executable, "-c", CACHE_CHILD, json.dumps(run), str(tmp_path / "again"), str(cache_dir)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.strip().splitlines()[-1])

    assert hits(cache) >= 2  # a new job of the same shape compiles nothing: step and evaluation
    assert hits(tmp_path / "empty_cache") == 0

