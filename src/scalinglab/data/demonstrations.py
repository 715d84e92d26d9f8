"""Few-shot demonstrations: which pool items each test item's prompt shows, and in what order. No JAX.

  random      a draw seeded by (seed, item index): the same demonstrations for every model and
              evaluation, so comparisons between them are paired; k is a prefix of a permutation,
              so the k-shot demonstrations are among the (k + 1)-shot ones.
  first_n     the first k pool items.
  bm25        the k pool contexts closest to the item's context by BM25 over lowercase words.
  embedding   the k nearest neighbours by cosine similarity of the scoring model's vectors.
  mmr         maximal marginal relevance over the same vectors: relevance to the item minus
              redundancy with the demonstrations already chosen, LAMBDA 0.5.
  difficulty  the k pool items the scoring model finds easiest (lowest loss on the answer).

Similarity-based choices put the most similar demonstration last, next to the query; difficulty
puts the easiest last. A test item is never its own demonstration: pool items with the same
context and answer are left out (when the pool is the test set that is the item itself)."""

from __future__ import annotations

import re
from enum import StrEnum

import numpy as np

from .tasks import Task


class Strategy(StrEnum):
    """eval.strategies: how demonstrations are chosen (above)."""

    RANDOM = "random"
    FIRST_N = "first_n"
    BM25 = "bm25"
    EMBEDDING = "embedding"
    MMR = "mmr"
    DIFFICULTY = "difficulty"


# What the scoring model must supply.
NEEDS = {Strategy.EMBEDDING: "embeddings", Strategy.MMR: "embeddings", Strategy.DIFFICULTY: "losses"}
LAMBDA = 0.5
_WORD = re.compile(r"\w+")


def choose(task: Task, strategy: Strategy, k: int, seed: int, embeddings=None, losses=None) -> list[list[int]]:
    """For each test item, in task.test order, the pool indices of its k demonstrations in prompt
    order. embeddings: (pool vectors (P, d), test vectors (T, d)); losses: (P,), the scoring model's
    loss on each pool item's answer."""
    if strategy not in tuple(Strategy):
        raise ValueError(f"demonstration strategy '{strategy}' is not one of {', '.join(Strategy)}")
    allowed = _allowed(task, k)
    if strategy == Strategy.RANDOM:
        return [_random(a, k, seed, i) for i, a in enumerate(allowed)]
    if strategy == Strategy.FIRST_N:
        return [np.flatnonzero(a)[:k].tolist() for a in allowed]
    if strategy == Strategy.BM25:
        return [_top(s, a, k) for s, a in zip(_bm25_scores(task), allowed)]
    if strategy == Strategy.DIFFICULTY:
        easiness = -_losses(task, losses)
        return [_top(easiness, a, k) for a in allowed]
    pool, test = _unit_vectors(task, embeddings)
    relevance = test @ pool.T  # (T, P) cosine similarities
    if strategy == Strategy.EMBEDDING:
        return [_top(r, a, k) for r, a in zip(relevance, allowed)]
    redundancy = pool @ pool.T
    return [_mmr(r, redundancy, a, k) for r, a in zip(relevance, allowed)]


def _allowed(task: Task, k: int) -> list[np.ndarray]:
    """For each test item, which pool items may be its demonstrations: (P,) booleans."""
    if k < 0:
        raise ValueError(f"k is {k}; give a number of demonstrations >= 0")
    allowed = _others(task)
    for t, a in zip(task.test, allowed):
        if a.sum() < k:
            raise ValueError(
                f"task {task.name}: k = {k} demonstrations but test item {t.id!r} has only {a.sum()} "
                f"pool items other than itself; lower k or enlarge the pool"
            )
    return allowed


def fewest_others(task: Task) -> tuple[str, int]:
    """The test item with the fewest pool items besides itself, and how many: the most
    demonstrations every prompt of the task can show."""
    counts = [int(a.sum()) for a in _others(task)]
    i = int(np.argmin(counts))
    return task.test[i].id, counts[i]


def _others(task: Task) -> list[np.ndarray]:
    """For each test item, the pool items that are not it (same context and answer): (P,) booleans."""
    where: dict[tuple[str, str], list[int]] = {}
    for j, p in enumerate(task.pool):
        where.setdefault((p.context, p.answer), []).append(j)
    out = []
    for t in task.test:
        a = np.ones(len(task.pool), dtype=bool)
        a[where.get((t.context, t.answer), [])] = False
        out.append(a)
    return out


def _random(allowed: np.ndarray, k: int, seed: int, i: int) -> list[int]:
    """The first k of a permutation of the allowed indices seeded by (seed, test item index)."""
    return np.random.default_rng([seed, i]).permutation(np.flatnonzero(allowed))[:k].tolist()


def _top(scores: np.ndarray, allowed: np.ndarray, k: int) -> list[int]:
    """The k allowed indices with the highest scores (ties: the earlier index), the highest last."""
    idx = np.flatnonzero(allowed)
    best = idx[np.argsort(-scores[idx], kind="stable")[:k]]
    return best[::-1].tolist()


def _mmr(relevance: np.ndarray, similarity: np.ndarray, allowed: np.ndarray, k: int) -> list[int]:
    """k allowed indices, each maximising LAMBDA * relevance - (1 - LAMBDA) * (its greatest similarity
    to those already chosen); the first chosen (the most relevant) last."""
    free = allowed.copy()
    chosen: list[int] = []
    redundancy = np.zeros(len(relevance))  # nothing chosen yet: relevance alone decides
    for _ in range(k):
        j = int(np.argmax(np.where(free, LAMBDA * relevance - (1 - LAMBDA) * redundancy, -np.inf)))
        redundancy = similarity[j] if not chosen else np.maximum(redundancy, similarity[j])
        chosen.append(j)
        free[j] = False
    return chosen[::-1]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bm25_scores(task: Task) -> list[np.ndarray]:
    """Each test item's BM25 scores (P,) of the pool's contexts against its own."""
    docs = [_words(p.context) for p in task.pool]
    if not any(docs):  # no words at all: BM25's mean document length would be 0
        return [np.zeros(len(docs)) for _ in task.test]
    from rank_bm25 import BM25Okapi  # noqa: PLC0415  (rank_bm25 only where a task's demonstrations are chosen by bm25)

    bm25 = BM25Okapi(docs)
    return [bm25.get_scores(_words(t.context)) for t in task.test]


def _losses(task: Task, losses) -> np.ndarray:
    if losses is None:
        raise ValueError("strategy difficulty needs losses: the scoring model's loss on each pool item's answer, (P,)")
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (len(task.pool),) or not np.isfinite(losses).all():
        raise ValueError(f"losses has shape {losses.shape}; give {len(task.pool)} finite losses, one per pool item")
    return losses


def _unit_vectors(task: Task, embeddings) -> tuple[np.ndarray, np.ndarray]:
    """The pool's and the test items' vectors, scaled to length 1 (a zero vector stays zero)."""
    if embeddings is None or len(embeddings) != 2:
        raise ValueError("strategies embedding and mmr need embeddings=(pool vectors (P, d), test vectors (T, d))")
    pool, test = (np.asarray(e, dtype=np.float64) for e in embeddings)
    P, T = len(task.pool), len(task.test)
    if pool.ndim != 2 or test.ndim != 2 or pool.shape[0] != P or test.shape != (T, pool.shape[1]):
        raise ValueError(f"embeddings have shapes {pool.shape} and {test.shape}; give ({P}, d) and ({T}, d)")
    if not (np.isfinite(pool).all() and np.isfinite(test).all()):
        raise ValueError("embeddings hold values that are not finite")
    return tuple(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (pool, test))
