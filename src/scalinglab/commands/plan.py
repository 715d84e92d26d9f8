"""`scalinglab plan`: each run of a sweep, what it costs, its memory per device, and the estimated
wall time. A sweep with a run that cannot fit its device is refused (exit 2), here and by `run`."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ..launch.job import SHARED_GPU_MEMORY
from ..launch.resources import GIB, device_memory_bytes, max_parallel, tpu_device_files
from ..model.kernels import cpu_kernel_missing
from ..store.runs import Role
from ..sweep import memory, planner
from ..sweep.counts import point_shape, shapes
from ..sweep.read import load
from ..sweep.runspec import RunSpec
from ..sweep.spec import LaunchSpec, SweepSpec, with_launch
from ..sweep.types import Executor


def role(r: RunSpec) -> str:
    if r.role == Role.TRUNK:
        return Role.TRUNK
    return f"branch@{r.start_step}" if r.trunk_id else Role.RUN


def plan_table(runs: list[RunSpec], memories: list[memory.Memory]) -> pd.DataFrame:
    """One row a run; memory: GiB per device at its peak, memory_<part>: each part's (sweep/memory.py)."""
    return pd.DataFrame([
        {"run_id": r.run_id, "n_layers": r.model.n_layers, "d_model": r.model.d_model, "n_heads": r.model.n_heads,
         "N": r.N, "N_total": r.N_total, "D": r.D, "tokens_per_param": r.D / r.N, "steps": r.steps, "seed": r.seed,
         "lr": r.optim.lr, "batch_size": r.batch_size, "role": role(r), "flops_per_token": r.flops_per_token, "C": r.C, "job_flops": r.job_flops, **memory.as_gib(m)}
        for r, m in zip(runs, memories)
    ])


def print_plan(sweep: SweepSpec, runs: list[RunSpec], memories: list[memory.Memory], device: str, console: Console) -> None:
    """device: check_memory's line naming the devices the runs' memory was held to."""
    table = Table(title=f"sweep {sweep.name}: {len(runs)} runs")
    tuned = [k for k in ("lr", "batch_size") if getattr(sweep.grid, k) is not None]  # columns only where they vary
    for col in ("run_id", "n_layers", "d_model", "n_heads", "N", "N_total", "D", "D/N", "steps", *tuned, "seed", "role", "C", "memory"):
        table.add_column(col, justify="right")
    for r, mem in zip(runs, memories):
        m = r.model
        hyper = {"lr": f"{r.optim.lr:.3g}", "batch_size": str(r.batch_size)}
        table.add_row(
            r.run_id, str(m.n_layers), str(m.d_model), str(m.n_heads), f"{r.N:,}", f"{r.N_total:,}",
            f"{r.D:,}", f"{r.D / r.N:.1f}", f"{r.steps:,}", *(hyper[k] for k in tuned), str(r.seed), role(r),
            f"{r.C:.3g}", f"{mem.total / GIB:.3g}",
        )  # fmt: skip
    console.print(table)
    parallel = max_parallel(sweep.launch, len(runs))
    est = planner.estimate_seconds(runs, parallel)
    spent = sum(r.job_flops for r in runs)
    independent = sum(r.C for r in planner.grid_points(runs))
    shared = f" (independent runs: {independent:.3g}, {1 - spent / independent:.0%} saved by cooldown branches)" if spent < independent else ""
    console.print(
        f"runs {len(planner.grid_points(runs))} · total C {spent:.3g} FLOPs{shared} · "
        f"estimated wall time here {est / 60:.1f} min ({parallel} job(s) at once, {sweep.launch.executor})"
    )
    console.print("C = FLOPs per token x D; FLOPs per token = 6(N + d_model*vocab) + 12*n_layers*seq_len*d_model")
    console.print(f"memory: GiB per device at the step's or evaluation's peak, {device}")


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
        raise SpecError(f"{_grid_entry(sweep, run)}: the model of N {run.N:.3g} (n_layers {run.model.n_layers}, d_model "
                        f"{run.model.d_model}) needs {_gib(mem.total)} GiB per device{more}, more than the "
                        f"{_gib(usable)} GiB usable{share} ({device_source(sweep.launch, len(runs))}); "
                        f"{_what_to_do(sweep, run, mem, usable, len(runs))}")
    return memories, where + f"{usable / GIB:.3g} GiB usable ({device_source(sweep.launch, len(runs))})"


def _gib(n: float) -> str:
    """Bytes as GiB, three significant digits, or whole GiB with thousands separators."""
    return f"{n / GIB:.3g}" if n < 100 * GIB else f"{n / GIB:,.0f}"


def _grid_entry(sweep: SweepSpec, run: RunSpec) -> str:
    """The grid entry that asked for the run's shape: grid.N[i], grid.shapes[i] or grid.points[i]."""
    m, g = run.model, sweep.grid
    if g.points is not None:
        return f"grid.points[{next(i for i, p in enumerate(g.points) if point_shape(p, sweep.model).N == run.N)}]"
    index = next(i for i, s in enumerate(shapes(sweep)) if (s.n_layers, s.d_model, s.n_heads, s.d_ff) == (m.n_layers, m.d_model, m.n_heads, m.d_ff))
    return f"{'grid.shapes' if g.shapes is not None else 'grid.N'}[{index}]"


def _what_to_do(sweep: SweepSpec, run: RunSpec, mem: memory.Memory, usable: float, n_runs: int) -> str:
    """The settings that lower a run's memory per device, those that apply here."""
    t, launch = sweep.train, sweep.launch
    fixed = mem.params + mem.optimizer + mem.gradients
    if fixed > usable and t.fsdp == launch.devices:
        over = f" (sharded over all {launch.devices} devices of a run)" if launch.devices > 1 else ""
        return (f"its weights, AdamW state and gradients alone take {_gib(fixed)} GiB per device{over}: plan smaller "
                "models, or give a run more devices (launch.gpus_per_job, launch.slurm.nodes) and shard them "
                "over those (train.fsdp)")
    if fixed > usable:
        return (f"its weights, AdamW state and gradients alone take {_gib(fixed)} GiB per device: shard them over "
                f"more of the run's {launch.devices} device(s) (train.fsdp {t.fsdp}), or plan smaller models")
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


def main(args, console: Console) -> int:
    sweep = with_launch(load(args.sweep), executor=args.executor)
    runs = planner.plan(sweep)
    memories, device = check_memory(sweep, runs)
    print_plan(sweep, runs, memories, device, console)
    table = plan_table(runs, memories)
    if args.csv:
        table.to_csv(args.csv, index=False)
        console.print(f"wrote {args.csv}")
    if args.json:
        Path(args.json).write_text(table.to_json(orient="records", indent=1))
        console.print(f"wrote {args.json}")
    return 0
