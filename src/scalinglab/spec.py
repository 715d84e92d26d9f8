"""Sweep YAML -> a typed, frozen, validated SweepSpec; and the RunSpec a job trains from.

Every default of the YAML lives in the field declarations below and nowhere else. Bad input is
reported as one SpecError line that names the YAML path of the field and what to do.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

BUILTIN_CORPORA = ("stdlib",)
MIN_BPE_VOCAB = 258  # 256 byte symbols, <|endoftext|>, one merge
EXECUTORS = ("debug", "local", "slurm")
ISOFLOP_MIN_RATIO = 1.25


class SpecError(ValueError):
    """Invalid user input: the message is one line, naming what the user wrote."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class DataSpec(_Section):
    source: Literal["stdlib", "text", "jsonl", "parquet", "hf"] = "stdlib"
    """stdlib: the running Python's standard-library sources (no download); text, jsonl, parquet, hf: `path`."""
    path: str | None = None
    """text: a UTF-8 file, or a folder searched recursively for *.txt, *.md, *.py, *.rst; jsonl, parquet:
    a file, or a folder searched for *.jsonl, *.parquet; hf: a folder written by datasets' save_to_disk
    (of a DatasetDict, its train split)."""
    text_field: str = "text"
    """jsonl, parquet, hf: the key (column) holding each document's text."""
    tokenizer: Literal["byte", "bpe"] = "byte"
    """byte: UTF-8 bytes, 256 ids; bpe: byte-level BPE trained on the training split, cached in
    $SCALINGLAB_CACHE (default ~/.cache/scalinglab)."""
    vocab_size: int = 4096
    """bpe: token ids, including the <|endoftext|> separator between documents."""
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    """Fraction of the corpus held out for validation (every k-th block of bytes, cut before tokenizing)."""
    val_tokens: int = Field(32_768, ge=1)
    """Held-out tokens scored at every evaluation; the same tokens for every run."""


class ModelSpec(_Section):
    seq_len: int = Field(128, ge=2)
    mlp_ratio: float = Field(4.0, gt=0)
    """d_ff = mlp_ratio * d_model unless a shape gives d_ff."""
    d_head: int = Field(32, ge=1)
    """Shape rule: n_heads = d_model / d_head."""
    aspect_ratio: float = Field(32.0, gt=0)
    """Shape rule: d_model ~ aspect_ratio * n_layers."""
    parametrization: Literal["sp", "mup", "u-mup"] = "sp"
    """sp: standard; mup: maximal update (muP), learning rate transfers across width from base_width;
    u-mup: unit-scaled muP (Blake et al. 2024), unit-variance weights, base lr near 1."""
    base_width: int = Field(64, ge=1)
    """mup: the d_model at which muP equals the standard init and learning rate."""


class Shape(_Section):
    n_layers: int = Field(ge=1)
    d_model: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    d_ff: int | None = Field(None, ge=1)


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


class TrainSpec(_Section):
    objective: Literal["causal", "masked"] = "causal"
    """causal: next-token LM; masked: BERT-style masked LM (bidirectional attention)."""
    mask_fraction: float = Field(0.15, gt=0, lt=1)
    """masked: share of positions predicted (80% [MASK], 10% random token, 10% unchanged)."""
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    """Peak learning rate (base learning rate under mup and u-mup)."""
    schedule: Literal["cosine", "linear", "constant", "wsd"] = "cosine"
    """After warmup: cosine or linear decay to lr * min_lr_ratio, constant, or warmup-stable-decay."""
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    warmup_steps: int | None = Field(None, ge=0)
    """Warmup length in steps, instead of warmup_fraction of each run's steps."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Decay ends at lr * min_lr_ratio."""
    cooldown_fraction: float = Field(0.2, gt=0, le=0.5)
    """wsd: the final share of steps in which the learning rate decays."""
    cooldown_shape: Literal["linear", "1-sqrt"] = "1-sqrt"
    """wsd: decay shape; 1-sqrt is Hagele et al. 2024's."""
    cooldown_branches: bool = False
    """wsd: one stable run per model size, with a cooldown branched from it for every data size."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: bfloat16 compute with float32 master weights and optimizer state."""
    checkpoint_interval_s: float = Field(600.0, ge=0)
    """Save a checkpoint (orbax) when this many seconds have passed since the last; 0: every step."""
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.95, ge=0, lt=1)
    n_evals: int = Field(8, ge=1)
    """Validation evaluations per run, evenly spaced; the last is at the final step."""


class SlurmSpec(_Section):
    """sbatch resources of each job of a sweep (one job array per sweep)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = Field(60, ge=1)
    """Time limit of a job; a job that reaches it saves a checkpoint and is requeued."""
    nodes: Literal[1] = 1
    """Nodes per job: 1 (a run is data parallel over one node's devices; multi-node runs are not supported)."""
    cpus_per_task: int = Field(1, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    constraint: str | None = None
    setup: list[str] = []
    """Shell lines run before each job, e.g. [module load cuda/12.4, source ~/venv/bin/activate]."""
    extra: dict[str, str] = {}
    """Further sbatch flags, without the dashes, e.g. {mail-user: me@lab.org, exclusive: user}."""
    max_requeues: int = Field(3, ge=0)
    """Times a run is requeued after preemption or its time limit before it is marked failed."""


class LaunchSpec(_Section):
    executor: Literal["debug", "local", "slurm"] = "local"
    max_runs: int = Field(1000, ge=1)
    """Refuse a grid of more runs than this (a typo such as D: [1e6, 2e6, ...] of 1,000 values)."""
    max_parallel: int | None = Field(None, ge=1)
    """Jobs at once; default: cores // threads_per_job (local), 1 (debug), unlimited (slurm)."""
    threads_per_job: int = Field(1, ge=1)
    """CPU threads per local job. One job per core was measured fastest on 2 cores."""
    gpus_per_job: int = Field(0, ge=0)
    """GPUs per job (local: disjoint GPUs per job; slurm: --gpus-per-node); a job uses all it gets."""
    slurm: SlurmSpec = SlurmSpec()


class FitSpec(_Section):
    huber_delta: float = Field(1e-3, gt=0)
    """Huber threshold on log-loss residuals for the L(N,D) fit (Hoffmann et al. 2022)."""
    method: Literal["varpro", "grid"] = "varpro"
    """varpro: variable projection (fast); grid: L-BFGS-B from Hoffmann's 4,500 starts (minutes)."""
    bootstrap: int = Field(200, ge=0)
    """Bootstrap resamples of the runs for confidence intervals (0: none)."""
    holdout_fraction: float = Field(0.2, ge=0, lt=1)
    """Extrapolation check: the largest runs by `holdout_by` held out of the fit and predicted."""
    holdout_by: Literal["C", "N", "D"] = "C"


class SweepSpec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", max_length=100)
    """The results folder's name: letters, digits, '_', '-', '.'; not starting with '.'."""
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    grid: GridSpec
    seeds: list[int] = Field([0], min_length=1)
    launch: LaunchSpec = LaunchSpec()
    fit: FitSpec = FitSpec()


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The model class whose field set holds the last key of loc (for did-you-mean)."""
    cls: type[BaseModel] = SweepSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        cands = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        cands += [a for c in getattr(ann, "__args__", ()) for a in getattr(c, "__args__", ())]
        models = [a for a in cands if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return None
        cls = models[0]
    return cls


def _error_line(err: dict) -> str:
    loc = tuple(err["loc"])
    where = _path(loc)
    if err["type"] == "extra_forbidden":
        section = _section_at(loc)
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key; {hint}"
    if err["type"] == "missing":
        return f"{where}: required, but missing"
    return f"{where}: {err['msg']} (got {err['input']!r})"


def _check_consistency(spec: SweepSpec) -> None:
    """Cross-field rules pydantic's per-field checks cannot express."""
    g = spec.grid
    if (g.N is None) == (g.shapes is None):
        raise SpecError("grid: give exactly one of 'N' (target sizes) or 'shapes'")
    if sum(x is not None for x in (g.D, g.tokens_per_param, g.C)) != 1:
        raise SpecError("grid: give exactly one of 'D' (tokens), 'tokens_per_param' or 'C' (IsoFLOP budgets)")
    for key in ("N", "shapes", "D", "tokens_per_param", "C"):
        if getattr(g, key) == []:
            raise SpecError(f"grid.{key}: empty list; give at least one value")
    budgets = sorted(g.C or [])
    for lo, hi in zip(budgets, budgets[1:]):
        if hi < ISOFLOP_MIN_RATIO * lo:  # runs are grouped into budgets by gaps in C
            raise SpecError(f"grid.C: budgets {lo:.3g} and {hi:.3g} are closer than {ISOFLOP_MIN_RATIO}x; space them further apart")
    for i, s in enumerate(g.shapes or []):
        if s.d_model % s.n_heads:
            raise SpecError(
                f"grid.shapes[{i}].n_heads: d_model {s.d_model} is not divisible by n_heads {s.n_heads}"
            )
    d = spec.data
    if d.source == "stdlib":
        if d.path is not None:
            raise SpecError("data.path: not used with data.source 'stdlib'; remove it or set a source that reads it")
    elif d.path is None:
        raise SpecError(f"data.path: required when data.source is '{d.source}'; give a file or folder")
    elif not Path(d.path).exists():
        raise SpecError(f"data.path: {d.path} does not exist")
    default = DataSpec()  # a default value is not an error: a dumped spec must parse again
    if d.source in ("stdlib", "text") and d.text_field != default.text_field:
        raise SpecError(f"data.text_field: not used with data.source '{d.source}', only with jsonl, parquet or hf")
    if d.tokenizer != "bpe" and d.vocab_size != default.vocab_size:
        raise SpecError("data.vocab_size: only used with data.tokenizer 'bpe'; remove it or set tokenizer: bpe")
    if d.vocab_size < MIN_BPE_VOCAB:
        raise SpecError(
            f"data.vocab_size: {d.vocab_size} is too small; BPE needs at least {MIN_BPE_VOCAB} "
            "(256 bytes, <|endoftext|> and one merge)"
        )
    if spec.train.cooldown_branches and spec.train.schedule != "wsd":
        raise SpecError("train.cooldown_branches: needs train.schedule 'wsd' (a stable phase to branch from)")
    n_runs = len(g.N or g.shapes) * len(g.D or g.tokens_per_param or g.C) * len(spec.seeds)
    if n_runs > spec.launch.max_runs:
        raise SpecError(f"grid: {n_runs:,} runs (sizes x data sizes x seeds) is more than launch.max_runs {spec.launch.max_runs:,}; shorten the lists or raise the limit")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise SpecError(f"seeds: {spec.seeds} repeats a seed")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects from tags), refusing a key given twice in one mapping
    instead of silently keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse(data: object, origin: str = "sweep") -> SweepSpec:
    if data is None:
        raise SpecError(f"{origin}: empty; a sweep needs at least name and grid")
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: expected a mapping of sections (name, data, model, ...), got {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        # A misspelt key also makes its correct spelling "missing": report the typo.
        first = min(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        raise SpecError(_error_line(first)) from None
    _check_consistency(spec)
    return spec


def load(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}); save the sweep as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise SpecError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse(data, str(path))


def with_launch(spec: SweepSpec, **changes) -> SweepSpec:
    """The spec with launch fields replaced (CLI flags win over the YAML)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return spec
    launch = LaunchSpec.model_validate({**spec.launch.model_dump(), **changes})
    return spec.model_copy(update={"launch": launch})


# RunSpec fields that do not change what a run computes: left out of its id.
_NOT_IDENTITY = ("checkpoint_interval_s",)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything one job needs to train, evaluate and write a run. Made by the planner."""

    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    seq_len: int
    vocab_size: int
    """Token ids the model embeds: the tokenizer's, plus [MASK] for the masked objective."""
    parametrization: str
    base_width: int
    objective: str
    mask_fraction: float
    batch_size: int
    steps: int
    lr: float
    schedule: str
    warmup_steps: int
    decay_start: int
    """wsd: the step the cooldown starts; its branch point when branched."""
    cooldown_shape: str
    min_lr_ratio: float
    weight_decay: float
    grad_clip: float
    b1: float
    b2: float
    precision: str
    eval_steps: tuple[int, ...]
    data_source: str
    data_path: str | None
    text_field: str
    tokenizer: str
    tokenizer_vocab: int
    val_fraction: float
    val_tokens: int
    seed: int
    role: str
    """run: a point of the grid; trunk: the shared stable phase of cooldown branches (not a point)."""
    trunk_id: str | None
    """For a cooldown branch: the trunk run it starts from, at step decay_start."""
    branch_steps: tuple[int, ...]
    """For a trunk: the steps its branches start from; kept as checkpoints."""
    checkpoint_interval_s: float
    # Derived from the fields above (kept so results are readable without the planner).
    N: int
    N_total: int
    D: int
    flops_per_token: int
    C: float

    @property
    def run_id(self) -> str:
        """A deterministic hash of the resolved spec: same spec, same id, same folder."""
        identity = {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def start_step(self) -> int:
        """The step training starts from: a branch begins where it leaves its trunk."""
        return self.decay_start if self.trunk_id else 0

    @property
    def job_flops(self) -> float:
        """FLOPs this run's own job spends: a branch shares its first decay_start steps with its trunk."""
        return self.C * (self.steps - self.start_step) / self.steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        d = {k: v for k, v in d.items() if k != "run_id"}
        return cls(**{**d, "eval_steps": tuple(d["eval_steps"]), "branch_steps": tuple(d["branch_steps"])})
