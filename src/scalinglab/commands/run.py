"""`scalinglab run`: train every run of a sweep that is not done yet, then fit and plot."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console

from ..data.batches import batch, val_windows
from ..errors import FitError, SpecError
from ..launch.dispatch import launch
from ..launch.resources import available_gpus, gpu_slots
from ..store.files import write_json
from ..store.layout import SweepDir
from ..sweep import planner
from ..sweep.read import load
from ..sweep.runspec import RunSpec
from ..sweep.spec import LaunchSpec, with_launch
from ..sweep.types import Executor
from .fit import report
from .plan import check_memory
from .prepare import prepare_corpus


def check_data(run: RunSpec, console: Console) -> None:
    """Prepares the corpus (commands.prepare) before anything is written, so bad data fails fast
    with exit 2 and the jobs, which share it, only open its token files."""
    corpus, _ = prepare_corpus(run.data, console)
    val_windows(corpus.val, run.model.seq_len, run.eval.val_tokens)
    batch(corpus.train, run.model.seq_len, 1, 0, 0)


def check_gpus(launch_spec: LaunchSpec) -> None:
    """A local sweep given GPUs: refused before anything is written where its jobs would find none
    (they would fail one by one), too few for one job, or too few for max_parallel jobs at once."""
    g = launch_spec.gpus_per_job
    if launch_spec.executor != Executor.LOCAL or not g:
        return
    gpus, visible = available_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES")
    if not gpus:
        where = "nvidia-smi lists none" if visible is None else f"CUDA_VISIBLE_DEVICES is {visible!r}"
        raise SpecError(f"launch.gpus_per_job: {g} but no GPU is visible here ({where}); "
                        "set launch.gpus_per_job 0 to train on the CPU, or run on a machine with GPUs")
    if len(gpus) < g:
        raise SpecError(f"launch.gpus_per_job: {g} but only {len(gpus)} GPU(s) are visible here "
                        f"({','.join(gpus)}); give at most {len(gpus)}")
    slots, k = gpu_slots(launch_spec, len(gpus)), launch_spec.jobs_per_gpu
    if launch_spec.max_parallel is not None and launch_spec.max_parallel > slots:
        share = ", or share each GPU with launch.jobs_per_gpu" if g == 1 else ""
        raise SpecError(f"launch.max_parallel: {launch_spec.max_parallel} jobs at once, but the {len(gpus)} GPU(s) "
                        f"visible here hold {slots} (launch.gpus_per_job {g}, launch.jobs_per_gpu {k}); "
                        f"give at most {slots}{share}")


def main(args, console: Console) -> int:
    spec = with_launch(load(args.sweep), executor=args.executor, max_parallel=args.max_parallel,
                       threads_per_job=args.threads_per_job)
    check_gpus(spec.launch)
    runs = planner.plan(spec)
    check_memory(spec, runs)  # every run fits its device, before anything is written
    check_data(runs[0], console)
    sweep = SweepDir(Path(args.results) / spec.name)
    console.print(f"sweep {spec.name}: {len(runs)} runs -> {sweep.path}/ ({spec.launch.executor} executor)")
    write_json(sweep.sweep_json, spec.model_dump(mode="json"))
    t0 = time.perf_counter()
    outcome = launch(runs, spec.launch, sweep, console)
    cancelled = f", {outcome.cancelled} cancelled" if outcome.cancelled else ""
    console.print(f"{outcome.done} trained, {outcome.skipped} already done, {outcome.failed} failed{cancelled} "
                  f"in {time.perf_counter() - t0:.0f} s")
    try:
        report(sweep, spec.fit, console)
    except FitError as e:
        console.print(f"no fit yet: {e}")
    return 1 if outcome.failed else 0
