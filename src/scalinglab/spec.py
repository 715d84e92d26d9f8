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
EXECUTORS = ("debug", "local", "slurm")
ISOFLOP_MIN_RATIO = 1.25


class SpecError(ValueError):
    """Invalid user input: the message is one line, naming what the user wrote."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Positive = Annotated[float, Field(gt=0)]


class DataSpec(_Section):
    source: Literal["stdlib", "text"] = "stdlib"
    """stdlib: the running Python's standard-library sources (no download); text: `path`."""
    path: str | None = None
    """For source text: a UTF-8 text file, or a folder searched recursively for *.txt, *.md, *.py."""
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    """Fraction of the corpus held out for validation (every k-th block of bytes)."""
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
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.95, ge=0, lt=1)
    n_evals: int = Field(8, ge=1)
    """Validation evaluations per run, evenly spaced; the last is at the final step."""


class SlurmSpec(_Section):
    partition: str | None = None
    time_min: int = Field(60, ge=1)
    cpus_per_task: int = Field(1, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    extra: dict[str, str] = {}
    """Further sbatch flags, e.g. {account: myproj, qos: high}."""


class LaunchSpec(_Section):
    executor: Literal["debug", "local", "slurm"] = "local"
    max_parallel: int | None = Field(None, ge=1)
    """Jobs at once; default: cores // threads_per_job (local), 1 (debug), unlimited (slurm)."""
    threads_per_job: int = Field(1, ge=1)
    """CPU threads per local job. One job per core was measured fastest on 2 cores."""
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
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
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
    if spec.data.source == "text":
        if spec.data.path is None:
            raise SpecError("data.path: required when data.source is 'text'; give a file or folder")
        if not Path(spec.data.path).exists():
            raise SpecError(f"data.path: {spec.data.path} does not exist")
    elif spec.data.path is not None:
        raise SpecError("data.path: only used with data.source 'text'; remove it or set source: text")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise SpecError(f"seeds: {spec.seeds} repeats a seed")


def parse(data: object, origin: str = "sweep") -> SweepSpec:
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
        data = yaml.safe_load(path.read_text())
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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything one job needs to train, evaluate and write a run. Made by the planner."""

    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    seq_len: int
    vocab_size: int
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    grad_clip: float
    b1: float
    b2: float
    eval_steps: tuple[int, ...]
    data_source: str
    data_path: str | None
    val_fraction: float
    val_tokens: int
    seed: int
    # Derived from the fields above (kept so results are readable without the planner).
    N: int
    N_total: int
    D: int
    flops_per_token: int
    C: float

    @property
    def run_id(self) -> str:
        """A deterministic hash of the resolved spec: same spec, same id, same folder."""
        blob = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        d = {k: v for k, v in d.items() if k != "run_id"}
        return cls(**{**d, "eval_steps": tuple(d["eval_steps"])})
