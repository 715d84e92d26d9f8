"""The run spec: everything one job needs to train, evaluate and write a run, nested by what uses
it (model, optimizer and schedule, data, evaluation). The planner builds it; `build_model(run.model)`,
`build_optimizer(run.optim, ...)` and `load_corpus(run.data)` read their own part.

On disk (run.json) and in the run id a run spec is one flat record, one key per field, so pandas
reads it as columns; `record()` and `from_record()` convert, field by field through the types, so
a new field needs no code here (one with metadata "only_when_set" is left out while it is None).
Run ids are a hash of that record and must never change for results already on disk
(tests/test_ids.py holds ids of every kind of run)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..choices import Choice
from ..data.corpus import TokenizerKind
from ..data.objectives import Objective
from ..data.sources import Source
from ..model.counts import param_shapes
from ..model.kernels import Precision
from ..model.parametrization import Parametrization
from ..store.runs import Role
from ..training.schedules import Schedule
from ..training.tracking import Tracking
from .evalspec import EvalSpec
from .spec import ModelSpec, TrainSpec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class ModelConfig:
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    seq_len: int
    vocab_size: int
    """Token ids the model embeds: the tokenizer's, plus [MASK] for the masked objective."""
    parametrization: Parametrization
    objective: Objective
    """What the model learns to predict; it sets the attention mask and the [MASK] id."""

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return param_shapes(self.n_layers, self.d_model, self.d_ff, self.seq_len, self.vocab_size)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with decoupled weight decay on matrices, global-norm clipping, the schedule's rate."""

    lr: float
    """Peak learning rate (the base rate under mup and u-mup)."""
    b1: float
    b2: float
    weight_decay: float
    grad_clip: float
    schedule: Schedule


@dataclass(frozen=True)
class DataConfig:
    # metadata "key": a field's record key where it differs from its name (the keys predate the nesting)
    source: Source = field(metadata={"key": "data_source"})
    path: str | None = field(metadata={"key": "data_path"})
    """Absolute; where the corpus is read from, not part of the run id."""
    text_field: str
    tokenizer: TokenizerKind
    vocab_size: int = field(metadata={"key": "tokenizer_vocab"})
    """Token ids the tokenizer emits."""
    val_fraction: float
    content: str | None = field(default=None, metadata={"key": "data_content"})
    """The corpus files' fingerprint (data.sources.fingerprint); None for the built-in corpus."""
    U: int | None = field(default=None, metadata={"only_when_set": True})
    """The training split cut to its first U tokens (data.U, grid.U); None: the whole split. In
    the record, and so in the run id, only when set: runs on the whole split keep their ids."""


def _eval_default(name: str):
    """A task setting absent from records written before tasks existed: the eval section's default."""
    default = EvalSpec.model_fields[name].default
    return field(default=tuple(default) if isinstance(default, list) else default, metadata={"key": name})


@dataclass(frozen=True)
class EvalConfig:
    steps: tuple[int, ...] = field(metadata={"key": "eval_steps"})
    """Steps at which the validation loss is measured; the last is the run's final step."""
    val_tokens: int
    """Held-out tokens scored at every evaluation; the same for every run."""
    tasks: tuple[dict, ...] = field(default=(), metadata={"key": "eval_tasks"})
    """Downstream tasks: {"name"} for a built-in, a user task's settings and its files' "content"."""
    task_files: tuple[list | None, ...] = field(default=(), metadata={"key": "eval_task_files"})
    """Per task, a user task's [test, fewshot] files (absolute), None for a built-in; not in the id."""
    task_steps: tuple[int, ...] = field(default=(), metadata={"key": "task_steps"})
    """The evaluations at which the tasks are scored."""
    num_fewshot: tuple[int, ...] = _eval_default("num_fewshot")
    strategies: tuple[str, ...] = _eval_default("strategies")
    test_items: int = _eval_default("test_items")
    pool_items: int = _eval_default("pool_items")


# Record keys that do not change what a run computes: left out of its id.
NOT_IDENTITY = (
    "checkpoint_interval_s", "data_path", "microbatch_size", "remat", "fsdp", "eval_task_files", "keep_weights", "tracking",
    "log_every",
)  # fmt: skip
# A run without tasks has the id it had before tasks existed: these keys then stay out of it.
TASK_KEYS = ("eval_tasks", "task_steps", "num_fewshot", "strategies", "test_items", "pool_items")
# Keys every record had before the nesting, for choices that no longer hold them (a constant
# schedule has no cooldown shape): their defaults, so that such runs keep their ids. The spec
# refuses them set to anything else where they are unused (rules._USED_ONLY_WITH).
UNUSED_DEFAULTS = {
    "base_width": ModelSpec.model_fields["base_width"].default,
    "mask_fraction": TrainSpec.model_fields["mask_fraction"].default,
    "min_lr_ratio": TrainSpec.model_fields["min_lr_ratio"].default,
    "cooldown_shape": TrainSpec.model_fields["cooldown_shape"].default,
}


@dataclass(frozen=True)
class RunSpec:
    model: ModelConfig
    optim: OptimConfig
    data: DataConfig
    eval: EvalConfig
    batch_size: int
    precision: Precision
    seed: int
    role: Role
    trunk_id: str | None
    """For a cooldown branch: the trunk run it starts from, at its schedule's decay_start."""
    branch_steps: tuple[int, ...]
    """For a trunk: the steps its branches start from; kept as checkpoints."""
    checkpoint_interval_s: float
    # Derived from the fields above (kept so results are readable without the planner).
    N: int
    N_total: int
    D: int
    flops_per_token: int
    C: float
    # How the step is computed, not what: the same run, in less memory.
    microbatch_size: int | None = None
    """Rows per forward/backward pass; gradients accumulate over batch_size / microbatch_size."""
    remat: bool = False
    """Recompute each block's activations in the backward pass."""
    fsdp: int = 1
    """Devices the parameters and optimizer state are sharded over; 1: replicated."""
    keep_weights: bool = True
    """Keep the finished run's parameters (runs/<id>/weights.safetensors)."""
    tracking: Tracking = Tracking.NONE
    """launch.tracking: where each evaluation's figures are also logged."""
    log_every: int | None = field(default=None, metadata={"only_when_set": True})
    """train.log_every: steps between two points of the training curve; None: curve_every's default."""

    @property
    def steps(self) -> int:
        return self.optim.schedule.steps

    @property
    def curve_every(self) -> int:
        """Steps between two points of the training curve in metrics.jsonl: train.log_every, or
        about 1% of the run's steps."""
        return self.log_every or max(1, round(self.steps / 100))

    def is_curve_step(self, step: int) -> bool:
        """Whether the training curve gets a point at `step`: every curve_every steps counted back
        from the last, so the last point averages a whole interval, not a remainder of a few noisy
        batches (on the built-in corpus 6 batches read 15% off the validation loss); a partial
        interval, if any, is the first."""
        return (self.steps - step) % self.curve_every == 0

    @property
    def start_step(self) -> int:
        """The step training starts from: a branch begins where it leaves its trunk."""
        return self.optim.schedule.decay_start if self.trunk_id else 0

    @property
    def job_flops(self) -> float:
        """FLOPs this run's own job spends: a branch shares its first steps with its trunk."""
        return self.C * (self.steps - self.start_step) / self.steps

    @property
    def run_id(self) -> str:
        """A deterministic hash of the resolved spec: same spec, same id, same folder."""
        identity = {k: v for k, v in self.record().items() if k not in NOT_IDENTITY}
        if not self.eval.tasks:
            identity = {k: v for k, v in identity.items() if k not in TASK_KEYS}
        # A corpus is known by its content, not by where it lies: moving it keeps the ids. The
        # content takes data_path's old place, so runs on the built-in corpus (neither) keep theirs.
        identity["data_path"] = identity.pop("data_content")
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def record(self) -> dict[str, Any]:
        """The flat record: run.json, the DataFrame's columns, the run id's input."""
        return {**UNUSED_DEFAULTS, **_flatten(self)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunSpec:
        return _unflatten(cls, record)


def _flatten(obj: DataclassInstance) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items: Iterable[tuple[str, Any]]
        if isinstance(value, Choice):
            items = value.record().items()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # a section (an instance)
            items = _flatten(value).items()
        elif value is None and f.metadata.get("only_when_set"):
            items = []
        else:
            items = [(f.metadata.get("key", f.name), list(value) if isinstance(value, tuple) else value)]
        for k, v in items:
            if out.get(k, v) != v:  # a key is one field: two parts must not both claim it
                raise ValueError(f"record key {k!r}: {out[k]!r} and {v!r}")
            out[k] = v
    return out


def _unflatten(cls, record: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if isinstance(t, type) and issubclass(t, Choice):
            kwargs[f.name] = t.registry.from_record(record)
        elif dataclasses.is_dataclass(t):
            kwargs[f.name] = _unflatten(t, record)
        elif f.metadata.get("key", f.name) in record:
            value = record[f.metadata.get("key", f.name)]
            if isinstance(t, type) and issubclass(t, Enum):  # run.json holds its value: the member, as planned
                value = t(value)
            kwargs[f.name] = tuple(value) if typing.get_origin(t) is tuple else value
    return cls(**kwargs)
