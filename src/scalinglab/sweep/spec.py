"""The sweep YAML's schema: typed, frozen, validated sections. Every default a sweep has lives in
the field declarations below (the `eval:` section's in evalspec.py) and nowhere else; the rules
across fields are in check().

Reading the YAML file and turning a validation error into one line is sweep/read.py's job.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..data.corpus import TokenizerKind
from ..data.objectives import OBJECTIVES
from ..data.sources import Source
from ..errors import SpecError
from ..model.kernels import Precision
from ..model.parametrization import PARAMETRIZATIONS
from ..training.schedules import SCHEDULES, WSD, CooldownShape
from ..training.tracking import Tracking
from .evalspec import EvalSpec, check_eval
from .sbatch import check_extra
from .types import Count, Executor, Float, Int, Method, Positive, closed, one_of
from .types import Section as _Section

MIN_BPE_VOCAB = 258  # 256 byte symbols, <|endoftext|>, one merge
ISOFLOP_MIN_RATIO = 1.25


class DataSpec(_Section):
    source: closed(Source) = Source.STDLIB
    """stdlib: the running Python's standard-library sources (no download); text, jsonl, parquet, hf: `path`."""
    path: str | None = None
    """text: a UTF-8 file, or a folder searched recursively for *.txt, *.md, *.py, *.rst; jsonl, parquet:
    a file, or a folder searched for *.jsonl, *.parquet; hf: a folder written by datasets' save_to_disk
    (of a DatasetDict, its train split)."""
    text_field: str = "text"
    """jsonl, parquet, hf: the key (column) holding each document's text."""
    tokenizer: closed(TokenizerKind) = TokenizerKind.BYTE
    """byte: UTF-8 bytes, 256 ids; bpe: byte-level BPE trained on the training split, cached in
    $SCALINGLAB_CACHE (default ~/.cache/scalinglab)."""
    vocab_size: Int = 4096
    """bpe: token ids, including the <|endoftext|> separator between documents."""
    val_fraction: Float = Field(0.05, gt=0, lt=0.5)
    """Fraction of the corpus held out for validation (every k-th block of bytes, cut before tokenizing)."""
    val_tokens: Int = Field(32_768, ge=1)
    """Held-out tokens scored at every evaluation; the same tokens for every run."""


class ModelSpec(_Section):
    seq_len: Int = Field(128, ge=2)
    mlp_ratio: Float = Field(4.0, gt=0)
    """d_ff = mlp_ratio * d_model unless a shape gives d_ff."""
    d_head: Int = Field(32, ge=1)
    """Shape rule: n_heads = d_model / d_head."""
    aspect_ratio: Float = Field(32.0, gt=0)
    """Shape rule: d_model ~ aspect_ratio * n_layers."""
    parametrization: one_of(PARAMETRIZATIONS.names) = "sp"
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


class TrainSpec(_Section):
    objective: one_of(OBJECTIVES.names) = "causal"
    """causal: next-token LM; masked: BERT-style masked LM (bidirectional attention)."""
    mask_fraction: Float = Field(0.15, gt=0, lt=1)
    """masked: share of positions predicted (80% [MASK], 10% random token, 10% unchanged)."""
    batch_size: Int = Field(16, ge=1)
    lr: Float = Field(3e-3, gt=0)
    """Peak learning rate (base learning rate under mup and u-mup)."""
    schedule: one_of(SCHEDULES.names) = "cosine"
    """After warmup: cosine or linear decay to lr * min_lr_ratio, constant, or warmup-stable-decay."""
    warmup_fraction: Float = Field(0.05, ge=0, lt=1)
    warmup_steps: Int | None = Field(None, ge=0)
    """Warmup length in steps, instead of warmup_fraction of each run's steps."""
    min_lr_ratio: Float = Field(0.1, ge=0, le=1)
    """Decay ends at lr * min_lr_ratio."""
    cooldown_fraction: Float = Field(0.2, gt=0, le=0.5)
    """wsd: the final share of steps in which the learning rate decays."""
    cooldown_shape: closed(CooldownShape) = CooldownShape.ONE_SQRT
    """wsd: decay shape; 1-sqrt is Hagele et al. 2024's."""
    cooldown_branches: bool = False
    """wsd: one stable run per model size, with a cooldown branched from it for every data size."""
    precision: closed(Precision) = Precision.FP32
    """bf16: bfloat16 compute with float32 master weights and optimizer state."""
    checkpoint_interval_s: Float = Field(600.0, ge=0)
    """Save a checkpoint (orbax) when this many seconds have passed since the last; 0: every step."""
    keep_weights: bool = True
    """Keep each finished run's parameters (runs/<id>/weights.safetensors, 4 bytes a parameter)
    for `scalinglab export` and `sample`; false: deleted with the checkpoint."""
    weight_decay: Float = Field(0.1, ge=0)
    grad_clip: Float = Field(1.0, gt=0)
    b1: Float = Field(0.9, ge=0, lt=1)
    b2: Float = Field(0.95, ge=0, lt=1)
    n_evals: Int = Field(8, ge=1)
    """Validation evaluations per run, evenly spaced; the last is at the final step."""
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
    cpus_per_task: Int = Field(1, ge=1)
    mem_gb: Float | None = Field(None, gt=0)
    constraint: str | None = None
    setup: list[str] = []
    """Shell lines run before each job, e.g. [module load cuda/12.4, source ~/venv/bin/activate]."""
    extra: dict[str, str] = {}
    """Further sbatch flags, without the dashes, e.g. {mail-user: me@lab.org, exclusive: user}."""
    max_requeues: Int = Field(3, ge=0)
    """Times a run is requeued after preemption or its time limit before it is marked failed."""


class LaunchSpec(_Section):
    executor: closed(Executor) = Executor.LOCAL
    tracking: closed(Tracking) = Tracking.NONE
    """Also log every evaluation's figures: tensorboard (runs/<id>/tensorboard/), or wandb (offline,
    runs/<id>/wandb/; needs `pip install wandb`)."""
    max_runs: Int = Field(1000, ge=1)
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
    device_memory_gb: Positive | None = None
    """Memory of one job's device (a GPU's, or the CPU's for CPU jobs), for plan's check that every
    run fits; default: the local GPU's, or this machine's memory (slurm: slurm.mem_gb)."""
    slurm: SlurmSpec = SlurmSpec()

    @property
    def tasks_per_node(self) -> int:
        """Processes of one run on each node: slurm.tasks_per_node, or one per GPU, or one."""
        return self.slurm.tasks_per_node or max(1, self.gpus_per_job)

    @property
    def processes(self) -> int:
        """Processes that train one run together (JAX's distributed runtime when more than one)."""
        return self.slurm.nodes * self.tasks_per_node if self.executor == Executor.SLURM else 1

    @property
    def devices(self) -> int:
        """Devices of one run: its GPUs on every node, or one CPU device per process."""
        return self.slurm.nodes * self.gpus_per_job if self.gpus_per_job and self.executor == Executor.SLURM else (
            self.gpus_per_job or self.processes)


class FitSpec(_Section):
    huber_delta: Float = Field(1e-3, gt=0)
    """Huber threshold on log-loss residuals for the L(N,D) fit (Hoffmann et al. 2022)."""
    method: closed(Method) = Method.VARPRO
    """varpro: variable projection (fast); grid: L-BFGS-B from Hoffmann's 4,500 starts (minutes)."""
    bootstrap: Int = Field(200, ge=0)
    """Bootstrap resamples of the runs for confidence intervals (0: none)."""
    holdout_fraction: Float = Field(0.2, ge=0, lt=1)
    """Extrapolation check: the largest runs by `holdout_by` held out of the fit and predicted."""
    holdout_by: Literal["C", "N", "D"] = "C"


class SweepSpec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", max_length=100)
    """The results folder's name: letters, digits, '_', '-', '.'; not starting with '.'."""
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    grid: GridSpec
    seeds: list[Int] = Field([0], min_length=1)
    eval: EvalSpec = EvalSpec()
    launch: LaunchSpec = LaunchSpec()
    fit: FitSpec = FitSpec()


def is_set(section: BaseModel, field: str) -> bool:
    """Whether a field differs from its default (a default value is not an error: a dumped spec
    must parse again)."""
    return getattr(section, field) != type(section).model_fields[field].default


# Settings that only one choice reads: (section, field, the choosing field, the choices that read it).
# Given with another choice they would be ignored, so they are refused.
_USED_ONLY_WITH = (
    ("data", "text_field", "source", (Source.JSONL, Source.PARQUET, Source.HF)),
    ("data", "vocab_size", "tokenizer", (TokenizerKind.BPE,)),
    ("model", "base_width", "parametrization", PARAMETRIZATIONS.having("base_width")),
    ("train", "mask_fraction", "objective", OBJECTIVES.having("mask_fraction")),
    ("train", "min_lr_ratio", "schedule", SCHEDULES.having("min_lr_ratio")),
    ("train", "cooldown_fraction", "schedule", (WSD.name,)),  # the planner's decay_start of a WSD schedule
    ("train", "cooldown_shape", "schedule", SCHEDULES.having("cooldown_shape")),
)


def _check_unused(spec: SweepSpec) -> None:
    for section, field, chooser, users in _USED_ONLY_WITH:
        s = getattr(spec, section)
        if is_set(s, field) and getattr(s, chooser) not in users:
            only = ", ".join(f"'{u}'" for u in users[:-1]) + " or " * (len(users) > 1) + f"'{users[-1]}'"
            raise SpecError(f"{section}.{field}: not used with {section}.{chooser} '{getattr(s, chooser)}', "
                            f"only with {only}; remove it or change {section}.{chooser}")


def _check_points(spec: SweepSpec) -> None:
    g = spec.grid
    given = [k for k in ("N", "shapes", "D", "tokens_per_param", "C") if getattr(g, k) is not None]
    if given:
        raise SpecError(f"grid.{given[0]}: not used with grid.points, which gives each run's N and D; remove one of them")
    if not g.points:
        raise SpecError("grid.points: empty list; give at least one {N, D}")
    for i, p in enumerate(g.points):
        if (p.N is None) == (p.shape is None):
            raise SpecError(f"grid.points[{i}]: give exactly one of 'N' (a target size) or 'shape', and D")
        if p.shape and p.shape.d_model % p.shape.n_heads:
            raise SpecError(f"grid.points[{i}].shape.n_heads: d_model {p.shape.d_model} is not divisible by n_heads {p.shape.n_heads}")
    for key in ("lr", "batch_size"):
        if getattr(g, key) is not None and any(getattr(p, key) for p in g.points):
            raise SpecError(f"grid.{key}: not used with a grid.points entry that gives its own {key}; remove one of them")
    if len(g.points) * len(spec.seeds) > spec.launch.max_runs:
        raise SpecError(f"grid.points: {len(g.points) * len(spec.seeds):,} runs (points x seeds) is more than "
                        f"launch.max_runs {spec.launch.max_runs:,}; shorten the list or raise the limit")


def _check_product(spec: SweepSpec) -> None:
    g = spec.grid
    if (g.N is None) == (g.shapes is None):
        raise SpecError("grid: give exactly one of 'N' (target sizes) or 'shapes' (or 'points', (N, D) pairs)")
    if sum(x is not None for x in (g.D, g.tokens_per_param, g.C)) != 1:
        raise SpecError("grid: give exactly one of 'D' (tokens), 'tokens_per_param' or 'C' (IsoFLOP budgets)")
    for key in ("N", "shapes", "D", "tokens_per_param", "C", "lr", "batch_size"):
        if getattr(g, key) == []:
            raise SpecError(f"grid.{key}: empty list; give at least one value")
    for key in ("lr", "batch_size"):
        if getattr(g, key) is not None and is_set(spec.train, key):
            raise SpecError(f"train.{key} and grid.{key}: give the {key} in one place; remove train.{key}")
        if len(set(getattr(g, key) or [])) != len(getattr(g, key) or []):
            raise SpecError(f"grid.{key}: {getattr(g, key)} repeats a value")
    budgets = sorted(g.C or [])
    for lo, hi in zip(budgets, budgets[1:]):
        if hi < ISOFLOP_MIN_RATIO * lo:  # runs are grouped into budgets by gaps in C
            raise SpecError(f"grid.C: budgets {lo:.3g} and {hi:.3g} are closer than {ISOFLOP_MIN_RATIO}x; space them further apart")
    for i, s in enumerate(g.shapes or []):
        if s.d_model % s.n_heads:
            raise SpecError(f"grid.shapes[{i}].n_heads: d_model {s.d_model} is not divisible by n_heads {s.n_heads}")
    n_runs = (len(g.N or g.shapes) * len(g.D or g.tokens_per_param or g.C) * len(g.lr or [0])
              * len(g.batch_size or [0]) * len(spec.seeds))
    if n_runs > spec.launch.max_runs:
        raise SpecError(f"grid: {n_runs:,} runs (sizes x data sizes x lrs x batch sizes x seeds) is more than launch.max_runs "
                        f"{spec.launch.max_runs:,}; shorten the lists or raise the limit")


def _check_grid(spec: SweepSpec) -> None:
    if spec.grid.points is not None:
        _check_points(spec)
    else:
        _check_product(spec)
    if len(set(spec.seeds)) != len(spec.seeds):
        raise SpecError(f"seeds: {spec.seeds} repeats a seed")


def _check_data(d: DataSpec) -> None:
    if d.source == Source.STDLIB:
        if d.path is not None:
            raise SpecError("data.path: not used with data.source 'stdlib'; remove it or set a source that reads it")
        return
    if d.path is None:
        raise SpecError(f"data.path: required when data.source is '{d.source}'; give a file or folder")
    path = Path(d.path)
    if not path.exists():
        raise SpecError(f"data.path: {d.path} does not exist")
    if not (path.is_file() or path.is_dir()):  # a device such as /dev/zero, a FIFO, a socket: reads never end
        raise SpecError(f"data.path: {d.path} is not a regular file or a folder; give a file or folder of documents")


def _batch_sizes(spec: SweepSpec) -> list[tuple[str, int]]:
    """Every batch size the sweep trains with, and where the YAML gives it."""
    if spec.grid.batch_size is None:
        return [("train.batch_size", spec.train.batch_size)]
    return [(f"grid.batch_size[{i}]", b) for i, b in enumerate(spec.grid.batch_size)]


def _check_microbatch(spec: SweepSpec) -> None:
    m = spec.train.microbatch_size
    for where, b in _batch_sizes(spec):
        if m is not None and b % m:
            raise SpecError(f"train.microbatch_size: {m} does not divide {where} {b}; give a divisor")


def _check_processes(spec: SweepSpec) -> None:
    launch, s, t = spec.launch, spec.launch.slurm, spec.train
    for field, value in (("nodes", s.nodes), ("tasks_per_node", s.tasks_per_node)):
        if launch.executor != Executor.SLURM and value not in (None, 1):
            raise SpecError(f"launch.slurm.{field}: {value} needs launch.executor 'slurm' (SLURM starts the "
                            "processes of a run over several nodes); remove it to train each run in one process")
    if launch.gpus_per_job % launch.tasks_per_node and launch.gpus_per_job:
        raise SpecError(f"launch.slurm.tasks_per_node: {launch.tasks_per_node} does not divide launch.gpus_per_job "
                        f"{launch.gpus_per_job}; give a divisor (one process per GPU is the default)")
    if launch.devices % t.fsdp:
        raise SpecError(f"train.fsdp: {t.fsdp} does not divide the {launch.devices} device(s) of a run "
                        "(launch.gpus_per_job x launch.slurm.nodes, or one CPU device per process); give a divisor")
    for what, rows in [("train.microbatch_size", t.microbatch_size)] if t.microbatch_size else _batch_sizes(spec):
        if rows % launch.devices:
            raise SpecError(f"{what}: {rows} rows do not divide over the {launch.devices} devices of a run; "
                            f"give a multiple of {launch.devices}")


def check(spec: SweepSpec) -> None:
    """The rules across fields that pydantic's per-field checks cannot express."""
    _check_grid(spec)
    _check_unused(spec)
    _check_data(spec.data)
    if spec.data.vocab_size < MIN_BPE_VOCAB:
        raise SpecError(f"data.vocab_size: {spec.data.vocab_size} is too small; BPE needs at least {MIN_BPE_VOCAB} "
                        "(256 bytes, <|endoftext|> and one merge)")
    _check_microbatch(spec)
    _check_processes(spec)
    check_eval(spec.eval, spec.train.objective)
    if spec.launch.jobs_per_gpu > 1 and (spec.launch.executor != Executor.LOCAL or spec.launch.gpus_per_job != 1):
        raise SpecError("launch.jobs_per_gpu: shares a GPU between local jobs; needs launch.executor 'local' "
                        "and launch.gpus_per_job 1")
    if spec.train.cooldown_branches and spec.train.schedule != WSD.name:
        raise SpecError("train.cooldown_branches: needs train.schedule 'wsd' (a stable phase to branch from)")
    check_extra(spec.launch.slurm.extra)
    if spec.launch.tracking == Tracking.WANDB and importlib.util.find_spec("wandb") is None:
        raise SpecError("launch.tracking: wandb is not installed here; pip install wandb (it logs offline), "
                        "or use tensorboard")

