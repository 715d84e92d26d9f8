"""What a run's step loop counts besides its params and optimizer state, saved with every
checkpoint: the step, the training losses since the last evaluation and since the last curve
point, the smoothed loss, the curve points not yet written, the throughput figures. No JAX."""

from __future__ import annotations

import numpy as np


class Counters:
    """What the step loop carries besides params and optimizer state; saved with checkpoints."""

    def __init__(self, meta: dict | None = None):
        meta = meta or {}
        self.step = meta.get("step", 0)
        self.loss_sum = meta.get("loss_sum", 0.0)  # training losses since the last evaluation
        self.loss_count = meta.get("loss_count", 0)
        self.curve_sum = meta.get("curve_sum", 0.0)  # since the last point of the training curve
        self.curve_count = meta.get("curve_count", 0)
        self.ema = meta.get("ema", 0.0)  # the smoothed training loss, before its bias correction
        self.ema_weight = meta.get("ema_weight", 0.0)  # 1 - decay^(steps seen): the bias correction
        # Curve points not yet in metrics.jsonl: written with the next evaluation (a file rewritten
        # and synced for every point would cost more than the point), saved with checkpoints. A
        # tuple, replaced whole, so a snapshot's copy of the counters never changes under it.
        self.points: tuple[dict, ...] = tuple(meta.get("points", ()))
        self.rates = meta.get("rates", [])
        self.compile_s = meta.get("compile_s")
        self.wall_s = meta.get("wall_s", 0.0)  # spent in earlier sessions of this run

    def absorb(self, losses: np.ndarray, decay: float) -> None:
        """Adds the training losses of the steps since the last call, in order."""
        self.loss_sum += float(losses.sum())
        self.loss_count += len(losses)
        self.curve_sum += float(losses.sum())
        self.curve_count += len(losses)
        for x in losses:  # one float operation a step, on the host, only when losses are fetched anyway
            self.ema = decay * self.ema + (1 - decay) * float(x)
            self.ema_weight = decay * self.ema_weight + (1 - decay)

    def meta(self, wall_now: float) -> dict:
        return {
            "step": self.step,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "curve_sum": self.curve_sum,
            "curve_count": self.curve_count,
            "ema": self.ema,
            "ema_weight": self.ema_weight,
            "points": list(self.points),
            "rates": self.rates,
            "compile_s": self.compile_s,
            "wall_s": self.wall_s + wall_now,
        }
