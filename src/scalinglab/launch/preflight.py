"""Before anything is written: whether a sweep's runs can train where they are sent. Each run's
memory per device against its device's (check_memory), a local sweep's GPUs (check_gpus), and the
corpus, tokenized into the cache with progress bars (prepare_corpus), so that bad data and a U
(data.U, grid.U) beyond its training split fail with exit 2 and the jobs, which share it, only open
its token files (check_data, check_caps). No JAX."""

from __future__ import annotations

import contextlib
import os
from functools import partial

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..data.batches import batch, val_windows
from ..data.corpus import Corpus, Meter, TokenizerKind, check_cap, corpus_dir, open_corpus, prepare
from ..errors import SpecError
from ..model.kernels import cpu_kernel_missing
from ..sweep import memory
from ..sweep.counts import point_shape, shapes
from ..sweep.memory import GIB
from ..sweep.rules import caps
from ..sweep.runspec import RunSpec
from ..sweep.spec import LaunchSpec, SweepSpec
from ..sweep.types import Executor
from .job import SHARED_GPU_MEMORY
from .resources import available_gpus, device_memory_bytes, gpu_slots, max_parallel, tpu_device_files

# ---- memory -----------------------------------------------------------------------------------

# XLA's GPU allocator takes this share of a GPU unless XLA_PYTHON_CLIENT_MEM_FRACTION says otherwise;
# jobs sharing a GPU (launch.jobs_per_gpu) each set it to SHARED_GPU_MEMORY / jobs_per_gpu (launch.job).
JAX_GPU_SHARE = 0.75


def job_devices(launch: LaunchSpec) -> tuple[str, int, bool]:
    """What a job of the sweep trains on: the platform, its devices (on every node), and whether the
    CPU attention kernel builds here (model.cpu_attention: a C++ compiler and Eigen; not switched
    off). A TPU VM's job counts as one device: every chip holding the whole batch is the worst case."""
    if launch.gpus_per_job:
        return "gpu", launch.devices, False
    if tpu_device_files():
        return "tpu", 1, False
    return "cpu", launch.devices, launch.devices == 1 and cpu_kernel_missing() is None


def usable_share(launch: LaunchSpec) -> float:
    """The share of device_memory_bytes a job's JAX can allocate: all of a CPU's; of its share of a
    GPU, what XLA's allocator takes (75% of the GPU by default, the jobs' own setting when shared)."""
    if not launch.gpus_per_job:
        return 1.0
    fraction = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
    if fraction is not None:
        return float(fraction) * launch.jobs_per_gpu
    return SHARED_GPU_MEMORY if launch.jobs_per_gpu > 1 else JAX_GPU_SHARE


def device_source(launch: LaunchSpec, n_runs: int) -> str:
    """Where device_memory_bytes took the device's memory from, for messages."""
    if launch.device_memory_gb is not None:
        return f"launch.device_memory_gb {launch.device_memory_gb:g}"
    if launch.gpus_per_job:
        shared = f" over launch.jobs_per_gpu {launch.jobs_per_gpu}" if launch.jobs_per_gpu > 1 else ""
        return f"the smallest GPU visible here{shared}"
    if launch.executor == Executor.SLURM:
        return f"launch.slurm.mem_gb {launch.slurm.mem_gb:g}"
    at_once = min(max_parallel(launch, n_runs), n_runs) if launch.executor == Executor.LOCAL else 1
    return "this machine's memory" + f" over {at_once} jobs at once" * (at_once > 1)


def check_memory(sweep: SweepSpec, runs: list[RunSpec]) -> tuple[list[memory.Memory], str]:
    """Each run's memory per device, and a line naming the devices they were held to; refuses the
    sweep (SpecError, exit 2) where a run's peak is more than its device can hold, naming the
    smallest such run and what to change. No check where the device's memory is unknown
    (device_memory_bytes)."""
    platform, devices, kernel = job_devices(sweep.launch)
    memories = [memory.estimate(r, platform, devices, kernel) for r in runs]
    capacity = device_memory_bytes(sweep.launch, len(runs))
    where = f"on {devices} {platform} device(s) a job; device: "
    if capacity is None:
        return memories, where + "unknown, not checked"
    usable = capacity * usable_share(sweep.launch)
    too_big = [(r, m) for r, m in zip(runs, memories) if m.total > usable]
    if too_big:
        run, mem = too_big[0]
        others = len(too_big) - 1
        more = f" (and {others} more run{'s' * (others > 1)})" if others else ""
        share = "" if capacity == usable else f" of {_gib(capacity)}"
        raise SpecError(
            f"{_grid_entry(sweep, run)}: the model of N {run.N:.3g} (n_layers {run.model.n_layers}, d_model "
            f"{run.model.d_model}) needs {_gib(mem.total)} GiB per device{more}, more than the "
            f"{_gib(usable)} GiB usable{share} ({device_source(sweep.launch, len(runs))}); "
            f"{_what_to_do(sweep, run, mem, usable, len(runs))}"
        )
    return memories, where + f"{usable / GIB:.3g} GiB usable ({device_source(sweep.launch, len(runs))})"


def _gib(n: float) -> str:
    """Bytes as GiB, three significant digits, or whole GiB with thousands separators."""
    return f"{n / GIB:.3g}" if n < 100 * GIB else f"{n / GIB:,.0f}"


def _grid_entry(sweep: SweepSpec, run: RunSpec) -> str:
    """The grid entry that asked for the run's shape: grid.N[i], grid.shapes[i] or grid.points[i]."""
    m, g = run.model, sweep.grid
    if g.points is not None:
        return f"grid.points[{next(i for i, p in enumerate(g.points) if point_shape(p, sweep.model).N == run.N)}]"
    index = next(
        i for i, s in enumerate(shapes(sweep)) if (s.n_layers, s.d_model, s.n_heads, s.d_ff) == (m.n_layers, m.d_model, m.n_heads, m.d_ff)
    )
    return f"{'grid.shapes' if g.shapes is not None else 'grid.N'}[{index}]"


def _what_to_do(sweep: SweepSpec, run: RunSpec, mem: memory.Memory, usable: float, n_runs: int) -> str:
    """The settings that lower a run's memory per device, those that apply here."""
    t, launch = sweep.train, sweep.launch
    fixed = mem.params + mem.optimizer + mem.gradients
    if fixed > usable and t.fsdp == launch.devices:
        over = f" (sharded over all {launch.devices} devices of a run)" if launch.devices > 1 else ""
        return (
            f"its weights, AdamW state and gradients alone take {_gib(fixed)} GiB per device{over}: plan smaller "
            "models, or give a run more devices (launch.gpus_per_job, launch.slurm.nodes) and shard them "
            "over those (train.fsdp)"
        )
    if fixed > usable:
        return (
            f"its weights, AdamW state and gradients alone take {_gib(fixed)} GiB per device: shard them over "
            f"more of the run's {launch.devices} device(s) (train.fsdp {t.fsdp}), or plan smaller models"
        )
    todo = []
    if mem.evaluation > mem.step:
        todo.append("lower data.val_tokens (evaluation scores up to 63 windows at once)")
    if mem.step > usable and (t.microbatch_size or t.batch_size) > max(1, launch.gpus_per_job):
        todo.append(f"lower train.microbatch_size ({t.microbatch_size})" if t.microbatch_size else "set train.microbatch_size")
    if mem.step > usable and not t.remat:
        todo.append("set train.remat")
    if launch.gpus_per_job:
        todo.append("spread the batch over more GPUs (launch.gpus_per_job)")
    elif launch.executor == Executor.LOCAL and min(max_parallel(launch, n_runs), n_runs) > 1:
        todo.append("run fewer jobs at once (launch.max_parallel)")
    last = "give the device's memory (launch.device_memory_gb) if it has more"
    return f"{', '.join(todo)}, or {last}" if todo else f"plan smaller models, or {last}"


# ---- GPUs and data ----------------------------------------------------------------------------


def check_gpus(launch_spec: LaunchSpec) -> None:
    """A local sweep given GPUs: refused before anything is written where its jobs would find none
    (they would fail one by one), too few for one job, or too few for max_parallel jobs at once."""
    g = launch_spec.gpus_per_job
    if launch_spec.executor != Executor.LOCAL or not g:
        return
    gpus, visible = available_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES")
    if not gpus:
        where = "nvidia-smi lists none" if visible is None else f"CUDA_VISIBLE_DEVICES is {visible!r}"
        raise SpecError(
            f"launch.gpus_per_job: {g} but no GPU is visible here ({where}); "
            "set launch.gpus_per_job 0 to train on the CPU, or run on a machine with GPUs"
        )
    if len(gpus) < g:
        raise SpecError(
            f"launch.gpus_per_job: {g} but only {len(gpus)} GPU(s) are visible here ({','.join(gpus)}); give at most {len(gpus)}"
        )
    slots, k = gpu_slots(launch_spec, len(gpus)), launch_spec.jobs_per_gpu
    if launch_spec.max_parallel is not None and launch_spec.max_parallel > slots:
        share = ", or share each GPU with launch.jobs_per_gpu" if g == 1 else ""
        raise SpecError(
            f"launch.max_parallel: {launch_spec.max_parallel} jobs at once, but the {len(gpus)} GPU(s) "
            f"visible here hold {slots} (launch.gpus_per_job {g}, launch.jobs_per_gpu {k}); "
            f"give at most {slots}{share}"
        )


class Bars(Meter):
    """A progress bar a phase: bytes done, MB/s and the time left."""

    def __init__(self, progress: Progress):
        self.progress = progress

    @contextlib.contextmanager
    def phase(self, description: str, total: int):
        task = self.progress.add_task(description, total=total)
        yield partial(self.progress.advance, task)
        self.progress.update(task, completed=total)


def prepare_corpus(data, console: Console) -> tuple[Corpus, bool]:
    """The corpus of a data section (sweep.runspec.DataConfig), tokenized into the cache first
    if it is not there, with progress bars on the console; and whether it was there."""
    folder = corpus_dir(data)
    if folder.exists():  # published whole (build_once): nothing to draw
        return open_corpus(folder), True
    columns = (TextColumn("{task.description:>9}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        prepare(data, Bars(progress))
    return open_corpus(folder), False


def check_data(sweep: SweepSpec, run: RunSpec, console: Console) -> None:
    """Prepares the corpus (prepare_corpus) before anything is written, and reads a held-out window
    and a batch of it: bad data, or a U beyond the training split, fails here, with exit 2."""
    corpus, _ = prepare_corpus(run.data, console)
    check_caps(sweep, len(corpus.train))
    val_windows(corpus.val, run.model.seq_len, run.eval.val_tokens)
    batch(corpus.train, run.model.seq_len, 1, 0, 0)


def training_tokens(data, console: Console) -> int | None:
    """The tokens of the corpus's training split, as `plan` shows D/U with them: from its cache
    entry, a byte-level corpus prepared first if it is not there (a copy of its bytes: seconds for
    the built-in corpus). None for a BPE corpus not yet prepared, whose tokenizer takes minutes to
    learn on a large corpus: `prepare` or `run` tokenizes it once, into the cache."""
    if data.tokenizer == TokenizerKind.BPE and not corpus_dir(data).exists():
        return None
    return len(prepare_corpus(data, console)[0].train)


def check_caps(sweep: SweepSpec, train_tokens: int) -> None:
    """Refuses (SpecError, exit 2) a data.U or grid.U entry beyond the training split's tokens."""
    for where, U in caps(sweep):
        check_cap(where, U, train_tokens)
