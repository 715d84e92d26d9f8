"""One run: build the model, train with AdamW + warmup/cosine, evaluate, write metrics and summary."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import data, results
from .model import TransformerLM, cross_entropy
from .spec import RunSpec

EVAL_CHUNK = 32  # validation windows per forward pass: bounds memory for large val_tokens


def optimizer(run: RunSpec) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=run.lr,
        warmup_steps=run.warmup_steps,
        decay_steps=run.steps,
        end_value=run.lr * run.min_lr_ratio,
    )
    # Weight decay on matrices only, not on LayerNorm scales and biases.
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    return optax.chain(
        optax.clip_by_global_norm(run.grad_clip),
        optax.adamw(schedule, b1=run.b1, b2=run.b2, weight_decay=run.weight_decay, mask=decay_mask),
    )


def build(run: RunSpec) -> TransformerLM:
    return TransformerLM(
        run.n_layers, run.d_model, run.n_heads, run.d_ff, run.seq_len, run.vocab_size, rngs=nnx.Rngs(run.seed)
    )


def train(run: RunSpec, run_path: Path, log=print) -> dict:
    """Trains `run`, appending an evaluation to metrics.jsonl at each of run.eval_steps, and writes
    summary.json. A NaN/inf training loss stops the run with status 'diverged'."""
    t_start = time.perf_counter()
    run_path = Path(run_path)
    (run_path / "metrics.jsonl").unlink(missing_ok=True)  # no resume yet: a retry starts afresh
    corpus = data.split(data.corpus_bytes(run.data_source, run.data_path), run.val_fraction)
    windows = data.val_windows(corpus.val, run.seq_len, run.val_tokens)
    n_chunks = max(1, len(windows) // EVAL_CHUNK)
    windows = jnp.asarray(windows[: n_chunks * (len(windows) // n_chunks)].reshape(n_chunks, -1, run.seq_len + 1))

    graphdef, params = nnx.split(build(run))
    tx = optimizer(run)
    opt_state = tx.init(params)

    def loss_fn(params, batch_BL):
        logits = nnx.merge(graphdef, params)(batch_BL[:, :-1])
        return cross_entropy(logits, batch_BL[:, 1:]).mean()

    @jax.jit
    def train_step(params, opt_state, batch_BL):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch_BL)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def val_loss(params):
        return jax.lax.map(lambda chunk: loss_fn(params, chunk), windows).mean()

    tokens_per_step = run.batch_size * run.seq_len
    evals = set(run.eval_steps)
    train_losses: list[float] = []
    rates: list[float] = []
    status, compile_s = "done", None
    t_interval, steps_in_interval = time.perf_counter(), 0
    for step in range(1, run.steps + 1):
        batch = jnp.asarray(data.batch(corpus.train, run.seq_len, run.batch_size, run.seed, step))
        params, opt_state, loss = train_step(params, opt_state, batch)
        if compile_s is None:  # the first step compiles: keep it out of the throughput figures
            loss.block_until_ready()
            compile_s = time.perf_counter() - t_start
            t_interval = time.perf_counter()
        else:
            steps_in_interval += 1
        train_losses.append(loss)  # stays on device: no sync between eval points
        if step not in evals:
            continue
        interval_losses = np.asarray(jax.device_get(train_losses), dtype=np.float64)
        train_losses = []
        dt = time.perf_counter() - t_interval
        if steps_in_interval:
            rates.append(steps_in_interval * tokens_per_step / dt)
        if not np.all(np.isfinite(interval_losses)):
            status = "diverged"
            log(f"step {step}: training loss is {interval_losses[~np.isfinite(interval_losses)][0]}; stopping")
            break
        L = float(val_loss(params))
        record = {
            "step": step,
            "tokens": step * tokens_per_step,
            "L": L,
            "bpb": L / math.log(2),  # a token is a byte
            "train_loss": float(interval_losses.mean()),
            "tokens_per_s": rates[-1] if rates else None,
            "elapsed_s": time.perf_counter() - t_start,
        }
        results.append_metrics(run_path, record)
        log(f"step {step}/{run.steps}  L {L:.4f}  train {record['train_loss']:.4f}  tokens/s {record['tokens_per_s'] or 0:,.0f}")
        t_interval, steps_in_interval = time.perf_counter(), 0

    last = (results.read_metrics(run_path) or [{}])[-1]
    summary = {
        "status": status,
        "L": last.get("L") if status == "done" else None,
        "bpb": last.get("bpb") if status == "done" else None,
        "train_loss": last.get("train_loss"),
        "tokens_per_s": float(np.median(rates)) if rates else None,
        "compile_s": compile_s,
        "wall_s": time.perf_counter() - t_start,
        "val_tokens_scored": int(windows.shape[0] * windows.shape[1] * run.seq_len),
        "device": jax.devices()[0].platform,
        "pid": os.getpid(),
        "cpu_cores": sorted(os.sched_getaffinity(0)),
    }
    results.write_json(run_path / "summary.json", summary)
    return summary
