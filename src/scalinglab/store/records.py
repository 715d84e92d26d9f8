"""What each results file must hold, as pydantic models: the one definition of a well-formed
run.json, summary.json, evaluation line, task-score line and requeue record. A file that parses as
JSON but does not validate (a number written as a string, a list where an object belongs, a count
of 0 or -5, a NaN loss, a status scalinglab never writes) is damaged exactly like one that does not
parse: the readers in runs.py report it and go on. Strict types: JSON gives numbers as numbers, so
"5" where a count belongs is damage, not a number to coerce. Keys a newer scalinglab writes are
kept as they are (extra="allow"); every key this one writes is typed here (tests/test_records.py
holds run.json's to the planner's records). No JAX."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


class Status(StrEnum):
    """A run's state. summary.json records done, diverged, failed or preempted (its job stopped to
    be requeued); the others are read off the run's files and its job: pending (no summary),
    running, cancelled (launch/jobs.py), damaged (run.json or summary.json cannot be read)."""

    PENDING = "pending"
    RUNNING = "running"
    PREEMPTED = "preempted"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DAMAGED = "damaged"


RECORDED = (Status.DONE, Status.DIVERGED, Status.FAILED, Status.PREEMPTED)  # what summary.json may say


class Role(StrEnum):
    """A run's part in its sweep, as run.json records it (the planner sets it): run, a point of the
    grid; trunk, the shared stable phase of cooldown branches, which `load` leaves out of the fits."""

    RUN = "run"
    TRUNK = "trunk"


Count = Annotated[int, Field(strict=True, ge=1)]
Index = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Share = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Text = Annotated[str, Field(strict=True)]
Name = Annotated[str, Field(strict=True, min_length=1)]


def _positive_or_diverged(x: float) -> float:
    """A loss: positive, or not finite where training diverged (the run says so in its status)."""
    if math.isfinite(x) and x <= 0:
        raise ValueError("a loss must be positive")
    return x


Loss = Annotated[float, Field(strict=True), AfterValidator(_positive_or_diverged)]
AnyFloat = Annotated[float, Field(strict=True)]  # NaN allowed: a diverged run's last training loss


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    what: ClassVar[str]

    @classmethod
    def check(cls, obj: Any) -> str | None:
        """None if obj is a valid record, else what is wrong, in one line naming the first bad key."""
        if not isinstance(obj, dict):
            return f"not a JSON object ({type(obj).__name__})"
        try:
            cls.model_validate(obj)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or cls.what
            value = repr(err["input"])
            msg = err["msg"].removeprefix("Value error, ")  # a validator's own words, as they are
            return f"{where}: {msg[:1].lower() + msg[1:]} (found {value[:40] + '...' if len(value) > 40 else value})"
        return None


class RunRecord(Record):
    """run.json: RunSpec.record(), one flat record of the run's spec."""

    what = "run.json"
    N: Count
    N_total: Count
    D: Count
    C: Positive
    flops_per_token: Count
    steps: Count
    seed: Index
    n_layers: Count
    d_model: Count
    n_heads: Count
    d_ff: Count
    seq_len: Count
    vocab_size: Count
    batch_size: Count
    lr: Positive
    b1: Share
    b2: Share
    weight_decay: NonNegative
    grad_clip: NonNegative
    warmup_steps: Index
    decay_start: Index | None = None
    min_lr_ratio: Share | None = None
    cooldown_shape: Text | None = None
    schedule: Name
    parametrization: Name
    base_width: Count | None = None
    objective: Name
    mask_fraction: Share | None = None
    precision: Name
    role: Role = Role.RUN
    trunk_id: Name | None = None
    branch_steps: list[Count] = []
    checkpoint_interval_s: Positive
    data_source: Name
    data_path: Text | None = None
    data_content: Text | None = None
    text_field: Text
    tokenizer: Name
    tokenizer_vocab: Count
    val_fraction: Share
    U: Count | None = None
    eval_steps: Annotated[list[Count], Field(min_length=1)]
    val_tokens: Count
    eval_tasks: list[dict[str, Any]] = []
    eval_task_files: list[list[Text | None] | None] = []  # [test file, fewshot file or None] of a user task
    task_steps: list[Count] = []
    num_fewshot: list[Index] = []
    strategies: list[Name] = []
    test_items: Count | None = None
    pool_items: Index | None = None
    microbatch_size: Count | None = None
    remat: bool = False
    fsdp: Count = 1
    keep_weights: bool = True
    tracking: Name = "none"
    log_every: Count | None = None


class Measured(Record):
    """What an evaluation measures, and the summary repeats for the run's last one."""

    bpb: Loss | None = None
    train_loss: AnyFloat | None = None
    tokens_per_s: NonNegative | None = None
    mfu: NonNegative | None = None
    mfu_palm: NonNegative | None = None
    task_s: NonNegative | None = None


class Summary(Measured):
    """summary.json: how the run ended (training.loop's summary, or a recorded failure)."""

    what = "summary.json"
    status: Status
    L: Loss | None = None
    peak_flops: Positive | None = None
    compile_s: NonNegative | None = None
    wall_s: NonNegative | None = None
    resumed_from: Index | None = None
    val_tokens_scored: Index | None = None
    U: Count | None = None
    platform: Text | None = None
    device_kind: Text | None = None
    n_devices: Count | None = None
    n_processes: Count | None = None
    fsdp: Count | None = None
    attention: Text | None = None
    layers: Text | None = None
    cuda_visible_devices: Text | None = None
    slurm_job_id: Text | None = None
    pid: Index | None = None
    cpu_cores: list[Index] | None = None
    step: Index | None = None
    error: Text | None = None
    traceback: Text | None = None

    @model_validator(mode="after")
    def _as_written(self) -> Summary:
        if self.status not in RECORDED:
            raise ValueError(f"status {self.status.value} is never written to summary.json")
        if self.status == Status.DONE and (self.L is None or not math.isfinite(self.L)):
            raise ValueError("a done run has a finite final loss L")
        return self


class Evaluation(Measured):
    """A line of metrics.jsonl with a validation loss L."""

    what = "evaluation"
    step: Count
    tokens: Count
    L: Loss
    step_lr: NonNegative | None = None
    """The (base) learning rate of this step's update; `lr` in run.json is the peak."""
    elapsed_s: NonNegative | None = None


class CurvePoint(Record):
    """A line of metrics.jsonl without L: a point of the training curve (train.log_every)."""

    what = "curve point"
    step: Count
    tokens: Count
    step_lr: NonNegative
    """The (base) learning rate of this step's update."""
    train_loss: AnyFloat
    """The mean training loss of the n_steps steps up to this one."""
    train_loss_ema: AnyFloat
    """The training loss smoothed over about one interval (bias-corrected exponential average)."""
    n_steps: Count


class TaskScore(Record):
    """One line of tasks.jsonl: a (task, shots, strategy) at one evaluation, with its test items."""

    what = "task score"
    step: Count
    tokens: Count
    task: Name
    kind: Name | None = None
    shots: Index
    strategy: Name
    acc: Share
    acc_norm: Share | None = None
    task_loss: NonNegative | None = None
    task_bpb: NonNegative | None = None
    p_gold: Share | None = None
    exact_match: Share | None = None
    token_acc: Share | None = None
    chance: Share | None = None
    n_items: Count | None = None
    acc_se: NonNegative | None = None
    items: list[Text | Index] | None = None
    item_acc: list[Share | None] | None = None
    item_score: list[AnyFloat | None] | None = None
    demos: list[list[Text | Index]] | None = None

    @model_validator(mode="after")
    def _items_line_up(self) -> TaskScore:
        lengths = {len(x) for x in (self.items, self.item_acc, self.item_score, self.demos) if x is not None}
        if len(lengths) > 1:
            raise ValueError("items, item_acc, item_score and demos differ in length")
        return self


class Requeues(Record):
    """requeues.json: how often the run's job was requeued, and the step it saved last."""

    what = "requeues.json"
    count: Index
    saved_step: Index | None = None
