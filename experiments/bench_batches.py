"""The host's share of a training step at GPT-2-small's batch shape (32 x 1024, byte vocabulary on
the stdlib corpus): the milliseconds to build one batch inline (training.feed.device_batch: the
numpy windows and examples, then the device_put of its three arrays), and the main thread's wait
per step when a thread builds the batches ahead (training.feed.Prefetcher) while a fake step
sleeps --step-ms. Medians over --steps batches (the first, cold, left out).

Measured on the development machine (2 cores of an Intel Xeon, the CPU as the device, the corpus's
pages in memory), 47 batches each, median (max):

    objective   numpy only       numpy + device_put (inline)   prefetched: the main thread's wait
    causal      0.08 ms (0.20)   0.19 ms (4.40)                0.06 ms (0.07)
    masked      0.76 ms (8.89)   0.95 ms (6.11)                0.06 ms (0.08)

Built inline, the batch was already small against a GPT-2-small step (tens of ms on a GPU); built
ahead, what is left on the main thread is the queue's hand-over, and the slow builds (a garbage
collection, a cold page of the corpus) no longer reach it.

Usage (from the repository root):
    .venv/bin/python experiments/bench_batches.py --steps 40 --step-ms 50
    .venv/bin/python experiments/bench_batches.py --objective masked
"""

import argparse
import statistics
import time
from functools import partial

import jax
from jax.sharding import NamedSharding

from scalinglab.data.batches import batch
from scalinglab.data.corpus import load_corpus
from scalinglab.sweep import planner, read
from scalinglab.training import feed, sharding


def gpt2_small(objective: str):
    """A planned run at GPT-2-small's shape and batch (the model is never built)."""
    doc = {
        "name": "bench",
        "data": {"source": "stdlib", "tokenizer": "byte"},
        "model": {"seq_len": 1024},
        "grid": {"shapes": [{"n_layers": 12, "d_model": 768, "n_heads": 12}], "D": [1000 * 32 * 1024]},
        "train": {"batch_size": 32, "objective": objective},
    }
    return planner.plan(read.parse(doc))[0]


def ms(times: list[float]) -> str:
    return f"{1e3 * statistics.median(times):.2f} ms (median of {len(times)}; max {1e3 * max(times):.2f})"


def timed(fn, n: int) -> list[float]:
    """Seconds of fn(step) for steps 1..n, the first (cold) left out."""
    out = []
    for step in range(1, n + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(step))
        out.append(time.perf_counter() - t0)
    return out[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--step-ms", type=float, default=50.0, help="the fake step's sleep")
    p.add_argument("--objective", default="causal", choices=["causal", "masked"])
    args = p.parse_args()
    run = gpt2_small(args.objective)
    train = load_corpus(run.data).train
    by_row = NamedSharding(sharding.make_mesh(1, jax.devices()), sharding.ROWS)
    seq_len, rows = run.model.seq_len, run.batch_size

    def host(step: int) -> tuple:
        windows = batch(train, seq_len, rows, run.seed, step)
        return run.model.objective.examples(windows, run.data.vocab_size, run.seed, step)

    build = partial(feed.device_batch, run, train, by_row)
    print(f"{rows} x {seq_len}, {args.objective}, {len(train):,} training tokens, {jax.devices()[0].device_kind}")
    print(f"inline, numpy only:         {ms(timed(host, args.steps))}")
    print(f"inline, numpy + device_put: {ms(timed(build, args.steps))}")
    waits = []
    with feed.Prefetcher(build, range(1, args.steps + 1)) as batches:
        for step in range(1, args.steps + 1):
            t0 = time.perf_counter()
            batches.take(step)
            waits.append(time.perf_counter() - t0)
            time.sleep(args.step_ms / 1e3)  # the step: the main thread waits on the device
    print(f"prefetched, main thread's wait per step ({args.step_ms:g} ms steps): {ms(waits[1:])}")


if __name__ == "__main__":
    main()
