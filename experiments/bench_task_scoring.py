"""Task scoring's cost (training.task_scoring.TaskScorer.score) on sweeps/abilities.yaml's tasks,
shots and strategies, for one of its model widths: seconds per scoring with rows padded to the
full context (--widths 1) against rows grouped by length (the default, task_scoring.WIDTHS), and
that scoring in training tokens (seconds over one training step's seconds, times its tokens).

Usage (from the repository root):
    .venv/bin/python experiments/bench_task_scoring.py --width 96 --repeats 3
"""

import argparse
import statistics
import time

import jax
from flax import nnx

from scalinglab.data.corpus import load_corpus
from scalinglab.model.transformer import build_model
from scalinglab.sweep import planner
from scalinglab.sweep.read import load
from scalinglab.training import sharding, task_scoring


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default="sweeps/abilities.yaml")
    p.add_argument("--width", type=int, default=96, help="d_model of the sweep's shape to score")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    run = next(r for r in planner.plan(load(args.sweep)) if r.model.d_model == args.width)
    corpus = load_corpus(run.data)
    graphdef, params = nnx.split(build_model(run.model, run.seed))
    mesh = sharding.make_mesh(1, jax.devices())
    for widths in (1, task_scoring.WIDTHS):
        task_scoring.WIDTHS = widths
        scorer = task_scoring.TaskScorer(run, corpus, graphdef, mesh)
        t0 = time.perf_counter()
        scorer.score(params, 0, 0)  # compiles
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scorer.score(params, 0, 0)
            times.append(time.perf_counter() - t0)
        print(f"widths {widths}: first scoring {first:.1f} s, then median {statistics.median(times):.1f} s "
              f"({', '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
