"""One run: build the model, train (data parallel over the local devices), evaluate, checkpoint,
resume, and write metrics and summary."""

from __future__ import annotations

import math
import os
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from . import checkpoint, data, objective, results, throughput
from .model import TransformerLM, cross_entropy
from .parametrization import param_kind, rules
from .spec import RunSpec

EVAL_CHUNK = 32  # validation windows per forward pass: bounds memory for large val_tokens


def lr_schedule(run: RunSpec):
    """Learning rate of optax's update count t (0 for step 1): linear warmup, then the schedule."""
    peak, end, W = run.lr, run.lr * run.min_lr_ratio, run.warmup_steps

    def decay_frac(step, start):
        return jnp.clip((step - start) / max(run.steps - start, 1), 0.0, 1.0)

    def lr(t):
        step = jnp.asarray(t, jnp.float32) + 1
        if run.schedule == "constant":
            after = jnp.float32(peak)
        elif run.schedule == "cosine":
            after = end + (peak - end) * 0.5 * (1 + jnp.cos(math.pi * decay_frac(step, W)))
        elif run.schedule == "linear":
            after = peak - (peak - end) * decay_frac(step, W)
        else:  # wsd: stable at peak until decay_start, then the cooldown
            frac = decay_frac(step, run.decay_start)
            shape = 1 - jnp.sqrt(frac) if run.cooldown_shape == "1-sqrt" else 1 - frac
            after = end + (peak - end) * shape
        return jnp.where(step <= W, peak * step / max(W, 1), after)

    return lr


def optimizer(run: RunSpec, params) -> optax.GradientTransformation:
    """AdamW with the parametrization's learning-rate multiplier per parameter kind; weight decay
    on matrices only, not on LayerNorm scales and biases. One AdamW over the whole tree, with the
    multipliers and the decay mask as trees: fewer and larger XLA ops than one AdamW per kind."""
    r = rules(run.parametrization, run.d_model, run.d_ff, run.n_layers, run.d_model // run.n_heads, run.base_width)
    kinds = jax.tree_util.tree_map_with_path(lambda path, _: param_kind(_keys(path)), params)
    lr_scale = jax.tree.map(lambda kind: r.lr_scale[kind], kinds)
    return optax.chain(
        optax.clip_by_global_norm(run.grad_clip),
        optax.scale_by_adam(b1=run.b1, b2=run.b2),
        optax.add_decayed_weights(run.weight_decay, mask=jax.tree.map(lambda kind: kind != "vector", kinds)),
        optax.stateless(lambda updates, _: jax.tree.map(jnp.multiply, updates, lr_scale)),
        optax.scale_by_learning_rate(lr_schedule(run)),
    )


def _keys(path) -> tuple:
    """A pytree path in an nnx.State as plain names, without the Variable's trailing 'value'."""
    keys = tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return keys[:-1] if keys[-1] == "value" else keys


def build(run: RunSpec) -> TransformerLM:
    return TransformerLM(
        run.n_layers,
        run.d_model,
        run.n_heads,
        run.d_ff,
        run.seq_len,
        run.vocab_size,
        parametrization=run.parametrization,
        base_width=run.base_width,
        causal=run.objective == "causal",
        rngs=nnx.Rngs(run.seed),
    )


def make_loss_fn(run: RunSpec, graphdef: nnx.GraphDef):
    """(params, inputs, targets, weights) -> the weighted mean cross-entropy, in run.precision."""
    compute_dtype = jnp.bfloat16 if run.precision == "bf16" else jnp.float32

    def loss_fn(params, inputs, targets, weights):
        params = jax.tree.map(lambda p: p.astype(compute_dtype), params)  # master weights stay fp32
        logits = nnx.merge(graphdef, params)(inputs)
        return (cross_entropy(logits, targets) * weights).sum() / weights.sum()

    return loss_fn


def make_train_step(run: RunSpec, graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
    """The jitted step of every run: (params, opt_state), inputs, targets, weights -> new state, loss.
    The state's buffers are donated: XLA updates them in place."""
    loss_fn = make_loss_fn(run, graphdef)

    @partial(jax.jit, donate_argnums=0)
    def train_step(train_state, inputs, targets, weights):
        params, opt_state = train_state
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets, weights)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return train_step


def enable_compile_cache(directory: Path) -> None:
    """Share compiled steps between the jobs of a sweep: same shapes, same executable."""
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _examples(run: RunSpec, windows: np.ndarray, seed: int, step: int):
    return objective.examples(windows, run.objective, run.mask_fraction, run.tokenizer_vocab, seed, step)


class _State:
    """What the step loop carries besides params and optimizer state; saved with checkpoints."""

    def __init__(self, meta: dict | None = None):
        meta = meta or {}
        self.step = meta.get("step", 0)
        self.loss_sum = meta.get("loss_sum", 0.0)  # training losses since the last evaluation
        self.loss_count = meta.get("loss_count", 0)
        self.rates = meta.get("rates", [])
        self.compile_s = meta.get("compile_s")
        self.wall_s = meta.get("wall_s", 0.0)  # spent in earlier sessions of this run

    def meta(self, wall_now: float) -> dict:
        return {
            "step": self.step,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "rates": self.rates,
            "compile_s": self.compile_s,
            "wall_s": self.wall_s + wall_now,
        }


_save_now = None  # while train() runs: saves its latest state (see save_for_requeue)


def save_for_requeue() -> int | None:
    """Saves the running training's latest state to its checkpoint; called from the job's
    preemption/timeout signal handler (launch.TrainJob.checkpoint), between two Python bytecodes
    of the step loop. Returns the step saved, or None when there was no consistent state to save:
    the requeued run then resumes from its last periodic checkpoint."""
    return _save_now() if _save_now else None


def train(run: RunSpec, run_path: Path, log=print, compile_cache: Path | None = None) -> dict:
    """Trains `run`, appending an evaluation to metrics.jsonl at each of run.eval_steps, and writes
    summary.json. Resumes from the run's latest checkpoint, or for a cooldown branch from its
    trunk's checkpoint at the branch point. A NaN/inf training loss stops the run as 'diverged'."""
    t_start = time.perf_counter()
    run_path = Path(run_path)
    if compile_cache is not None:
        enable_compile_cache(compile_cache)
    corpus = data.load_corpus(
        run.data_source, run.data_path, run.text_field, run.tokenizer, run.tokenizer_vocab, run.val_fraction
    )
    windows = data.val_windows(corpus.val, run.seq_len, run.val_tokens)
    n_chunks = max(1, len(windows) // EVAL_CHUNK)
    windows = windows[: n_chunks * (len(windows) // n_chunks)]
    val = tuple(
        jnp.asarray(a.reshape(n_chunks, -1, run.seq_len)) for a in _examples(run, windows, objective.VAL_SEED, 0)
    )

    devices = jax.local_devices()
    if run.batch_size % len(devices):
        raise ValueError(f"train.batch_size {run.batch_size} does not divide over {len(devices)} devices")
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    replicated, by_row = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))

    graphdef, params = nnx.split(build(run))
    tx = optimizer(run, params)
    train_state = jax.device_put((params, tx.init(params)), replicated)
    train_step = make_train_step(run, graphdef, tx)
    loss_fn = make_loss_fn(run, graphdef)

    @jax.jit
    def val_loss(params):
        per_chunk = jax.lax.map(lambda chunk: loss_fn(params, *chunk), val)
        return per_chunk.mean()

    train_state, st = _resume(run, run_path, train_state, log)
    resumed_from = st.step
    tokens_per_step = run.batch_size * run.seq_len
    peak = throughput.peak_flops(run.precision)
    evals = set(run.eval_steps)
    keep = set(run.branch_steps)
    status, pending = "done", []
    t_session = time.perf_counter()
    t_interval, steps_in_interval, t_ckpt, first = t_session, 0, t_session, True
    # (state, step, loss_sum, loss_count, pending, len(pending)): replaced whole after each step,
    # so a signal handler sees one consistent snapshot; `pending` is only appended to or replaced.
    snapshot, saving = None, False

    def save_snapshot() -> int | None:
        if snapshot is None or saving:  # nothing yet, or a save is under way (orbax is not re-entrant)
            return None
        state, step, loss_sum, loss_count, losses, n = snapshot
        if any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):  # donated to the step under way
            return None
        losses = np.asarray(jax.device_get(losses[:n]), dtype=np.float64)
        if not np.all(np.isfinite(losses)):
            return None
        meta = {**st.meta(time.perf_counter() - t_start), "step": step, "loss_sum": loss_sum + float(losses.sum()), "loss_count": loss_count + n}
        checkpoint.save(run_path / results.RESUME_DIR, step, state, meta)
        return step

    global _save_now
    _save_now = save_snapshot

    for step in range(st.step + 1, run.steps + 1):
        inputs, targets, weights = (
            jax.device_put(a, by_row) for a in _examples(run, data.batch(corpus.train, run.seq_len, run.batch_size, run.seed, step), run.seed, step)
        )
        train_state, loss = train_step(train_state, inputs, targets, weights)
        st.step = step
        pending.append(loss)  # stays on device: no sync between evaluations and checkpoints
        snapshot = (train_state, step, st.loss_sum, st.loss_count, pending, len(pending))
        if first:  # the first step of a session compiles: keep it out of the throughput figures
            loss.block_until_ready()
            st.compile_s = st.compile_s if st.compile_s is not None else time.perf_counter() - t_start
            t_interval, first = time.perf_counter(), False
        else:
            steps_in_interval += 1
        is_eval = step in evals
        save = step in keep or (step < run.steps and time.perf_counter() - t_ckpt >= run.checkpoint_interval_s)
        if not (is_eval or save):
            continue
        losses = np.asarray(jax.device_get(pending), dtype=np.float64)
        pending = []
        if not np.all(np.isfinite(losses)):
            status = "diverged"
            log(f"step {step}: training loss is {losses[~np.isfinite(losses)][0]}; stopping")
            break
        st.loss_sum += float(losses.sum())
        st.loss_count += len(losses)
        if is_eval:
            dt = time.perf_counter() - t_interval
            if steps_in_interval:
                st.rates.append(steps_in_interval * tokens_per_step / dt)
            L = float(val_loss(train_state[0]))
            rate = st.rates[-1] if steps_in_interval else None
            record = {
                "step": step,
                "tokens": step * tokens_per_step,
                "L": L,
                "bpb": L / math.log(2) / corpus.val_bytes_per_token,
                "train_loss": st.loss_sum / st.loss_count,
                "tokens_per_s": rate,
                "mfu": throughput.mfu(rate, run.flops_per_token, peak),
                "elapsed_s": st.wall_s + time.perf_counter() - t_start,
            }
            results.append_metrics(run_path, record)
            log(f"step {step}/{run.steps}  L {L:.4f}  train {record['train_loss']:.4f}  tokens/s {rate or 0:,.0f}")
            st.loss_sum, st.loss_count = 0.0, 0
            t_interval, steps_in_interval = time.perf_counter(), 0
        meta = st.meta(time.perf_counter() - t_start)
        saving = True
        if step in keep:
            checkpoint.save(run_path / results.BRANCH_DIR, step, train_state, meta, keep=None)
        if save and step < run.steps:
            checkpoint.save(run_path / results.RESUME_DIR, step, train_state, meta)
            t_ckpt = time.perf_counter()
        saving = False
        snapshot = (train_state, step, st.loss_sum, st.loss_count, pending, 0)

    _save_now = None
    checkpoint.remove(run_path / results.RESUME_DIR)  # finished: nothing left to resume
    last = (results.read_metrics(run_path) or [{}])[-1]
    rate = float(np.median(st.rates)) if st.rates else None
    summary = {
        "status": status,
        "L": last.get("L") if status == "done" else None,
        "bpb": last.get("bpb") if status == "done" else None,
        "train_loss": last.get("train_loss"),
        "tokens_per_s": rate,
        "mfu": throughput.mfu(rate, run.flops_per_token, peak),
        "peak_flops": peak,
        "compile_s": st.compile_s,
        "wall_s": st.wall_s + time.perf_counter() - t_start,
        "resumed_from": resumed_from,
        "val_tokens_scored": int(val[2].sum()),
        "device": devices[0].platform,
        "n_devices": len(devices),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "pid": os.getpid(),
        "cpu_cores": sorted(os.sched_getaffinity(0)),
    }
    results.write_json(run_path / "summary.json", summary)
    return summary


def _resume(run: RunSpec, run_path: Path, like, log) -> tuple[object, _State]:
    """The state to start from: this run's latest checkpoint; else, for a branch, its trunk's
    checkpoint at the branch point; else `like`, fresh. Evaluations after that step are dropped."""
    own = checkpoint.steps(run_path / results.RESUME_DIR)
    if own:
        state, meta = checkpoint.restore(run_path / results.RESUME_DIR, own[-1], like)
        results.keep_metrics(run_path, lambda m: m["step"] <= own[-1])
        log(f"resuming from step {own[-1]}")
        return state, _State(meta)
    if run.trunk_id is None:
        results.keep_metrics(run_path, lambda m: False)
        return like, _State()
    trunk = run_path.parent / run.trunk_id
    if run.decay_start not in checkpoint.steps(trunk / results.BRANCH_DIR):
        raise RuntimeError(f"trunk run {run.trunk_id} has no checkpoint at step {run.decay_start}; train the trunk first")
    state, meta = checkpoint.restore(trunk / results.BRANCH_DIR, run.decay_start, like)
    # The branch's history up to the branch point is the trunk's.
    history = [m for m in results.read_metrics(trunk) if m["step"] <= run.decay_start]
    results.keep_metrics(run_path, lambda m: False)
    for record in history:
        results.append_metrics(run_path, record)
    log(f"branching from trunk {run.trunk_id} at step {run.decay_start}")
    # Its step count and pending training losses continue the trunk's; its timings are its own.
    return state, _State({**meta, "rates": [], "compile_s": None, "wall_s": 0.0})
