"""Downstream tasks scored inside a run at its evaluations (eval.tasks): every (task, shots,
strategy) as one record of tasks.jsonl. The prompts and scores are data/task_rows.py's; this
module runs the model over them, a fixed number of rows per pass (one compiled program)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from ..data.builtin_tasks import builtin_task
from ..data.codec import Codec, open_codec
from ..data.corpus import prepare
from ..data.demonstrations import NEEDS, choose
from ..data.task_rows import Rows, Scored, item_scores, task_record
from ..data.tasks import Task, load_jsonl_task
from ..model.kernels import Precision
from ..model.transformer import cross_entropy
from . import sharding

ROWS = 32  # full-length sequences per pass (rounded up to a multiple of the devices): on a CPU
# core, 64 rows of 128 tokens ran 1.3x slower per token than 16 to 32 (bench_task_scoring.py)
WIDTHS = 8  # rows are padded to a multiple of seq_len / WIDTHS: up to 8 compiled programs
TASK_SEED = 0  # the items of built-in tasks and random demonstrations: the same for every run
VAL_TEXT_TOKENS = 1 << 20  # held-out tokens the built-in tasks draw their items from


def build_tasks(run, corpus) -> tuple[list[Task], Codec]:
    """The run's tasks (data.tasks.Task) and the codec of its corpus."""
    e = run.eval
    codec = open_codec(prepare(run.data), run.data.tokenizer)
    val_text = codec.decode(corpus.val[:VAL_TEXT_TOKENS]) if None in e.task_files else ""
    tasks: list[Task] = []
    for settings, files in zip(e.tasks, e.task_files):
        if files is None:
            tasks.append(builtin_task(settings["name"], val_text, e.test_items, e.pool_items, TASK_SEED))
            continue
        args = {k: v for k, v in settings.items() if k not in ("content", "fewshot_file")}
        tasks.append(
            load_jsonl_task(**args, test=Path(files[0]), fewshot=files[1] and Path(files[1]), n_test=e.test_items, n_pool=e.pool_items)
        )
    return tasks, codec


def make_forward(graphdef: nnx.GraphDef, precision: Precision, out_sharding):
    """(params, inputs, targets, answer mask, context mask) -> per row: the continuation's
    log-likelihood, its token count, its tokens that are the argmax, the mean final hidden state
    over the prompt."""
    compute_dtype = jnp.bfloat16 if precision == Precision.BF16 else jnp.float32

    @partial(jax.jit, out_shardings=out_sharding)
    def forward(params, inputs, targets, answer, context):
        model = nnx.merge(graphdef, jax.tree.map(lambda p: p.astype(compute_dtype), params))
        x = model.final_stream(inputs)
        logits = model.logits(x)
        logp = -(cross_entropy(logits, targets) * answer).sum(1)
        correct = ((jnp.argmax(logits, -1) == targets) * answer).sum(1)
        h = model.ln_f(x).astype(jnp.float32)
        embedding = (h * context[..., None]).sum(1) / jnp.maximum(context.sum(1), 1)[:, None]
        return logp, answer.sum(1), correct, embedding

    return forward


class TaskScorer:
    def __init__(self, run, corpus, graphdef: nnx.GraphDef, mesh):
        self.run = run
        self.tasks, self.codec = build_tasks(run, corpus)
        self.n_devices = mesh.devices.size
        self.by_row = NamedSharding(mesh, sharding.ROWS)
        self.forward = make_forward(graphdef, run.precision, NamedSharding(mesh, PartitionSpec()))

    def score(self, params, step: int, tokens: int) -> list[dict]:
        """Every (task, shots, strategy) at this evaluation, as tasks.jsonl records."""
        return [{"step": step, "tokens": tokens, **r} for task in self.tasks for r in self._task(params, task)]

    def _pass(self, params, rows: Rows) -> Scored:
        """The model over every row, grouped by width (WIDTHS); each pass holds about ROWS x seq_len
        tokens, so a width's shapes are the same every pass (one compiled program per width)."""
        out: list[list[np.ndarray] | None] = [None] * len(rows)  # by row; every row is in one width
        for width, ids in rows.by_width(WIDTHS).items():
            n = self._rows_per_pass(width)
            for start in range(0, len(ids), n):
                chunk_ids = ids[start : start + n]
                chunk = rows.arrays(n, width, chunk_ids)
                device = sharding.global_arrays(chunk[0].shape, self.by_row, partial(_row_range, chunk), 4)
                scored = [np.asarray(o) for o in self.forward(params, *device)]
                for i, row in enumerate(chunk_ids):
                    out[row] = [o[i] for o in scored]
        logp, n_tokens, correct, embedding = (np.stack(p) for p in zip(*out))
        return Scored(logp.astype(np.float64), n_tokens, correct, embedding)

    def _rows_per_pass(self, width: int) -> int:
        rows = max(1, ROWS * self.run.model.seq_len // width)
        return -(-rows // self.n_devices) * self.n_devices

    def _task(self, params, task) -> list[dict]:
        """The 0-shot rows first (with the pool's features: the strategies that read the model use
        them), then every (shots, strategy) with demonstrations in one pass."""
        e, seq_len = self.run.eval, self.run.model.seq_len
        rows = Rows(self.codec, seq_len)
        pool = [rows.add(item.context, task.target_delimiter + item.answer) for item in task.pool]
        zero = [[rows.add(item.context, c) for c in task.continuations(item)] for item in task.test]
        first = self._pass(params, rows)
        features = {"embeddings": (first.embedding[pool], first.embedding[[r[0] for r in zero]]), "losses": first.loss(pool)}
        settings = [(k, s) for k in e.num_fewshot for s in e.strategies]
        demos = {(k, s): choose(task, s, k, TASK_SEED, **({NEEDS[s]: features[NEEDS[s]]} if s in NEEDS else {})) for k, s in settings if k}
        rows = Rows(self.codec, seq_len)
        shot_rows = {
            key: [
                [rows.add(task.prompt(item, [task.pool[j] for j in d]), c) for c in task.continuations(item)]
                for item, d in zip(task.test, chosen)
            ]
            for key, chosen in demos.items()
        }
        later = self._pass(params, rows) if len(rows) else None
        records = []
        for k, s in settings:
            out, item_rows, chosen = (later, shot_rows[k, s], demos[k, s]) if k else (first, zero, [[]] * len(zero))
            assert out is not None  # later is None only without rows, and a task has test items
            items = [item_scores(task.kind, item.gold, task.continuations(item), r, out) for item, r in zip(task.test, item_rows)]
            records.append(task_record(task, k, s, items, chosen))
        return records


def _row_range(arrays: tuple[np.ndarray, ...], start: int, stop: int) -> list[np.ndarray]:
    """Rows start to stop of each of `arrays`."""
    return [x[start:stop] for x in arrays]
