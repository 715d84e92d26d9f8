"""What the curve laws read of a schedule: S1, the area under the learning rate; the decrements
of the rate; and, for the multi-power law's loss drop, the decrements gathered into blocks of
steps graded by their distance from each observed step. Pure numpy.

Step t runs 1..T; `lr[t - 1]` is the rate at step t, already divided by the fit's normaliser.
The rise to the peak is not annealing: decrements count from the first step at which the rate
falls (a warmup's increases, and the flat stretch after it, add nothing), so no warmup length is
needed to read a schedule.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# Blocks of the loss drop's sum: a block at distance delta steps from the observed step spans
# max(1, floor(WIDTH * delta)) steps. G varies fastest just before the observed step, where
# blocks are single steps, and slowly far from it, where a block's G at its centroid is exact to
# O(WIDTH^2): ~170 blocks per observed step for a 20,000-step schedule, matching the step-by-step
# sum to ~1e-5 (tests/test_curve_laws.py), where the exact sum costs T per observed step.
WIDTH = 0.05
TINY_RATE = 1e-8
"""Rates are floored here where their log is taken (a schedule may end at 0: G is then 1)."""


def area(lr: np.ndarray) -> np.ndarray:
    """S1 at steps 1..T: the sum of the rates up to and including each step, warmup included."""
    return np.cumsum(lr)


def decrements(lr: np.ndarray) -> np.ndarray:
    """eta_{k-1} - eta_k at steps k = 1..T, zero until the rate first falls (see the module)."""
    d = np.zeros_like(lr)
    d[1:] = lr[:-1] - lr[1:]
    falls = np.flatnonzero(d > 0)
    if len(falls):
        d[: falls[0]] = 0.0
    else:
        d[:] = 0.0
    return d


def momentum_area(lr: np.ndarray, decay: float) -> np.ndarray:
    """S2 at steps 1..T (Tissue et al. 2024): the sum of m_i = decay * m_{i-1} + (eta_{i-1} - eta_i)."""
    return np.cumsum(lfilter([1.0], [1.0, -decay], decrements(lr)))


def offsets(T: int, width: float = WIDTH) -> np.ndarray:
    """Block edges as distances back from an observed step: 0 = e_0 < e_1 < ... >= T; block i holds
    the steps k with e_i <= t - k < e_{i+1}."""
    out = [0]
    while out[-1] < T:
        out.append(out[-1] + max(1, int(width * out[-1])))
    return np.array(out)


def drop_blocks(lr: np.ndarray, steps: np.ndarray, width: float = WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per observed step t and block b (n, blocks): the block's summed decrement D, the area from
    its centroid to t, Delta = S1(t) - S1(k-1) at the centroid, and the mean log rate there, both
    weighted by |decrement|. The loss drop is then sum_b D G(exp(-gamma lograte) Delta); sums over
    a block are differences of prefix sums, so building them costs n x blocks, not n x T."""
    S1, d = area(lr), decrements(lr)
    before = np.concatenate([[0.0], S1[:-1]])  # S1(k - 1)
    w = np.abs(d)
    log_rate = np.log(np.maximum(lr, TINY_RATE))
    prefix = [np.concatenate([[0.0], np.cumsum(v)]) for v in (d, w, w * before, w * log_rate)]
    e = offsets(len(lr), width)
    t = np.asarray(steps)[:, None]
    last = np.maximum(t - e[None, :-1], 0)  # the block's last step (0: none)
    first = np.maximum(t - e[None, 1:] + 1, 1)  # and its first (steps below 1 cut off)
    first = np.minimum(first, last + 1)  # an empty block: first = last + 1
    D, W, WS, WL = (p[last] - p[first - 1] for p in prefix)
    held = W > 0
    safe = np.where(held, W, 1.0)
    centroid = np.where(held, WS / safe, 0.0)
    delta = np.where(held, S1[t - 1] - centroid, 0.0)
    return np.where(held, D, 0.0), delta, np.where(held, WL / safe, 0.0)


def exact_drop(lr: np.ndarray, steps: np.ndarray, C: float, beta: float, gamma: float) -> np.ndarray:
    """The multi-power loss drop divided by B, summed step by step (O(n T)): the reference the
    blocks are tested against."""
    S1, d = area(lr), decrements(lr)
    before = np.concatenate([[0.0], S1[:-1]])
    out = np.empty(len(steps))
    for j, t in enumerate(steps):
        x = np.maximum(lr[:t], TINY_RATE) ** -gamma * (S1[t - 1] - before[:t])
        out[j] = np.sum(d[:t] * (1 - (C * x + 1) ** -beta))
    return out
