"""`scalinglab run`: train every run of a sweep that is not done yet, then fit and plot."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape

from ..analysis.pipeline import check_outputs, fit_and_draw
from ..analysis.say import warner
from ..errors import FitError
from ..launch.dispatch import launch
from ..launch.preflight import check_data, check_gpus, check_memory
from ..launch.resources import tpu_device_files
from ..store.files import write_json
from ..store.layout import SweepDir
from ..store.targets import folder
from ..sweep import planner
from ..sweep.read import load, with_launch


def main(args, console: Console) -> int:
    results = folder(args.results, f"--results {args.results}")
    spec = with_launch(load(args.sweep), executor=args.executor, max_parallel=args.max_parallel, threads_per_job=args.threads_per_job)
    sweep = SweepDir(folder(results / spec.name, f"--results {args.results}"))
    check_gpus(spec.launch)
    runs = planner.plan(spec, tpu=bool(tpu_device_files()))
    if (warning := planner.precision_warning(spec)) is not None:
        warner(console)(warning)
    check_memory(spec, runs)  # every run fits its device, before anything is written
    check_data(spec, runs[0], console)
    console.print(escape(f"sweep {spec.name}: {len(runs)} runs -> {sweep.path}/ ({spec.launch.executor} executor)"))
    if sweep.path.is_dir():
        check_outputs(sweep)  # the fit at the end can write its files: found now, not after training
    write_json(sweep.sweep_json, spec.model_dump(mode="json"))
    t0 = time.perf_counter()
    outcome = launch(runs, spec.launch, sweep, console)
    cancelled = f", {outcome.cancelled} cancelled" if outcome.cancelled else ""
    console.print(
        f"{outcome.done} trained, {outcome.skipped} already done, {outcome.failed} failed{cancelled} in {time.perf_counter() - t0:.0f} s"
    )
    try:
        report = fit_and_draw(sweep, spec.fit, warner(console))
    except FitError as e:
        report = [escape(f"no fit yet: {e}")]
    for line in report:
        console.print(line)
    return 1 if outcome.failed else 0
