"""Learning-rate schedules as registered types: linear warmup over warmup_steps, then each type's
shape over the rest of a run's `steps`. Pure arithmetic on an array module `xp` (jax.numpy in
training, numpy in tests), so the planner can build them without JAX."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from ..choices import Choice, Registry

SCHEDULES: Registry[Schedule] = Registry("schedule")


class CooldownShape(StrEnum):
    """How WSD's cooldown falls: linearly, or as 1 - sqrt of its progress (Hagele et al. 2024)."""

    LINEAR = "linear"
    ONE_SQRT = "1-sqrt"


@dataclass(frozen=True)
class Schedule(Choice):
    registry: ClassVar[Registry[Schedule]] = SCHEDULES
    warmup_steps: int
    steps: int

    def lr(self, peak: float, t, xp):
        """The learning rate at optax's update count t (0 for step 1)."""
        step = xp.asarray(t, xp.float32) + 1
        W = self.warmup_steps
        return xp.where(step <= W, peak * step / max(W, 1), self.after_warmup(peak, step, xp))

    def after_warmup(self, peak: float, step, xp):
        raise NotImplementedError

    def label(self) -> str:
        """A few words that tell this schedule from its family's others (figures, tables)."""
        return self.name

    def _cooldown(self) -> str:
        return f"last {1 - self.decay_start / max(self.steps, 1):.0%}"

    if TYPE_CHECKING:  # declared for the checker only: a runtime property would be WSD's field's default

        @property
        def decay_start(self) -> int:
            """The step at which the decay from the peak starts: a property of each type, WSD's a field."""
            ...

    def decay_fraction(self, step, start: int, xp):
        """How far step is from start to the end of the run, in [0, 1]."""
        return xp.clip((step - start) / max(self.steps - start, 1), 0.0, 1.0)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "decay_start": self.decay_start}


@SCHEDULES.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    @property
    def decay_start(self) -> int:
        return self.steps  # never

    def after_warmup(self, peak, step, xp):
        return xp.full_like(step, peak)


@dataclass(frozen=True)
class _Decay(Schedule):
    """Decay from the end of the warmup to peak * min_lr_ratio at the last step."""

    min_lr_ratio: float

    @property
    def decay_start(self) -> int:
        return self.warmup_steps


@SCHEDULES.register("cosine")
@dataclass(frozen=True)
class Cosine(_Decay):
    def after_warmup(self, peak, step, xp):
        end = peak * self.min_lr_ratio
        return end + (peak - end) * 0.5 * (1 + xp.cos(math.pi * self.decay_fraction(step, self.warmup_steps, xp)))

    def label(self) -> str:
        return f"cosine to {self.min_lr_ratio:g}x"


@SCHEDULES.register("linear")
@dataclass(frozen=True)
class Linear(_Decay):
    def after_warmup(self, peak, step, xp):
        end = peak * self.min_lr_ratio
        return peak - (peak - end) * self.decay_fraction(step, self.warmup_steps, xp)

    def label(self) -> str:
        return f"linear to {self.min_lr_ratio:g}x"


@SCHEDULES.register("wsd")
@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay: the peak rate until decay_start, then a cooldown of cooldown_shape
    (linear, or Hagele et al. 2024's 1-sqrt) to peak * min_lr_ratio at the last step."""

    min_lr_ratio: float
    decay_start: int
    cooldown_shape: CooldownShape

    def after_warmup(self, peak, step, xp):
        end = peak * self.min_lr_ratio
        frac = self.decay_fraction(step, self.decay_start, xp)
        shape = 1 - xp.sqrt(frac) if self.cooldown_shape == CooldownShape.ONE_SQRT else 1 - frac
        return end + (peak - end) * shape

    def label(self) -> str:
        return f"wsd, {self.cooldown_shape} cooldown {self._cooldown()}"


@SCHEDULES.register("step")
@dataclass(frozen=True)
class Step(Schedule):
    """Two stages: the peak rate until decay_start, then peak * min_lr_ratio to the end at once
    (the two-stage schedule of Luo et al. 2025's multi-power law fits). decay_start comes from
    train.cooldown_fraction, as WSD's does."""

    min_lr_ratio: float
    decay_start: int

    def after_warmup(self, peak, step, xp):
        return xp.where(step <= self.decay_start, peak, peak * self.min_lr_ratio)

    def label(self) -> str:
        return f"step, {self.min_lr_ratio:g}x for the {self._cooldown()}"
