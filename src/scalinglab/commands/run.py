"""`scalinglab run`: train every run of a sweep that is not done yet, then fit and plot."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from ..data.batches import batch, val_windows
from ..data.corpus import load_corpus
from ..errors import FitError
from ..launch.dispatch import launch
from ..store.files import write_json
from ..store.layout import SweepDir
from ..sweep import planner
from ..sweep.read import load
from ..sweep.runspec import RunSpec
from ..sweep.spec import with_launch
from .fit import report


def check_data(run: RunSpec) -> None:
    """Reads the corpus once before anything is written, so bad data fails fast with exit 2; this
    also trains and caches a BPE tokenizer once, before the jobs start. Every run shares the corpus."""
    corpus = load_corpus(run.data)
    val_windows(corpus.val, run.model.seq_len, run.eval.val_tokens)
    batch(corpus.train, run.model.seq_len, 1, 0, 0)


def main(args, console: Console) -> int:
    spec = with_launch(load(args.sweep), executor=args.executor, max_parallel=args.max_parallel,
                       threads_per_job=args.threads_per_job)
    runs = planner.plan(spec)
    check_data(runs[0])
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
