"""The job body: what one submitit job runs, in process (debug), as a local subprocess, or on a
SLURM node. It takes the run's lock, sets up the process (CPU affinity and GPUs; a CPU job's malloc
and XLA flags), and only then imports the training code and with it JAX; a job given GPUs (or on a
TPU VM) whose JAX has only the CPU fails at once; a training error is kept in the run's summary.

Importing this module does not import JAX: submitit's local subprocess imports it to unpickle the
job, before setup_job has pinned the job's CPU threads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import submitit

from ..store import runs
from ..store.layout import RunDir
from ..store.runs import Status
from ..sweep.runspec import RunSpec
from .resources import available_gpus, device_shortfall, local_gpus, task_gpu_ids, tpu_device_files

if TYPE_CHECKING:
    from ..training.loop import Trainer

BUSY = "busy"  # run_job's status when another process holds the run's lock, or has finished it

# XLA flags of every job, unless XLA_FLAGS already sets them, measured on 2 cores of an AVX2 CPU
# with experiments/bench_throughput_compare.py. No YNNPACK fusions: XLA's own emitters were faster
# for this model, step time (2, 64) -30%, (4, 128) ... (8, 512) -2 to -5%. (Matmuls through oneDNN,
# --xla_cpu_use_onednn, were 13% faster at (8, 512) but are not used: jobs aborted in XLA when
# freeing oneDNN executables, and such executables cannot enter the persistent compilation cache.)
JOB_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
# XLA flags of every GPU job, unless XLA_FLAGS already sets them: the latency-hiding scheduler
# overlaps a step's collectives (gradient all-reduces, fsdp's all-gathers and reduce-scatters)
# with its compute, and pipelining moves the layer scan's collectives into the iteration before
# the one that needs them. Off by default in the XLA of jaxlib 0.10 (its DebugOptions dump lists
# them as changed; reduce-scatter's is on already, set here to keep it so). Not measured on a
# GPU here: a job without collectives (one GPU) has nothing for them to move.
GPU_XLA_FLAGS = (
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    "--xla_gpu_enable_pipelined_all_gather=true",
    "--xla_gpu_enable_pipelined_all_reduce=true",
    "--xla_gpu_enable_pipelined_reduce_scatter=true",
)
# GPU memory a job's JAX takes (it preallocates) when launch.jobs_per_gpu jobs share a GPU: this
# share of the GPU, divided between them; the rest is left to the CUDA contexts.
SHARED_GPU_MEMORY = 0.9


def run_job(
    record: dict,
    run_path: str,
    cores: list[int] | None,
    started=None,
    *,
    gpus: int = 0,
    visible: tuple[str, ...] | None = None,
    jobs_per_gpu: int = 1,
    processes: int = 1,
    tasks_per_node: int = 1,
) -> dict:
    """Trains the run of `record` (RunSpec.record) into run_path. A training error is kept in the
    run's summary.json, which is returned (status 'failed'), so every executor reports it the same
    way and the sweep goes on. A run another process is training (its lock is held), or has just
    finished, is left alone: status 'busy'. started(trainer) is called once training is set up.
    gpus: the GPUs the job was given (launch.gpus_per_job); visible, jobs_per_gpu: see setup_job;
    processes: this is one of several processes training the run together (run_one_of_many), the
    node's tasks_per_node of them on each node."""
    run_dir = RunDir(run_path)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    if processes > 1:
        return run_one_of_many(record, run_dir, cores, started, gpus, processes, tasks_per_node)
    lock = runs.lock(run_dir)
    if lock is None:
        return {"status": BUSY}
    try:
        if runs.is_complete(run_dir):  # finished by another process before this one got the lock
            return {"status": BUSY}
        setup_job(cores, gpus, visible, jobs_per_gpu)
        missing = check_devices(gpus)
        if missing is not None:
            return runs.record_failure(run_dir, missing)
        return _train(record, run_dir, started)
    except Exception as e:
        return runs.record_failure(run_dir, f"{type(e).__name__}: {e}", traceback.format_exc())
    finally:
        os.close(lock)


def run_one_of_many(
    record: dict, run_dir: RunDir, cores: list[int] | None, started, gpus: int, processes: int, tasks_per_node: int
) -> dict:
    """One process (SLURM task) of a run over several: JAX's distributed runtime first, before any
    device is touched, given this task's share of the node's GPUs; process 0 alone takes the run's
    lock and writes its files, and tells the others whether to train. Every process checks that
    JAX sees the devices the sweep promised. A process that fails exits at once with an error, so
    that SLURM (srun --kill-on-bad-exit) ends the others rather than leave them waiting in a
    collective: the run is failed, never done (process 0 records why when it can)."""
    setup_job(cores, gpus)
    from ..training import distributed  # noqa: PLC0415  (imports JAX, after setup_job)

    local_ids, refused = None, None
    if gpus:
        try:
            local_ids = task_gpu_ids(gpus, tasks_per_node, int(os.environ.get("SLURM_LOCALID", "0")), len(available_gpus()))
        except ValueError as e:  # refused below, where process 0 records it
            refused = str(e)
    distributed.initialize(gpus, local_ids)
    lock = runs.lock(run_dir) if distributed.is_main() else None
    try:
        if distributed.main_decides(distributed.is_main() and (lock is None or runs.is_complete(run_dir))):
            return {"status": BUSY}
        missing = (
            refused
            or check_devices(gpus)
            or device_shortfall(gpus, tasks_per_node, processes // tasks_per_node, *distributed.device_counts())
        )
        if missing is not None:
            raise RuntimeError(missing)
        return _train(record, run_dir, started)
    except Exception as e:
        from jax import process_index  # noqa: PLC0415  (JAX and the training code only inside the job, after its setup)

        traceback.print_exc()
        if process_index() == 0:
            runs.record_failure(run_dir, f"{type(e).__name__}: {e}", traceback.format_exc())
        else:
            print(f"process {process_index()} failed; the run fails with it", file=sys.stderr, flush=True)
        os._exit(1)
    finally:
        if lock is not None:
            os.close(lock)


def _train(record: dict, run_dir: RunDir, started) -> dict:
    """Builds the run's Trainer (importing the training code, and with it JAX: after setup_job),
    tells started(trainer), and trains."""
    from ..training.loop import Trainer  # noqa: PLC0415  (JAX and the training code only inside the job, after its setup)

    trainer = Trainer(RunSpec.from_record(record), run_dir, compile_cache=run_dir.sweep.compile_cache)
    if started is not None:
        started(trainer)
    return trainer.train()


def check_devices(gpus: int) -> str | None:
    """After setup_job: why a job given GPUs (or on a TPU VM) cannot use them, in one line, when
    JAX's backend is the CPU; None if it can. A CPU job on a machine with GPUs logs that it is one."""
    from ..training.devices import missing_accelerator, on_cpu  # noqa: PLC0415  (imports JAX)

    tpu_files = tpu_device_files()
    missing = missing_accelerator(gpus, tpu_files)
    if missing is None and not gpus and not tpu_files and local_gpus() and on_cpu():
        print("training on the CPU: launch.gpus_per_job is 0", flush=True)
    return missing


class TrainJob(submitit.helpers.Checkpointable):
    """The job body as submitit runs it on SLURM. On preemption or near its time limit SLURM
    signals the job (USR2, 90 s ahead); submitit then calls checkpoint(), which has the trainer
    save its state and the same call requeued; the requeued job resumes from that checkpoint.
    After max_requeues the run ends as failed instead.

    A run over several processes (processes > 1) cannot save from one process's signal handler
    (submitit calls checkpoint() on process 0 only; a collective save started there deadlocks).
    Once training is set up, USR2 becomes a notice of JAX's preemption service on every process;
    they save together at the step it picks, and then process 0 has submitit requeue the job."""

    def __init__(self, max_requeues: int, gpus: int = 0, processes: int = 1, tasks_per_node: int = 1):
        self.max_requeues, self.gpus = max_requeues, gpus  # gpus: launch.gpus_per_job, SLURM's --gpus-per-node
        self.processes, self.tasks_per_node = processes, tasks_per_node  # launch.slurm.nodes x tasks_per_node
        self.trainer: Trainer | None = None  # set once training is set up; never pickled (a fresh job is requeued)
        self.warned = False
        self.saved: int | None = None  # the step saved when training stopped (_stopped)
        self.requeue: Callable[[int, FrameType | None], Any] | int | None = None  # submitit's USR2 handler (_started)

    def __call__(self, record: dict, run_path: str, cores: list[int] | None) -> dict:
        summary = run_job(
            record, run_path, cores, started=self._started, gpus=self.gpus, processes=self.processes, tasks_per_node=self.tasks_per_node
        )
        return self._stopped(summary, RunDir(run_path)) if summary["status"] == Status.PREEMPTED else summary

    def _started(self, trainer) -> None:
        self.trainer = trainer
        if self.processes > 1:  # submitit's handler (requeue) is kept for process 0, after the save
            self.requeue = signal.getsignal(signal.SIGUSR2)
            signal.signal(signal.SIGUSR2, self._warn)

    def _warn(self, signum, frame) -> None:
        from ..training.distributed import notice_preemption  # noqa: PLC0415  (JAX is imported by now)

        self.warned = True
        notice_preemption()

    def _stopped(self, summary: dict, run_dir: RunDir) -> dict:
        """Process 0, once every process saved: after USR2, submitit's requeue (which calls
        checkpoint(), then exits), or failed when requeued too often; after SIGTERM alone (SLURM's
        cancel or its own preemption), failed, to be resumed by the next `scalinglab run` (or by
        SLURM's requeue). The other processes just return."""
        from ..training.distributed import is_main  # noqa: PLC0415  (JAX and the training code only inside the job, after its setup)

        if not is_main():
            return summary
        self.saved = summary["step"]
        if not self.warned:
            return runs.record_failure(
                run_dir,
                f"stopped by SIGTERM (cancelled, or preempted by SLURM) after saving "
                f"step {self.saved}; `scalinglab run` resumes it from there",
            )
        try:
            assert callable(self.requeue)  # warned: _started (processes > 1) kept submitit's handler
            self.requeue(signal.SIGUSR2, None)
        except subprocess.CalledProcessError as e:
            if e.returncode != -signal.SIGTERM:
                return runs.record_failure(run_dir, f"{type(e).__name__}: {e}")
            # slurmctld accepted the requeue and stops the job at once: its SIGTERM can reach
            # `scontrol requeue`, a process of the job, before it exits. Exit as submitit does.
            sys.exit(-1)
        except Exception as e:
            return runs.record_failure(run_dir, f"{type(e).__name__}: {e}")
        return summary

    def checkpoint(self, record: dict, run_path: str, cores: list[int] | None):
        run_dir = RunDir(run_path)
        count = runs.requeue_count(run_dir)
        if count >= self.max_requeues:  # raised into the step loop: run_job records the run as failed
            raise RuntimeError(
                f"stopped by the scheduler (preempted or out of time) {count + 1} times; launch.slurm.max_requeues is {self.max_requeues}"
            )
        # Several processes: saved by every one already (or, before training, not at all).
        step = self.saved if self.processes > 1 else self.trainer.save_for_requeue() if self.trainer is not None else None
        runs.record_requeue(run_dir, step)
        return submitit.helpers.DelayedSubmission(
            TrainJob(self.max_requeues, self.gpus, self.processes, self.tasks_per_node), record, run_path, cores
        )


def setup_job(cores: list[int] | None, gpus: int = 0, visible: tuple[str, ...] | None = None, jobs_per_gpu: int = 1) -> None:
    """Process settings of a training job; they must be made before JAX is imported. cores: the
    CPUs it may use (None: all it has). A GPU job (gpus > 0) sees the GPUs `visible` (local jobs;
    None: those it was given, by SLURM) and, when jobs_per_gpu jobs share each GPU, takes its share
    of the GPU's memory (unless XLA_PYTHON_CLIENT_MEM_FRACTION is set), and GPU_XLA_FLAGS. Only a
    CPU job (no GPUs, no TPU VM) gets the CPU settings: malloc that keeps freed memory,
    JOB_XLA_FLAGS. A flag XLA_FLAGS already sets is left as the user set it."""
    if cores is not None:
        # XLA sizes its thread pools from the CPUs this process may use.
        os.sched_setaffinity(0, cores)
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible)  # submitit's local executor takes only indices
    if gpus and jobs_per_gpu > 1:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{SHARED_GPU_MEMORY / jobs_per_gpu:.3f}")
    if gpus:
        add_xla_flags(GPU_XLA_FLAGS)
        return
    if tpu_device_files():
        return
    keep_freed_memory()
    add_xla_flags(JOB_XLA_FLAGS)


def add_xla_flags(own: tuple[str, ...]) -> None:
    """Appends these flags to XLA_FLAGS, but those it already sets (the user's value wins)."""
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = " ".join([flags, *(f for f in own if f.split("=")[0] not in flags)]).strip()


def keep_freed_memory() -> None:
    """Stops glibc from handing freed memory back to the OS after every step. XLA on CPU allocates
    and frees its step buffers each step, from its worker thread's arena; with glibc's defaults
    every step touches fresh pages (~1.7M page faults, ~20% sys time). One arena that keeps its
    memory, measured here on one core: (2, 64) 15.7k -> 22.6k tokens/s, (3, 96) 6.4k -> 10.9k.
    Blocks above 32 MB (glibc's largest mmap threshold) were still mapped and unmapped each step;
    without mmap and trimming, on two cores (interleaved runs): (4, 256) 120k -> 48k page faults
    a step while the heap still grows, step time -14%; (8, 512) 471k -> 0.3k, step time -20%."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -4, -8
    mallopt(M_ARENA_MAX, 1)
    mallopt(M_TRIM_THRESHOLD, -1)  # never
    mallopt(M_TOP_PAD, 1 << 28)
    mallopt(M_MMAP_MAX, 0)  # large blocks come from the heap too, and stay there
