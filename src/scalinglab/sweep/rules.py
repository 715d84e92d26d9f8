"""The rules of a sweep across its fields, which pydantic's per-field checks cannot express:
check(spec) raises one SpecError line naming the field and what to do. The schema is spec.py."""

from __future__ import annotations

import importlib.util
from itertools import pairwise
from pathlib import Path

from pydantic import BaseModel

from ..data.corpus import TokenizerKind
from ..data.objectives import OBJECTIVES
from ..data.sources import Source
from ..errors import SpecError
from ..model.parametrization import PARAMETRIZATIONS
from ..training.schedules import SCHEDULES, WSD
from ..training.tracking import Tracking
from .evalspec import check_eval
from .sbatch import check_extra
from .spec import DataSpec, SweepSpec
from .types import Executor

MIN_BPE_VOCAB = 258  # 256 byte symbols, <|endoftext|>, one merge
ISOFLOP_MIN_RATIO = 1.25


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
    ("train", "cooldown_fraction", "schedule", SCHEDULES.having("decay_start")),  # the planner's decay_start
    ("train", "cooldown_shape", "schedule", SCHEDULES.having("cooldown_shape")),
)


def _check_unused(spec: SweepSpec) -> None:
    entries = spec.grid.schedules
    for section, field, chooser, users in _USED_ONLY_WITH:
        s = getattr(spec, section)
        if entries is not None and (section, chooser) == ("train", "schedule"):  # train's: a default for the entries
            if is_set(s, field) and not any(e.schedule in users for e in entries):
                raise SpecError(f"train.{field}: not used by any of grid.schedules, only by {_either(users)}; remove it")
        elif is_set(s, field) and getattr(s, chooser) not in users:
            raise SpecError(
                f"{section}.{field}: not used with {section}.{chooser} '{getattr(s, chooser)}', "
                f"only with {_either(users)}; remove it or change {section}.{chooser}"
            )
    for i, entry in enumerate(entries or []):
        for section, field, chooser, users in _USED_ONLY_WITH:
            if section == "train" and chooser == "schedule" and getattr(entry, field) is not None and entry.schedule not in users:
                raise SpecError(
                    f"grid.schedules[{i}].{field}: not used with schedule '{entry.schedule}', only with "
                    f"{_either(users)}; remove it or change grid.schedules[{i}].schedule"
                )


def _either(names) -> str:
    return ", ".join(f"'{u}'" for u in names[:-1]) + " or " * (len(names) > 1) + f"'{names[-1]}'"


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
    n_runs = len(g.points) * len(g.U or [0]) * len(spec.seeds)
    if n_runs > spec.launch.max_runs:
        raise SpecError(
            f"grid.points: {n_runs:,} runs (points{' x U' * bool(g.U)} x seeds) is more than "
            f"launch.max_runs {spec.launch.max_runs:,}; shorten the list or raise the limit"
        )


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
    for lo, hi in pairwise(budgets):
        if hi < ISOFLOP_MIN_RATIO * lo:  # runs are grouped into budgets by gaps in C
            raise SpecError(f"grid.C: budgets {lo:.3g} and {hi:.3g} are closer than {ISOFLOP_MIN_RATIO}x; space them further apart")
    for i, s in enumerate(g.shapes or []):
        if s.d_model % s.n_heads:
            raise SpecError(f"grid.shapes[{i}].n_heads: d_model {s.d_model} is not divisible by n_heads {s.n_heads}")
    sizes, data_sizes = g.N or g.shapes, g.D or g.tokens_per_param or g.C
    assert sizes is not None and data_sizes is not None  # exactly one of each, checked above
    n_runs = len(sizes) * len(data_sizes) * len(g.lr or [0]) * len(g.batch_size or [0]) * len(g.U or [0]) * len(spec.seeds)
    if n_runs > spec.launch.max_runs:
        raise SpecError(
            f"grid: {n_runs:,} runs (sizes x data sizes x lrs x batch sizes{' x U' * bool(g.U)} x seeds) is more than launch.max_runs "
            f"{spec.launch.max_runs:,}; shorten the lists or raise the limit"
        )


def caps(spec: SweepSpec) -> list[tuple[str, int]]:
    """Every U (unique training tokens) the sweep caps its training split at, and where the YAML
    gives it; none when each run trains on the whole split."""
    if spec.grid.U is not None:
        return [(f"grid.U[{i}]", U) for i, U in enumerate(spec.grid.U)]
    return [] if spec.data.U is None else [("data.U", spec.data.U)]


def _check_unique(spec: SweepSpec) -> None:
    g = spec.grid
    if g.U is not None and spec.data.U is not None:
        raise SpecError("data.U and grid.U: give U in one place; remove data.U")
    if g.U == []:
        raise SpecError("grid.U: empty list; give at least one value")
    if len(set(g.U or [])) != len(g.U or []):
        raise SpecError(f"grid.U: {g.U} repeats a value")
    least = spec.model.seq_len + 2  # a training window is seq_len + 1 tokens, drawn from U - seq_len - 1 starts
    for where, U in caps(spec):
        if least > U:
            raise SpecError(
                f"{where}: {U:,} tokens are too few for a training window of model.seq_len {spec.model.seq_len}; give at least {least}"
            )


def _check_grid(spec: SweepSpec) -> None:
    if spec.grid.points is not None:
        _check_points(spec)
    else:
        _check_product(spec)
    _check_unique(spec)
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
            raise SpecError(
                f"launch.slurm.{field}: {value} needs launch.executor 'slurm' (SLURM starts the "
                "processes of a run over several nodes); remove it to train each run in one process"
            )
    if launch.gpus_per_job % launch.tasks_per_node and launch.gpus_per_job:
        raise SpecError(
            f"launch.slurm.tasks_per_node: {launch.tasks_per_node} does not divide launch.gpus_per_job "
            f"{launch.gpus_per_job}; give a divisor (one process per GPU is the default)"
        )
    if launch.devices % t.fsdp:
        raise SpecError(
            f"train.fsdp: {t.fsdp} does not divide the {launch.devices} device(s) of a run "
            "(launch.gpus_per_job x launch.slurm.nodes, or one CPU device per process); give a divisor"
        )
    for what, rows in [("train.microbatch_size", t.microbatch_size)] if t.microbatch_size else _batch_sizes(spec):
        if rows % launch.devices:
            raise SpecError(
                f"{what}: {rows} rows do not divide over the {launch.devices} devices of a run; give a multiple of {launch.devices}"
            )


def check(spec: SweepSpec) -> None:
    """The rules across fields that pydantic's per-field checks cannot express."""
    _check_grid(spec)
    _check_unused(spec)
    _check_data(spec.data)
    if spec.data.vocab_size < MIN_BPE_VOCAB:
        raise SpecError(
            f"data.vocab_size: {spec.data.vocab_size} is too small; BPE needs at least {MIN_BPE_VOCAB} "
            "(256 bytes, <|endoftext|> and one merge)"
        )
    _check_microbatch(spec)
    _check_processes(spec)
    check_eval(spec.eval, spec.train.objective)
    if spec.launch.jobs_per_gpu > 1 and (spec.launch.executor != Executor.LOCAL or spec.launch.gpus_per_job != 1):
        raise SpecError("launch.jobs_per_gpu: shares a GPU between local jobs; needs launch.executor 'local' and launch.gpus_per_job 1")
    if spec.train.cooldown_branches and spec.train.schedule != WSD.name:
        raise SpecError("train.cooldown_branches: needs train.schedule 'wsd' (a stable phase to branch from)")
    if spec.train.cooldown_branches and spec.grid.schedules is not None:
        raise SpecError("grid.schedules: not with train.cooldown_branches (its branches are WSD's); remove one of them")
    check_extra(spec.launch.slurm.extra)
    if spec.launch.tracking == Tracking.WANDB and importlib.util.find_spec("wandb") is None:
        raise SpecError("launch.tracking: wandb is not installed here; pip install wandb (it logs offline), or use tensorboard")
