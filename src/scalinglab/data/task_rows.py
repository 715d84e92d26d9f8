"""Task prompts as rows of token ids a model scores in one pass, and the scores of each test item
and of each (task, shots, strategy) made from what the pass returns. No JAX: training/task_scoring.py
runs the model.

A row is a prompt and one continuation (an answer choice, or a generation target): the model's
log-likelihood of the continuation's tokens and how many of them are its argmax give every score.
Exact match by greedy decoding equals "every target token is the argmax given the true prefix", so
generation tasks need no decoding loop: greedy decoding of the target's length yields the target
exactly when teacher-forced argmaxes all hit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .tasks import TaskKind

if TYPE_CHECKING:
    from .codec import Codec


@dataclass
class Rows:
    """Distinct (prompt, continuation) pairs, encoded, each kept to its last seq_len + 1 tokens
    (prompts longer than the model's context lose their start, as lm-evaluation-harness does)."""

    codec: Codec
    seq_len: int
    index: dict[tuple[str, str], int] = field(default_factory=dict)
    sequences: list[tuple[list[int], int]] = field(default_factory=list)  # (tokens, continuation length)

    def add(self, prompt: str, continuation: str) -> int:
        key = (prompt, continuation)
        if key not in self.index:
            context, answer = self.codec.encode(prompt), self.codec.encode(continuation)
            tokens = (context + answer)[-(self.seq_len + 1) :]
            self.index[key] = len(self.sequences)
            self.sequences.append((tokens, min(len(answer), len(tokens) - 1)))
        return self.index[key]

    def by_width(self, parts: int) -> dict[int, list[int]]:
        """Row ids grouped by the width that holds them, a multiple of seq_len / parts: a pass over
        short prompts (0-shot) costs a fraction of one over full-length ones."""
        step = -(-self.seq_len // parts)
        groups: dict[int, list[int]] = {}
        for r, (tokens, _) in enumerate(self.sequences):
            groups.setdefault(min(self.seq_len, -(-(len(tokens) - 1) // step) * step), []).append(r)
        return groups

    def arrays(self, n_rows: int, width: int | None = None, rows: Sequence[int] | None = None) -> tuple[np.ndarray, ...]:
        """inputs, targets, continuation mask, context mask of `rows` (default: all), in that order:
        (n_rows, width) each, width at least each row's length (default seq_len), padded with empty
        rows (n_rows >= len(rows)); target position j predicts token j + 1."""
        rows = range(len(self.sequences)) if rows is None else rows
        shape = (n_rows, width or self.seq_len)
        inputs, targets = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        answer, context = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for r, row in enumerate(rows):
            tokens, n_answer = self.sequences[row]
            n = len(tokens) - 1
            inputs[r, :n], targets[r, :n] = tokens[:-1], tokens[1:]
            answer[r, n - n_answer : n] = 1
            context[r, : max(1, n - n_answer + 1)] = 1  # the positions that see the prompt only
        return inputs, targets, answer, context

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass(frozen=True)
class Scored:
    """What a pass returns per row: the continuation's log-likelihood (nats), its token count,
    its tokens that are the argmax, and the mean final hidden state over the prompt."""

    logp: np.ndarray
    n_tokens: np.ndarray
    n_correct: np.ndarray
    embedding: np.ndarray

    def loss(self, rows: list[int]) -> np.ndarray:
        """Mean nats per token of each row's continuation."""
        return -self.logp[rows] / np.maximum(self.n_tokens[rows], 1)


def item_scores(kind: TaskKind, gold: int, continuations: list[str], rows: list[int], out: Scored) -> dict:
    """One test item's scores from its rows (one per continuation; generation: one)."""
    logp, n = out.logp[rows], out.n_tokens[rows]
    n_bytes = np.array([max(1, len(c.encode("utf-8"))) for c in continuations])
    g = gold if kind == TaskKind.MULTIPLE_CHOICE else 0
    scores = {"task_loss": float(-logp[g] / max(n[g], 1)), "task_bpb": float(-logp[g] / math.log(2) / n_bytes[g])}
    if kind == TaskKind.MULTIPLE_CHOICE:
        p = np.exp(logp - logp.max())
        scores.update(
            acc=float(np.argmax(logp) == g),
            acc_norm=float(np.argmax(logp / n_bytes) == g),
            p_gold=float(p[g] / p.sum()),
            exact_match=math.nan,
            token_acc=math.nan,
        )
        scores["score"] = scores["p_gold"]
    else:
        correct = out.n_correct[rows[0]]
        exact = float(correct == n[0])
        scores.update(acc=exact, acc_norm=math.nan, p_gold=math.nan, exact_match=exact, token_acc=float(correct / max(n[0], 1)))
        scores["score"] = scores["token_acc"]
    return scores


def task_record(task, shots: int, strategy: str, items: list[dict], demos: list[list[int]]) -> dict:
    """One (task, shots, strategy)'s record of tasks.jsonl: the means over test items, the standard
    error of acc, and per item its id, acc, continuous score and demonstrations (pool item ids)."""
    mean = {
        k: _number(np.mean([s[k] for s in items]))
        for k in ("acc", "acc_norm", "task_loss", "task_bpb", "p_gold", "exact_match", "token_acc")
    }
    acc = np.array([s["acc"] for s in items])
    se = _number(acc.std(ddof=1) / math.sqrt(len(acc))) if len(acc) > 1 else None
    return {
        "task": task.name,
        "kind": task.kind,
        "shots": shots,
        "strategy": strategy,
        **mean,
        "chance": task.chance,
        "n_items": len(items),
        "acc_se": se,
        "items": [item.id for item in task.test],
        "item_acc": [int(a) for a in acc],
        "item_score": [round(s["score"], 5) for s in items],
        "demos": [[task.pool[j].id for j in d] for d in demos],
    }


def _number(x) -> float | None:
    """JSON has no NaN: a score a task does not have (p_gold of a generation task) is null."""
    return None if math.isnan(x) else float(x)
