"""The sweep YAML's schema: typed, frozen, validated sections. Every default a sweep has lives in
the field declarations below (the `eval:` section's in evalspec.py) and nowhere else; the rules
across fields are sweep/rules.py's check().

Reading the YAML file and turning a validation error into one line is sweep/read.py's job.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ..data.corpus import TokenizerKind
from ..data.objectives import OBJECTIVES
from ..data.sources import Source
from ..model.kernels import Precision
from ..model.parametrization import PARAMETRIZATIONS
from ..training.schedules import SCHEDULES, CooldownShape
from ..training.tracking import Tracking
from .evalspec import EvalSpec
from .types import MAX_COUNT, Closed, Count, CurvePoints, Executor, Float, Int, LawName, Method, OneOf, Positive, Seed
from .types import Section as _Section

# Bounds of the settings that size work (a typo such as 1e9 would run until killed) or shapes
# (past them the shape rule's arithmetic overflows): far past any real sweep's.
MAX_BOOTSTRAP = 10_000  # fit.bootstrap, `fit --bootstrap`: ~0.3 s a resample on results/cpu-study (2 busy cores), so ~an hour
MAX_EVALS = 10_000  # train.n_evals: each evaluation scores data.val_tokens (and eval.tasks)
MAX_RATIO = 10_000  # model.mlp_ratio, model.aspect_ratio (and 1/MAX_RATIO for aspect_ratio)
MAX_RUNS = 100_000  # launch.max_runs: planning a run takes about a millisecond, a run's folder some KB
MAX_MEMORY_GB = MAX_COUNT // 2**30  # launch.device_memory_gb, slurm.mem_gb (GiB): their bytes are counted in an int64


class DataSpec(_Section):
    source: Closed[Source] = Source.STDLIB
    """stdlib: the running Python's standard-library sources (no download); text, jsonl, parquet, hf: `path`."""
    path: str | None = None
    """text: a UTF-8 file, or a folder searched recursively for *.txt, *.md, *.py, *.rst; jsonl, parquet:
    a file, or a folder searched for *.jsonl, *.parquet; hf: a folder written by datasets' save_to_disk
    (of a DatasetDict, its train split)."""
    text_field: str = "text"
    """jsonl, parquet, hf: the key (column) holding each document's text."""
    tokenizer: Closed[TokenizerKind] = TokenizerKind.BYTE
    """byte: UTF-8 bytes, 256 ids; bpe: byte-level BPE trained on the training split, cached in
    $SCALINGLAB_CACHE (default ~/.cache/scalinglab)."""
    vocab_size: Int = 4096
    """bpe: token ids, including the <|endoftext|> separator between documents."""
    val_fraction: Float = Field(0.05, gt=0, lt=0.5)
    """Fraction of the corpus held out for validation (every k-th block of bytes, cut before tokenizing)."""
    val_tokens: Int = Field(32_768, ge=1)
    """Held-out tokens scored at every evaluation; the same tokens for every run."""
    U: Count | None = None
    """Unique training tokens: the training split cut to its first U tokens, which every run draws
    its batches from (a run of D tokens sees each about D/U times); null: the whole split. The
    held-out tokens are the same at any U. `scalinglab plan` shows each run's D/U."""


class ModelSpec(_Section):
    seq_len: Int = Field(128, ge=2)
    mlp_ratio: Float = Field(4.0, gt=0, le=MAX_RATIO)
    """d_ff = mlp_ratio * d_model unless a shape gives d_ff."""
    d_head: Int = Field(32, ge=1)
    """Shape rule: n_heads = d_model / d_head."""
    aspect_ratio: Float = Field(32.0, ge=1 / MAX_RATIO, le=MAX_RATIO)
    """Shape rule: d_model ~ aspect_ratio * n_layers."""
    parametrization: Annotated[str, OneOf(PARAMETRIZATIONS.names)] = "sp"
    """sp: standard; mup: maximal update (muP), learning rate transfers across width from base_width;
    u-mup: unit-scaled muP (Blake et al. 2024), unit-variance weights, base lr near 1."""
    base_width: Int = Field(64, ge=1)
    """mup: the d_model at which muP equals the standard init and learning rate."""


class Shape(_Section):
    n_layers: Int = Field(ge=1)
    d_model: Int = Field(ge=1)
    n_heads: Int = Field(ge=1)
    d_ff: Int | None = Field(None, ge=1)


class Point(_Section):
    N: Positive | None = None
    """Target non-embedding parameters; the shape rule picks the shape."""
    shape: Shape | None = None
    """The model's shape, instead of N (a sweep of grid.shapes keeps its family of shapes)."""
    D: Positive
    """Training tokens."""
    lr: Positive | None = None
    """This run's learning rate, instead of train.lr (`scalinglab suggest` writes lr*(N, D))."""
    batch_size: Count | None = None
    """This run's batch size, instead of train.batch_size."""


class ScheduleSetting(_Section):
    """One entry of grid.schedules: a schedule and the settings it reads, each defaulting to train's."""

    schedule: Annotated[str, OneOf(SCHEDULES.names)]
    min_lr_ratio: Float | None = Field(None, ge=0, le=1)
    cooldown_fraction: Float | None = Field(None, gt=0, le=0.5)
    cooldown_shape: Closed[CooldownShape] | None = None

    def overrides(self) -> dict[str, object]:
        """The train settings this entry sets (those it leaves unset stay train's)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class GridSpec(_Section):
    N: list[Positive] | None = None
    """Target non-embedding parameter counts; the shape rule picks (n_layers, d_model, n_heads)."""
    shapes: list[Shape] | None = None
    """Explicit shapes, instead of N."""
    D: list[Positive] | None = None
    """Training tokens."""
    tokens_per_param: list[Positive] | None = None
    """Training tokens as a multiple of each model's N, instead of D."""
    C: list[Positive] | None = None
    """IsoFLOP design, instead of D: compute budgets (FLOPs); every size trains to each budget."""
    lr: list[Positive] | None = None
    """Peak learning rates to try at every (N, D), instead of train.lr: the fits use each cell's
    best, from a parabola in log lr, and fit lr*(C) and lr*(N, D)."""
    batch_size: list[Count] | None = None
    """Batch sizes (sequences) to try at every (N, D), instead of train.batch_size: B*(C) likewise."""
    points: list[Point] | None = None
    """Explicit (N, D) pairs, instead of the N x D product (`scalinglab suggest` writes these)."""
    U: list[Count] | None = None
    """Unique training tokens to try at every (N, D), instead of data.U: each run's training split
    cut to its first U tokens, so the fits see repeated data (D/U epochs)."""
    schedules: list[ScheduleSetting] | None = None
    """Learning-rate schedules to train at every (N, D), instead of train.schedule, each with its own
    min_lr_ratio, cooldown_fraction and cooldown_shape (default: train's): the runs whose whole
    training curves `scalinglab fit --curves` fits one curve law to per size."""


class TrainSpec(_Section):
    objective: Annotated[str, OneOf(OBJECTIVES.names)] = "causal"
    """causal: next-token LM; masked: BERT-style masked LM (bidirectional attention)."""
    mask_fraction: Float = Field(0.15, gt=0, lt=1)
    """masked: share of positions predicted (80% [MASK], 10% random token, 10% unchanged)."""
    batch_size: Int = Field(16, ge=1)
    lr: Float = Field(3e-3, gt=0)
    """Peak learning rate (base learning rate under mup and u-mup)."""
    schedule: Annotated[str, OneOf(SCHEDULES.names)] = "cosine"
    """After warmup: cosine or linear decay to lr * min_lr_ratio, constant, warmup-stable-decay, or
    step (two stages: the peak rate, then lr * min_lr_ratio for the last cooldown_fraction of the steps)."""
    warmup_fraction: Float = Field(0.05, ge=0, lt=1)
    warmup_steps: Int | None = Field(None, ge=0)
    """Warmup length in steps, instead of warmup_fraction of each run's steps."""
    min_lr_ratio: Float = Field(0.1, ge=0, le=1)
    """Decay ends at lr * min_lr_ratio."""
    cooldown_fraction: Float = Field(0.2, gt=0, le=0.5)
    """wsd: the final share of steps in which the learning rate decays; step: at the lower rate."""
    cooldown_shape: Closed[CooldownShape] = CooldownShape.ONE_SQRT
    """wsd: decay shape; 1-sqrt is Hagele et al. 2024's."""
    cooldown_branches: bool = False
    """wsd: one stable run per model size, with a cooldown branched from it for every data size."""
    precision: Closed[Precision] | None = None
    """bf16: bfloat16 compute with float32 master weights and optimizer state; fp32: float32 compute
    (on NVIDIA GPUs TF32 matmuls, and XLA's attention with its full score matrix). Default: bf16
    where the sweep's jobs get accelerators (launch.gpus_per_job > 0, or a TPU VM), fp32 on CPUs."""
    checkpoint_interval_s: Float = Field(600.0, ge=0)
    """Save a checkpoint (orbax) when this many seconds have passed since the last; 0: every step."""
    keep_weights: bool = True
    """Keep each finished run's parameters (runs/<id>/weights.safetensors, 4 bytes a parameter)
    for `scalinglab export` and `sample`; false: deleted with the checkpoint."""
    weight_decay: Float = Field(0.1, ge=0)
    grad_clip: Float = Field(1.0, gt=0)
    b1: Float = Field(0.9, ge=0, lt=1)
    b2: Float = Field(0.95, ge=0, lt=1)
    n_evals: Int = Field(8, ge=1, le=MAX_EVALS)
    """Validation evaluations per run, evenly spaced; the last is at the final step (a run of fewer
    steps is evaluated at every step)."""
    log_every: Int | None = Field(None, ge=1)
    """Steps between two points of the training curve in metrics.jsonl (the learning rate, the mean
    training loss since the last point and a smoothed one), counted back from the last step;
    default: about 1% of each run's steps."""
    microbatch_size: Int | None = Field(None, ge=1)
    """Rows per forward/backward pass: the batch's gradients are accumulated (in float32) over
    batch_size / microbatch_size passes, one optimizer step; the same step, in less memory."""
    remat: bool = False
    """Recompute each block's activations in the backward pass instead of keeping them: less
    memory, about a third more compute."""
    fsdp: Int = Field(1, ge=1)
    """Devices each parameter, gradient and optimizer state is sharded over (the mesh's fsdp axis;
    its data axis is the run's devices / fsdp): 1 replicates them on every device. The same step,
    in less memory per device."""


# Cores a GPU task gets unless slurm.cpus_per_task says: its host work (dispatching steps, building
# its batch rows, driving collectives, writing checkpoints) on one core would hold the GPUs back.
GPU_TASK_CPUS = 8


class SlurmSpec(_Section):
    """sbatch resources of each job of a sweep (one job array per sweep)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: Int = Field(60, ge=1)
    """Time limit of a job; a job that reaches it saves a checkpoint and is requeued."""
    nodes: Int = Field(1, ge=1)
    """Nodes per job: one run over all of them (one process per task, JAX's distributed runtime)."""
    tasks_per_node: Int | None = Field(None, ge=1)
    """Processes per node, each given launch.gpus_per_job / tasks_per_node GPUs; default: one per
    GPU (launch.gpus_per_job), or one on a CPU node."""
    cpus_per_task: Int | None = Field(None, ge=1)
    """CPU cores of each process (--cpus-per-task); default: GPU_TASK_CPUS for a GPU task (host
    work: dispatch, input batches, collectives), 1 on a CPU node."""
    mem_gb: Float | None = Field(None, gt=0, le=MAX_MEMORY_GB)
    constraint: str | None = None
    setup: list[str] = []
    """Shell lines run before each job, e.g. [module load cuda/12.4, source ~/venv/bin/activate]."""
    extra: dict[str, str] = {}
    """Further sbatch flags, without the dashes, e.g. {mail-user: me@lab.org, exclusive: user}."""
    max_requeues: Int = Field(3, ge=0)
    """Times a run is requeued after preemption or its time limit before it is marked failed."""


class LaunchSpec(_Section):
    executor: Closed[Executor] = Executor.LOCAL
    tracking: Closed[Tracking] = Tracking.NONE
    """Also log every evaluation's figures: tensorboard (runs/<id>/tensorboard/), or wandb (offline,
    runs/<id>/wandb/; needs `pip install wandb`)."""
    max_runs: Int = Field(1000, ge=1, le=MAX_RUNS)
    """Refuse a grid of more runs than this (a typo such as D: [1e6, 2e6, ...] of 1,000 values)."""
    max_parallel: Int | None = Field(None, ge=1)
    """Jobs at once; default: cores // threads_per_job (local), 1 (debug), unlimited (slurm)."""
    threads_per_job: Int = Field(1, ge=1)
    """CPU threads per local job. One job per core was measured fastest on 2 cores."""
    gpus_per_job: Int = Field(0, ge=0)
    """GPUs per job (local: disjoint GPUs per job; slurm: --gpus-per-node); a job uses all it gets."""
    jobs_per_gpu: Int = Field(1, ge=1)
    """local, gpus_per_job 1: jobs sharing each GPU, each with 1/jobs_per_gpu of its memory (small
    models leave a big GPU idle)."""
    device_memory_gb: Float | None = Field(None, gt=0, le=MAX_MEMORY_GB)
    """Memory of one job's device (a GPU's, or the CPU's for CPU jobs), for plan's check that every
    run fits; default: the local GPU's, or this machine's memory (slurm: slurm.mem_gb)."""
    slurm: SlurmSpec = SlurmSpec()

    @property
    def tasks_per_node(self) -> int:
        """Processes of one run on each node: slurm.tasks_per_node, or one per GPU, or one."""
        return self.slurm.tasks_per_node or max(1, self.gpus_per_job)

    @property
    def cpus_per_task(self) -> int:
        """Cores of each process: slurm.cpus_per_task, or GPU_TASK_CPUS for a GPU task, or one."""
        return self.slurm.cpus_per_task or (GPU_TASK_CPUS if self.gpus_per_job else 1)

    @property
    def processes(self) -> int:
        """Processes that train one run together (JAX's distributed runtime when more than one)."""
        return self.slurm.nodes * self.tasks_per_node if self.executor == Executor.SLURM else 1

    @property
    def devices(self) -> int:
        """Devices of one run: its GPUs on every node, or one CPU device per process."""
        return (
            self.slurm.nodes * self.gpus_per_job
            if self.gpus_per_job and self.executor == Executor.SLURM
            else (self.gpus_per_job or self.processes)
        )


def _listed(value):
    """fit.law: one name stands for a list of one."""
    return value if isinstance(value, list) else [value]


def _auto_alone(names: list[LawName]) -> list[LawName]:
    if LawName.AUTO in names and len(names) > 1:
        raise PydanticCustomError("auto_alone", "auto chooses among every family; give it alone, or list the families to choose among")
    if len(set(names)) < len(names):
        raise PydanticCustomError("law_twice", "a family is named twice")
    return names


class FitSpec(_Section):
    law: Annotated[list[Closed[LawName]], BeforeValidator(_listed), AfterValidator(_auto_alone), Field(min_length=1)] = [LawName.AUTO]
    """The law of the loss: auto (every family the runs can fit, the one with the lowest rolling-origin
    backtest error chosen), one family, or a list of families to choose among the same way."""
    pin_E: Positive | None = None
    """power_C: its irreducible loss E, pinned at this value instead of fitted."""
    backtest_origins: Int = Field(4, ge=1, le=20)
    """Choosing a law: how many rolling origins (fit on the runs up to one, predict the rest)."""
    huber_delta: Float = Field(1e-3, gt=0)
    """Huber threshold on log-loss residuals for the L(N,D) fit (Hoffmann et al. 2022)."""
    method: Closed[Method] = Method.VARPRO
    """varpro: variable projection (fast); grid: L-BFGS-B from Hoffmann's 4,500 starts (minutes)."""
    bootstrap: Int = Field(200, ge=0, le=MAX_BOOTSTRAP)
    """Bootstrap resamples of the runs for confidence intervals (0: none)."""
    holdout_fraction: Float = Field(0.2, ge=0, lt=1)
    """Extrapolation check: the largest runs by `holdout_by` held out of the fit and predicted."""
    holdout_by: Literal["C", "N", "D"] = "C"
    curve_points: Closed[CurvePoints] = CurvePoints.OFF
    """off; on: each size's multi-power curve law (fitted to its runs' validation-loss curves) adds
    predicted final losses at lengths between its trained ones to the L(N,D) fit; auto: only where
    they lower the chosen law's backtest error (docs/fitting.md, Curve-law points)."""


class SweepSpec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", max_length=100)
    """The results folder's name: letters, digits, '_', '-', '.'; not starting with '.'."""
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    grid: GridSpec
    seeds: list[Seed] = Field([0], min_length=1)
    """One run of every grid point per seed (initialization and data order); each in [0, 2^32)."""
    eval: EvalSpec = EvalSpec()
    launch: LaunchSpec = LaunchSpec()
    fit: FitSpec = FitSpec()
