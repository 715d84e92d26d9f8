"""One run: set up (corpus, devices, model, optimizer, jitted steps), resume, a step loop with
hooks (evaluations, checkpoints), and the summary. Over every device of the run, in one process
or several (training.distributed): a mesh of data and fsdp axes (training.sharding). Each step's
batch is built ahead by a thread (training.feed)."""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from ..data.batches import eval_chunks, val_windows
from ..data.corpus import load_corpus
from ..data.objectives import VAL_SEED
from ..model.transformer import build_model
from ..store import runs
from ..store.layout import RunDir
from ..store.runs import Status
from . import checkpoint, distributed, feed, sharding, throughput, weights
from .counters import Counters
from .optimizer import build_optimizer
from .steps import enable_compile_cache, make_loss_fn, make_train_step
from .task_scoring import TaskScorer
from .tracking import open_tracker

# What save_for_requeue saves (_take_snapshot): the (params, optimizer state), the step, the
# counters, the pending losses and how many of them belong.
Snapshot = tuple[Any, int, Counters, list[jax.Array], int]
AGREE_EVERY = 10  # steps between the processes' agreements on a time-based checkpoint


@dataclass(frozen=True)
class Hook:
    """fn(step) runs after each step for which due(step) is true, once the losses are checked."""

    name: str
    due: Callable[[int], bool]
    fn: Callable[[int], None]


class Trainer:
    """Trains one run into its folder: train() appends an evaluation to metrics.jsonl at each of
    the run's eval steps and writes summary.json. It resumes from the run's latest checkpoint, or
    for a cooldown branch from its trunk's checkpoint at the branch point. A NaN/inf training
    loss stops the run as 'diverged'."""

    def __init__(self, run, run_dir: RunDir, log=print, compile_cache: Path | None = None):
        self.run, self.dir, self.log = run, run_dir, log
        self.t_start = time.perf_counter()
        if compile_cache is not None:
            enable_compile_cache(compile_cache)
        self.corpus = load_corpus(run.data)
        self.devices, self.main = jax.devices(), distributed.is_main()  # every process's devices
        rows, what = (run.microbatch_size, "microbatch_size") if run.microbatch_size else (run.batch_size, "batch_size")
        if rows % len(self.devices):
            raise ValueError(f"train.{what} {rows} does not divide over {len(self.devices)} devices")
        self.mesh = sharding.make_mesh(run.fsdp, self.devices)
        self.replicated, self.by_row = NamedSharding(self.mesh, PartitionSpec()), NamedSharding(self.mesh, sharding.ROWS)
        self.state = self._build_steps()  # fresh; train() replaces it with what it resumes from
        self.peak = throughput.peak_flops(run.precision)
        evals, branch_points = set(run.eval.steps), set(run.branch_steps)
        # The smoothed loss forgets with a time constant of one curve interval.
        self.ema_decay = 1 - 1 / run.curve_every
        self.hooks = [
            Hook("curve", run.is_curve_step, self._log_curve),
            Hook("evaluate", evals.__contains__, self._evaluate),
            Hook("branch point", branch_points.__contains__, partial(self._save, self.dir.branch_points, keep=None)),
            Hook("checkpoint", self._checkpoint_due, partial(self._save, self.dir.resume, keep=1)),
        ]
        self._snapshot: Snapshot | None = None
        self._in_hooks = False
        self.tracker = open_tracker(run.tracking, run_dir, run.record(), self.main)

    def _build_steps(self):
        """The jitted training step and validation loss; returns a fresh model and optimizer state
        on the devices."""
        run = self.run
        model = build_model(run.model, run.seed, precision=run.precision, remat=run.remat)
        self.attention, self.layers = model.blocks.kind, model.layers
        graphdef, params = nnx.split(model)
        sharding.annotate(params, run.fsdp)
        tx = build_optimizer(run.optim, params, model.r)
        params_sharding, opt_sharding = sharding.state_shardings(self.mesh, params, tx, jax.eval_shape(tx.init, params))
        loss_fn = make_loss_fn(run.precision, graphdef)
        self.scorer = TaskScorer(run, self.corpus, graphdef, self.mesh) if run.eval.tasks else None
        n_micro = run.batch_size // (run.microbatch_size or run.batch_size)
        self.train_step = make_train_step(loss_fn, tx, n_micro, ((params_sharding, opt_sharding), self.replicated), self.mesh)
        self.val = self._val_examples()
        # The examples are an argument, not a constant: sharded over several processes, they must be.
        self.val_loss = jax.jit(
            sharding.on_mesh(self.mesh, lambda params, val: jax.lax.map(lambda chunk: loss_fn(params, *chunk), val).mean())
        )
        params = sharding.place(params, params_sharding)
        return params, jax.jit(tx.init, out_shardings=opt_sharding)(params)

    def _val_examples(self) -> tuple:
        """The held-out examples as (chunks, windows per chunk, seq_len), each chunk's windows split
        over every device: padded with weightless windows to a multiple of the devices."""
        run, n_devices = self.run, len(self.devices)
        windows = val_windows(self.corpus.val, run.model.seq_len, run.eval.val_tokens)
        n_chunks, per_chunk = eval_chunks(len(windows))
        examples = run.model.objective.examples(windows[: n_chunks * per_chunk], run.data.vocab_size, VAL_SEED, 0)
        padded = -(-per_chunk // n_devices) * n_devices
        chunks = [np.pad(a.reshape(n_chunks, per_chunk, -1), ((0, 0), (0, padded - per_chunk), (0, 0))) for a in examples]
        split = NamedSharding(self.mesh, PartitionSpec(None, ("data", "fsdp")))
        # The first axis (chunks) is not split: every device's shard takes its rows from all chunks.
        return tuple(sharding.global_arrays(chunks[0].shape, split, lambda start, stop: chunks, 3))

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    # ---- the step loop ----------------------------------------------------------------------

    def train(self) -> dict:
        self.state, self.counters = self._resume(self.state)
        resumed_from = self.counters.step
        self.pending: list = []  # losses stay on device: no sync between evaluations and checkpoints
        self.t_interval = self.t_ckpt = time.perf_counter()
        self.steps_in_interval, status = 0, Status.DONE
        steps = range(self.counters.step + 1, self.run.steps + 1)
        build = partial(feed.device_batch, self.run, self.corpus.train, self.by_row)
        with feed.Prefetcher(build, steps) as self.batches:  # a thread builds ahead; stopped however the loop ends
            for step in steps:
                self._step(step, first=step == resumed_from + 1)
                preempted = distributed.reached_preemption_step(step)  # several processes: they save together
                due = [hook for hook in self.hooks if hook.due(step)]
                if preempted and not any(hook.name == "checkpoint" for hook in due):
                    due.append(Hook("preemption", bool, partial(self._save, self.dir.resume, keep=1)))
                if not due:
                    continue
                if not self._flush_losses(step):
                    status = Status.DIVERGED
                    break
                self._in_hooks = True  # counters, metrics and checkpoints change: a preemption save now waits
                try:
                    for hook in due:
                        hook.fn(step)
                    self._take_snapshot(step)  # before a save is allowed again: the counters after the hooks
                finally:
                    self._in_hooks = False
                if preempted:
                    self.log(f"preempted: saved step {step} on every process")
                    return {"status": Status.PREEMPTED, "step": step}
        return self._finish(status, resumed_from)

    def _step(self, step: int, first: bool) -> None:
        self.state, loss = self.train_step(self.state, *self.batches.take(step))
        self.counters.step = step
        self.pending.append(loss)
        self._take_snapshot(step)
        if first:  # the first step of a session compiles: keep it out of the throughput figures
            loss.block_until_ready()
            self.counters.compile_s = self.counters.compile_s if self.counters.compile_s is not None else self.elapsed()
            self.t_interval = time.perf_counter()
        else:
            self.steps_in_interval += 1

    def _take_snapshot(self, step: int) -> None:
        """What save_for_requeue saves: the state after `step`, the counters and the pending losses
        (the list and how many of its entries belong). Replaced whole, so a signal handler between
        two bytecodes sees one consistent snapshot."""
        self._snapshot = (self.state, step, copy.copy(self.counters), self.pending, len(self.pending))

    def _checkpoint_due(self, step: int) -> bool:
        """Every checkpoint_interval_s, and at branch points; never at the last step (nothing to
        resume). Several processes save together when process 0's clock says so, asked every
        AGREE_EVERY steps (a collective)."""
        if step >= self.run.steps:
            return False
        if step in self.run.branch_steps:
            return True
        if distributed.is_distributed() and step % AGREE_EVERY:
            return False
        return distributed.main_decides(time.perf_counter() - self.t_ckpt >= self.run.checkpoint_interval_s)

    def _flush_losses(self, step: int) -> bool:
        """Adds the pending training losses to the counters; False if one is not finite."""
        losses = np.asarray(jax.device_get(self.pending), dtype=np.float64)
        self.pending = []
        if not np.all(np.isfinite(losses)):
            self.log(f"step {step}: training loss is {losses[~np.isfinite(losses)][0]}; stopping")
            return False
        self.counters.absorb(losses, self.ema_decay)
        return True

    # ---- hooks ---------------------------------------------------------------------------------

    def _evaluate(self, step: int) -> None:
        run, c = self.run, self.counters
        tokens_per_step = run.batch_size * run.model.seq_len
        rate = None
        if self.steps_in_interval:
            rate = self.steps_in_interval * tokens_per_step / (time.perf_counter() - self.t_interval)
            c.rates.append(rate)
        L = float(self.val_loss(self.state[0], self.val))
        record = {
            **self._score_tasks(step, step * tokens_per_step),
            "step": step,
            "tokens": step * tokens_per_step,
            "L": L,
            "bpb": L / math.log(2) / self.corpus.val_bytes_per_token,
            "train_loss": c.loss_sum / c.loss_count,
            "tokens_per_s": rate,
            **throughput.mfu_figures(rate, run, self.peak, self.attention),
            "elapsed_s": c.wall_s + self.elapsed(),
        }
        if self.main:
            runs.append_metrics(self.dir, [*c.points, {**record, "step_lr": self._lr(step)}])
        c.points = ()
        self.tracker.evaluation(step, record, self._lr(step))
        self.log(f"step {step}/{run.steps}  L {L:.4f}  train {record['train_loss']:.4f}  tokens/s {rate or 0:,.0f}")
        c.loss_sum, c.loss_count = 0.0, 0
        self.t_interval, self.steps_in_interval = time.perf_counter(), 0

    def _lr(self, step: int) -> float:
        """The (base) learning rate of the step's update."""
        return float(self.run.optim.schedule.lr(self.run.optim.lr, step - 1, np))

    def _log_curve(self, step: int) -> None:
        """A point of the training curve: the rate, the mean training loss since the last point
        and the smoothed loss; from losses fetched once per point, never per step."""
        c = self.counters
        point = {
            "step": step,
            "tokens": step * self.run.batch_size * self.run.model.seq_len,
            "step_lr": self._lr(step),
            "train_loss": c.curve_sum / c.curve_count,
            "train_loss_ema": c.ema / c.ema_weight,
            "n_steps": c.curve_count,
        }
        c.points = (*c.points, point)
        self.tracker.curve(step, point)
        c.curve_sum, c.curve_count = 0.0, 0

    def _score_tasks(self, step: int, tokens: int) -> dict:
        """The run's tasks at this evaluation, if it is one they are scored at: their records go to
        tasks.jsonl, the seconds they took to the evaluation's record."""
        if self.scorer is None or step not in self.run.eval.task_steps:
            return {}
        t0 = time.perf_counter()
        records = self.scorer.score(self.state[0], step, tokens)
        if self.main:
            runs.append_tasks(self.dir, records)
        self.tracker.tasks(step, records)
        return {"task_s": time.perf_counter() - t0}

    def _save(self, directory: Path, step: int, keep: int | None) -> None:
        checkpoint.save(directory, step, self.state, self.counters.meta(self.elapsed()), keep=keep)
        if directory == self.dir.resume:
            self.t_ckpt = time.perf_counter()

    def save_for_requeue(self) -> int | None:
        """Saves the latest state to the run's checkpoint; called from the job's preemption or
        timeout signal handler (launch.job.TrainJob.checkpoint), between two Python bytecodes of
        the step loop. Returns the step saved, or None when there was no consistent state to
        save (before the first step, while hooks run: orbax is not re-entrant, and counters and
        metrics are changing; after the last step): the requeued run then resumes from its last
        periodic checkpoint."""
        if self._snapshot is None or self._in_hooks:
            return None
        state, step, counters, pending, n = self._snapshot
        if any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):  # donated to the step under way
            return None
        losses = np.asarray(jax.device_get(pending[:n]), dtype=np.float64)
        if not np.all(np.isfinite(losses)):
            return None
        counters = copy.copy(counters)
        counters.absorb(losses, self.ema_decay)
        checkpoint.save(self.dir.resume, step, state, {**counters.meta(self.elapsed()), "step": step})
        return step

    # ---- resume and summary ----------------------------------------------------------------------

    def _resume(self, like) -> tuple[object, Counters]:
        """The state to start from: this run's latest checkpoint; else, for a branch, its trunk's
        checkpoint at the branch point; else `like`, fresh. Evaluations after that step are dropped."""
        run = self.run
        own = checkpoint.steps(self.dir.resume)
        if own:
            try:
                state, meta = checkpoint.restore(self.dir.resume, own[-1], like)
            except (ValueError, KeyError) as e:  # another layout: failing would fail every retry too
                self.log(
                    f"the checkpoint at step {own[-1]} does not fit this run's state (saved by another "
                    f"version of scalinglab?): {str(e).splitlines()[0]}; training from the start"
                )
                self._remove_checkpoint()
                return self._resume(like)
            if self.main:
                runs.keep_metrics(self.dir, lambda m: m["step"] <= own[-1])
            self.log(f"resuming from step {own[-1]}")
            return state, Counters(meta)
        if run.trunk_id is None:
            if self.main:
                runs.keep_metrics(self.dir, lambda m: False)
            return like, Counters()
        trunk, start = self.dir.sweep.run(run.trunk_id), run.start_step
        if start not in checkpoint.steps(trunk.branch_points):
            raise RuntimeError(f"trunk run {run.trunk_id} has no checkpoint at step {start}; train the trunk first")
        state, meta = checkpoint.restore(trunk.branch_points, start, like)
        if self.main:
            runs.keep_metrics(self.dir, lambda m: False)
            runs.copy_evaluations(trunk, self.dir, start)
        self.log(f"branching from trunk {run.trunk_id} at step {start}")
        # Its step count and pending training losses continue the trunk's; its timings are its own,
        # and the trunk's curve points are in the trunk's metrics.jsonl, copied above.
        return state, Counters({**meta, "rates": [], "compile_s": None, "wall_s": 0.0, "points": []})

    def _remove_checkpoint(self) -> None:
        if self.main:
            checkpoint.remove(self.dir.resume)
        distributed.barrier("checkpoint removed")

    def _finish(self, status: Status, resumed_from: int) -> dict:
        self._snapshot = None  # a preemption signal from now on saves nothing
        if self.main and self.counters.points:  # a diverged run's curve up to where it diverged
            runs.append_metrics(self.dir, list(self.counters.points))
        if status == Status.DONE and self.run.keep_weights:
            weights.save(self.dir.weights, self.state[0], self.run.run_id, write=self.main)
        self._remove_checkpoint()  # finished: nothing left to resume
        self.tracker.close()
        metrics = runs.read_metrics(self.dir)
        last = (metrics or [{}])[-1]
        c = self.counters
        rate = float(np.median(c.rates)) if c.rates else None
        summary = {
            "status": status,
            "L": last.get("L") if status == Status.DONE else None,
            "bpb": last.get("bpb") if status == Status.DONE else None,
            "train_loss": last.get("train_loss"),
            "tokens_per_s": rate,
            **throughput.mfu_figures(rate, self.run, self.peak, self.attention),
            "peak_flops": self.peak,
            "compile_s": c.compile_s,
            "task_s": sum(m.get("task_s", 0.0) for m in metrics if m["step"] > self.run.start_step)
            if self.scorer
            else None,  # a branch's own: its trunk's scoring is the trunk's
            "wall_s": c.wall_s + self.elapsed(),
            "resumed_from": resumed_from,
            "val_tokens_scored": int(self.val[2].sum()),
            "U": len(self.corpus.train),  # the unique training tokens its batches were drawn from
            "platform": self.devices[0].platform,
            "device_kind": self.devices[0].device_kind,
            "n_devices": len(self.devices),
            "n_processes": jax.process_count(),
            "fsdp": self.run.fsdp,
            "attention": self.attention,
            "layers": self.layers,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "pid": os.getpid(),
            "cpu_cores": sorted(os.sched_getaffinity(0)),
        }
        if self.main:
            runs.write_summary(self.dir, summary)
        return summary


def train(run, run_dir, log=print, compile_cache: Path | None = None) -> dict:
    """Trains `run` (a sweep.runspec.RunSpec) into run_dir (a RunDir or its path); returns its summary."""
    return Trainer(run, run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir), log, compile_cache).train()
