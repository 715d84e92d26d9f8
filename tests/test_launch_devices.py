"""Jobs on the devices they were given: local GPU slots mapped through the parent's
CUDA_VISIBLE_DEVICES (several jobs a GPU with launch.jobs_per_gpu), CPU-only process settings for
CPU jobs only, and a job given GPUs whose JAX has only the CPU failing at once with one line."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import tiny_sweep

from scalinglab.cli import main
from scalinglab.launch.executors import make_executor
from scalinglab.launch.job import GPU_XLA_FLAGS, JOB_XLA_FLAGS
from scalinglab.launch.resources import available_gpus, device_shortfall, max_parallel, slot_cores, slot_gpus, task_gpu_ids
from scalinglab.sweep.spec import GPU_TASK_CPUS, LaunchSpec

ONE_RUN = {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": [2560]}
UUIDS = "GPU-8e1c5c6a-0b6a-4f3c-9d7e-1a2b3c4d5e6f,GPU-f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f"


def gpu_launch(**fields) -> LaunchSpec:
    return LaunchSpec(**{"executor": "local", "gpus_per_job": 1, **fields})


def test_local_gpu_slots_are_the_parents_cuda_visible_devices_in_order(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert available_gpus() == ["3", "5"]
    assert max_parallel(gpu_launch(), n_runs=10) == 2
    assert [slot_gpus(gpu_launch(), s) for s in (0, 1)] == [("3",), ("5",)]
    assert slot_gpus(gpu_launch(gpus_per_job=2), 0) == ("3", "5")
    assert max_parallel(gpu_launch(gpus_per_job=2), n_runs=10) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUIDS)  # UUIDs pass through to the job as they are
    assert [slot_gpus(gpu_launch(), s) for s in (0, 1)] == [(u,) for u in UUIDS.split(",")]
    for hidden in ("", "-1", "NoDevFiles"):  # CUDA stops at the first entry that names no GPU
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert available_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,-1,4")
    assert available_gpus() == ["2"]


def test_jobs_per_gpu_share_each_gpu_and_split_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    launch = gpu_launch(jobs_per_gpu=3)
    assert max_parallel(launch, n_runs=100) == 6
    assert [slot_gpus(launch, s)[0] for s in range(6)] == ["3", "3", "3", "5", "5", "5"]
    assert max_parallel(gpu_launch(jobs_per_gpu=3, max_parallel=4), n_runs=100) == 4  # the YAML's wins
    cpus = sorted(os.sched_getaffinity(0))
    assert slot_cores(launch, 0, n_slots=1) == cpus  # a GPU job alone has every core
    halves = [slot_cores(launch, s, n_slots=2) for s in (0, 1)]
    share = len(cpus) // 2
    assert halves == [cpus[:share], cpus[share:2 * share]] or len(cpus) == 1  # disjoint halves, in order
    cpu_job = LaunchSpec(executor="local", threads_per_job=1)
    assert slot_cores(cpu_job, 1, n_slots=2) == [cpus[1 % len(cpus)]]  # a CPU job: threads_per_job cores


FAKE_NVIDIA_SMI = """#!/bin/sh
echo "GPU 0: NVIDIA H200 (UUID: GPU-8e1c5c6a-0b6a-4f3c-9d7e-1a2b3c4d5e6f)"
echo "GPU 1: NVIDIA H200 (UUID: GPU-f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f)"
"""


def test_without_cuda_visible_devices_the_gpus_are_nvidia_smis_and_a_cpu_job_says_it_is_one(tmp_path, monkeypatch):
    """nvidia-smi lists the machine's GPUs (a stand-in here: this machine has none)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (tmp_path / "bin" / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert available_gpus() == ["0", "1"]
    assert max_parallel(gpu_launch(jobs_per_gpu=2), n_runs=10) == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a local CPU job: submitit hides the GPUs
    job = "from scalinglab.launch.job import check_devices, setup_job; setup_job(None); print(check_devices(0))"
    out = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "training on the CPU: launch.gpus_per_job is 0\nNone\n"  # logged, not failed


def run_cli(args: list[str], cuda_visible_devices: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": cuda_visible_devices}
    env.pop("JAX_PLATFORMS", None)
    cmd = [sys.executable, "-m", "scalinglab.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(importlib.util.find_spec("jax_cuda12_plugin") is not None, reason="needs a CPU-only jaxlib")
def test_a_gpu_job_whose_jax_has_only_the_cpu_fails_at_once_with_one_line(tmp_path):
    path = tiny_sweep(tmp_path, executor="local", grid=ONE_RUN, launch={"gpus_per_job": 1})
    out = run_cli(["run", str(path), "--results", str(tmp_path / "res")], cuda_visible_devices="0")  # pre-flight passes
    line = "launch.gpus_per_job is 1 but JAX sees no GPU (a CPU-only jaxlib): pip install -e '.[cuda]'"
    assert out.returncode == 1, out.stderr[-2000:]
    assert line in " ".join(out.stdout.split())  # `scalinglab run` prints it (rich may wrap the line)
    [run_dir] = (tmp_path / "res" / "tiny" / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line and summary["traceback"] == ""
    assert not (run_dir / "metrics.jsonl").exists()  # failed before training


@pytest.mark.parametrize("visible, refusal", [
    ("", ("launch.gpus_per_job: 1 but no GPU is visible here (CUDA_VISIBLE_DEVICES is ''); set launch.gpus_per_job 0 "
          "to train on the CPU, or run on a machine with GPUs")),
    ("-1", "launch.gpus_per_job: 1 but no GPU is visible here (CUDA_VISIBLE_DEVICES is '-1')"),
])  # fmt: skip
def test_a_local_gpu_sweep_where_no_gpu_is_visible_is_refused_before_anything_is_written(
        visible, refusal, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    path = tiny_sweep(tmp_path, executor="local", grid=ONE_RUN, launch={"gpus_per_job": 1})
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 2
    out = capsys.readouterr()
    assert out.err.startswith(f"scalinglab: error: {refusal}") and out.err.count("\n") == 1
    assert out.out == "" and not (tmp_path / "res").exists()


def test_more_gpus_or_jobs_than_are_visible_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    path = tiny_sweep(tmp_path, executor="local", grid=ONE_RUN, train={"batch_size": 6}, launch={"gpus_per_job": 3})
    assert main(["run", str(path), "--results", str(tmp_path / "res")]) == 2
    assert capsys.readouterr().err == ("scalinglab: error: launch.gpus_per_job: 3 but only 2 GPU(s) are visible "
                                       "here (3,5); give at most 2\n")
    path = tiny_sweep(tmp_path, executor="local", grid=ONE_RUN, launch={"gpus_per_job": 1, "jobs_per_gpu": 2})
    assert main(["run", str(path), "--results", str(tmp_path / "res"), "--max-parallel", "5"]) == 2
    assert capsys.readouterr().err == (
        "scalinglab: error: launch.max_parallel: 5 jobs at once, but the 2 GPU(s) visible here hold 4 "
        "(launch.gpus_per_job 1, launch.jobs_per_gpu 2); give at most 4, or share each GPU with launch.jobs_per_gpu\n")
    assert not (tmp_path / "res").exists()


SETUP_CHILD = """
import json, os, sys
from scalinglab.launch.job import setup_job
cores, gpus, visible, jobs_per_gpu = json.loads(sys.argv[1])
setup_job(cores, gpus, None if visible is None else tuple(visible), jobs_per_gpu)
print(json.dumps({"affinity": sorted(os.sched_getaffinity(0)), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                  "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")}))
"""


def setup_in_fresh_process(cores, gpus=0, visible=None, jobs_per_gpu=1, xla_flags=None) -> dict:
    unset = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION", "CUDA_VISIBLE_DEVICES")
    env = {k: v for k, v in os.environ.items() if k not in unset} | ({} if xla_flags is None else {"XLA_FLAGS": xla_flags})
    args = json.dumps([cores, gpus, visible, jobs_per_gpu])
    out = subprocess.run([sys.executable, "-c", SETUP_CHILD, args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_process_settings_are_applied_to_cpu_jobs_only():
    cpus = sorted(os.sched_getaffinity(0))
    cpu = setup_in_fresh_process([cpus[-1]])
    assert cpu["affinity"] == [cpus[-1]] and all(flag in cpu["xla_flags"] for flag in JOB_XLA_FLAGS)
    assert cpu["cuda"] is None and cpu["mem_fraction"] is None
    gpu = setup_in_fresh_process(cpus, gpus=1, visible=["GPU-8e1c5c6a"], jobs_per_gpu=1)
    assert gpu == {"affinity": cpus, "xla_flags": " ".join(GPU_XLA_FLAGS), "cuda": "GPU-8e1c5c6a", "mem_fraction": None}
    shared = setup_in_fresh_process(cpus[:1], gpus=1, visible=["5"], jobs_per_gpu=4)
    assert shared == {"affinity": cpus[:1], "xla_flags": " ".join(GPU_XLA_FLAGS), "cuda": "5", "mem_fraction": "0.225"}


def test_gpu_jobs_get_the_gpu_xla_flags_but_those_the_user_set():
    """The latency-hiding scheduler and collective pipelining, unless XLA_FLAGS says otherwise."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = "--xla_gpu_enable_latency_hiding_scheduler=false --xla_dump_to=/tmp/x"
    flags = setup_in_fresh_process(cpus, gpus=2, xla_flags=mine)["xla_flags"].split()
    assert flags == [*mine.split(), *GPU_XLA_FLAGS[1:]]
    assert not any(f.startswith("--xla_gpu") for f in setup_in_fresh_process(cpus)["xla_flags"].split())  # a CPU job: none


def test_xla_accepts_the_gpu_flags():
    """XLA aborts on a flag it does not know; the CPU build parses the same flag table as the GPU's."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(GPU_XLA_FLAGS)}
    code = "import jax, jax.numpy as jnp; print(float(jax.jit(lambda x: x * 2)(jnp.ones(()))))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["2.0"], out.stderr[-2000:]
    unknown = {**env, "XLA_FLAGS": "--xla_gpu_no_such_flag=true"}
    assert subprocess.run([sys.executable, "-c", code], env=unknown, capture_output=True, timeout=300).returncode != 0  # caught


@pytest.mark.parametrize("gpus, tasks, rank, visible, ids", [
    (8, 8, 3, 8, [3]),  # one task a GPU, each seeing the node's eight (SLURM's --gpus-per-node)
    (8, 1, 0, 8, list(range(8))),  # one task: all eight, not JAX's default of GPU 0 alone
    (8, 2, 1, 8, [4, 5, 6, 7]),
    (4, 2, 0, 4, [0, 1]),
    (8, 2, 1, 4, [0, 1, 2, 3]),  # SLURM bound the task to its share: its own numbering
    (8, 4, 3, 2, [0, 1]),
    (4, 2, 1, 6, [2, 3]),  # more visible than the job's: its share of the first
])  # fmt: skip
def test_each_task_owns_an_equal_share_of_its_nodes_gpus(gpus, tasks, rank, visible, ids):
    assert task_gpu_ids(gpus, tasks, rank, visible) == ids


def test_a_share_that_cannot_be_given_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^launch.slurm.tasks_per_node: 3 does not divide launch.gpus_per_job 8; give a divisor$"):
        task_gpu_ids(8, 3, 0, 8)
    with pytest.raises(ValueError, match=r"sees 3 GPU\(s\), neither its share \(8 / 2 tasks = 4\) nor the node's 8") as e:
        task_gpu_ids(8, 2, 0, 3)
    assert "\n" not in str(e.value) and "launch.slurm.tasks_per_node" in str(e.value)


def test_jax_must_see_the_devices_the_sweep_promised():
    assert device_shortfall(8, 2, 2, seen=16, seen_here=4) is None
    assert device_shortfall(8, 8, 1, seen=8, seen_here=1) is None
    assert device_shortfall(0, 2, 1, seen=2, seen_here=1) is None  # CPU processes: one device each
    few = device_shortfall(8, 1, 2, seen=2, seen_here=1)  # what JAX gave each task before: one GPU
    assert few is not None and "\n" not in few
    assert "JAX sees 1 GPU(s) in this process and 2 in the run" in few and "promise 8 and 16" in few
    assert "launch.gpus_per_job 8 over launch.slurm.tasks_per_node 1 on 2 node(s)" in few
    assert "set launch.slurm.tasks_per_node to launch.gpus_per_job" in few
    assert "XLA_FLAGS" in device_shortfall(0, 2, 1, seen=4, seen_here=2)


DISTRIBUTED_CHILD = """
import json, jax
from scalinglab.training import distributed
distributed.initialize(2, [2, 3])
from jax._src.xla_bridge import CUDA_VISIBLE_DEVICES  # the flag jax.distributed sets from local_device_ids
print(json.dumps({"cuda_visible": CUDA_VISIBLE_DEVICES.value, "counts": distributed.device_counts()}))
jax.distributed.shutdown()
"""


def test_the_tasks_gpus_reach_jaxs_distributed_runtime():
    """One SLURM task (its environment, on this CPU) joins JAX's runtime with GPUs 2 and 3 as its
    own: JAX then makes only those visible to CUDA (on a GPU node its devices; here a setting)."""
    port = 20000 + os.getpid() % 20000
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    env = {**os.environ, **slurm, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_PORT": str(port)}
    out = subprocess.run([sys.executable, "-c", DISTRIBUTED_CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"cuda_visible": "2,3", "counts": [1, 1]}


def test_a_gpu_task_gets_cores_for_its_host_work_unless_the_sweep_says(tmp_path):
    assert LaunchSpec(executor="slurm").cpus_per_task == 1
    assert LaunchSpec(executor="slurm", gpus_per_job=8).cpus_per_task == GPU_TASK_CPUS == 8
    assert LaunchSpec(executor="slurm", gpus_per_job=8, slurm={"cpus_per_task": 12}).cpus_per_task == 12
    assert LaunchSpec(executor="slurm", slurm={"cpus_per_task": 3}).cpus_per_task == 3
    sbatch = make_executor(LaunchSpec(executor="slurm", gpus_per_job=2), tmp_path, 1)._executor.parameters
    assert (sbatch["cpus_per_task"], sbatch["ntasks_per_node"], sbatch["gpus_per_node"]) == (8, 2, 2)
