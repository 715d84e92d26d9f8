"""The GPU check of an accelerator machine (issue 18): at most 8 minutes, prints

1. loss agreement of a tiny run trained on the GPU and on the CPU, in fp32 and in bf16;
2. data parallel over all GPUs against one GPU (when there are several);
3. tokens/s, MFU (over computed FLOPs and PaLM's convention, against the peak of the one GPU the
   step runs on; the goal is 45% or more on an H100 or H200), peak memory beside plan's estimate
   of it (sweep/memory.py), and compile count of a GPT-2-small-like model (12 layers, d_model
   768, seq 1024, vocab 50,304, bf16, cuDNN attention) trained by the same step a sweep's jobs run
   (build_model, build_optimizer, make_train_step).

It needs JAX with its CUDA plugin, Flax, Optax, orbax and pydantic (the sweep's schema, which
plans the runs), and nothing else (numpy, PyYAML and the rest come with them); on any GPU machine:
    pip install 'jax[cuda12]' flax optax orbax-checkpoint pydantic
    PYTHONPATH=src python experiments/gpu_check.py
Here, on the CPU, the same script with small shapes checks itself: `--smoke`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = """
import json, sys
from scalinglab.sweep.runspec import RunSpec
from scalinglab.training.loop import train
print(json.dumps(train(RunSpec.from_record(json.loads(sys.argv[1])), sys.argv[2], log=lambda _: None)))
"""


def plan(doc: dict):
    from scalinglab.sweep import planner, read  # noqa: PLC0415

    return planner.plan(read.parse(doc))[0]


def tiny(precision: str, batch_size: int = 8):
    return plan(
        {
            "name": "gpu-check",
            "data": {"val_tokens": 8192},
            "model": {"seq_len": 64},
            "grid": {"shapes": [{"n_layers": 2, "d_model": 64, "n_heads": 2}], "D": [batch_size * 64 * 100]},
            "train": {"batch_size": batch_size, "lr": 3e-3, "precision": precision, "n_evals": 2, "keep_weights": False},
        }
    )


def train_elsewhere(run, env: dict) -> dict:
    """The run trained by a fresh process with these environment changes."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(run.record()), tempfile.mkdtemp()],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement() -> None:
    from scalinglab.training.loop import train  # noqa: PLC0415

    for precision in ("fp32", "bf16"):
        run = tiny(precision)
        here = train(run, tempfile.mkdtemp(), log=lambda _: None)
        cpu = train_elsewhere(run, {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""})
        print(
            f"1. tiny run, {precision}: L {here['platform']} {here['L']:.5f} ({here['attention']} attention) · "
            f"cpu {cpu['L']:.5f} ({cpu['attention']}) · gap {here['L'] / cpu['L'] - 1:+.3%}",
            flush=True,
        )


def data_parallel() -> None:
    import jax  # noqa: PLC0415

    from scalinglab.training.loop import train  # noqa: PLC0415

    n = jax.local_device_count()
    if n < 2 or jax.default_backend() != "gpu":
        print(f"2. data parallel: {n} {jax.default_backend()} device(s), nothing to compare", flush=True)
        return
    run = tiny("bf16", batch_size=8 * n)
    every = train(run, tempfile.mkdtemp(), log=lambda _: None)
    one = train_elsewhere(run, {"CUDA_VISIBLE_DEVICES": "0"})
    print(
        f"2. data parallel: L on {every['n_devices']} GPUs {every['L']:.5f}, on 1 {one['L']:.5f}, "
        f"gap {every['L'] / one['L'] - 1:+.4%}; tokens/s {every['tokens_per_s']:,.0f} vs {one['tokens_per_s']:,.0f}",
        flush=True,
    )


def gpt2_small(args) -> None:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    from scalinglab.model.transformer import build_model  # noqa: PLC0415
    from scalinglab.sweep import memory  # noqa: PLC0415
    from scalinglab.training import throughput  # noqa: PLC0415
    from scalinglab.training.optimizer import build_optimizer  # noqa: PLC0415
    from scalinglab.training.steps import make_loss_fn, make_train_step  # noqa: PLC0415

    L, d, layers, B, vocab = args.seq_len, args.d_model, args.n_layers, args.batch_size, args.vocab
    run = plan(
        {
            "name": "gpt2-small",
            "data": {"tokenizer": "bpe", "vocab_size": vocab},
            "model": {"seq_len": L},
            "grid": {"shapes": [{"n_layers": layers, "d_model": d, "n_heads": d // 64}], "D": [B * L * 20]},
            "train": {"batch_size": B, "precision": "bf16", "microbatch_size": args.microbatch, "remat": args.remat, "keep_weights": False},
        }
    )
    model = build_model(run.model, run.seed, precision=run.precision, remat=run.remat)
    kind = model.blocks.kind
    graphdef, params = nnx.split(model)
    tx = build_optimizer(run.optim, params, model.r)
    step = make_train_step(make_loss_fn(run.precision, graphdef), tx, B // (run.microbatch_size or B))
    state = jax.device_put((params, tx.init(params)))
    rng = np.random.default_rng(0)
    tokens = [jnp.asarray(rng.integers(0, vocab, (B, L + 1), dtype=np.int32)) for _ in range(2)]
    weights = jnp.ones((B, L), jnp.float32)
    t0 = time.perf_counter()
    state, loss = step(state, tokens[0][:, :-1], tokens[0][:, 1:], weights)
    loss.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        state, loss = step(state, tokens[i % 2][:, :-1], tokens[i % 2][:, 1:], weights)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    rate = B * L / float(np.median(times))
    figures = throughput.mfu_figures(rate, run, throughput.array_peak(loss, run.precision), kind)  # the one GPU it ran on
    stats = jax.local_devices()[0].memory_stats() or {}
    peak_gb = stats.get("peak_bytes_in_use", 0) / 2**30
    planned_gb = memory.estimate(run, jax.default_backend(), 1).step / 2**30  # what plan predicts for the step
    print(
        f"3. {layers}x{d} seq {L} vocab {vocab} batch {B} bf16, {kind} attention, N {run.N:,} on "
        f"{jax.local_devices()[0].device_kind}: median step {np.median(times) * 1e3:.1f} ms, "
        f"{rate:,.0f} tokens/s, MFU {figures['mfu'] or 0:.1%} (PaLM {figures['mfu_palm'] or 0:.1%}), "
        f"peak memory {peak_gb:.1f} GiB (plan's estimate {planned_gb:.1f}), compile {compile_s:.1f} s, "
        f"compiled {step._cache_size()} time(s), "
        f"final loss {float(loss):.3f}",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="small shapes: check this script on a CPU")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--microbatch", type=int, default=None)
    p.add_argument("--remat", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    args.n_layers, args.d_model, args.seq_len, args.vocab = (2, 128, 128, 512) if args.smoke else (12, 768, 1024, 50_304)
    if args.smoke:
        args.batch_size, args.steps = 4, 3
    t0 = time.perf_counter()
    agreement()
    data_parallel()
    gpt2_small(args)
    print(f"gpu_check: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
