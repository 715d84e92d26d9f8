"""The layout of a results folder; every path and file name in it is spelled here and nowhere else.

results/<sweep>/
  sweep.json                 the resolved sweep (every default filled in)
  jobs.json                  each run's latest job id and executor
  fit.json, figures/         the fitted laws and their figures; report.html, the page of them all
  curves.json                the curve laws fitted per size (fit --curves), figures/curves_N<N>.png
  logs/                      submitit's job scripts and logs
  jax_cache/                 compiled steps shared by the sweep's jobs
  runs/<run_id>/run.json     the run spec (a flat record; RunSpec.record)
  runs/<run_id>/metrics.jsonl one JSON line per evaluation
  runs/<run_id>/tasks.jsonl  one JSON line per scored (evaluation, task, shots, strategy)
  runs/<run_id>/summary.json how the run ended
  runs/<run_id>/requeues.json how often its job was preempted or timed out
  runs/<run_id>/ckpt/        its latest checkpoint while unfinished
  runs/<run_id>/branch_points/ a cooldown trunk's checkpoints at its branch points
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUNS = "runs"
# A run folder's entries (RunDir's properties): scalinglab writes nothing else there.
SPEC, METRICS, TASKS, SUMMARY, REQUEUES, RESUME, BRANCH_POINTS, WEIGHTS, TENSORBOARD, WANDB = (
    "run.json",
    "metrics.jsonl",
    "tasks.jsonl",
    "summary.json",
    "requeues.json",
    "ckpt",
    "branch_points",
    "weights.safetensors",
    "tensorboard",
    "wandb",
)
RUN_FILES = (SPEC, METRICS, TASKS, SUMMARY, REQUEUES, RESUME, BRANCH_POINTS, WEIGHTS, TENSORBOARD, WANDB)


@dataclass(frozen=True, init=False)
class RunDir:
    """results/<sweep>/runs/<run_id>/."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def sweep(self) -> SweepDir:
        return SweepDir(self.path.parent.parent)

    @property
    def spec(self) -> Path:
        return self.path / SPEC

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def tasks(self) -> Path:
        """The task scores of its evaluations (eval.tasks)."""
        return self.path / TASKS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def requeues(self) -> Path:
        return self.path / REQUEUES

    @property
    def resume(self) -> Path:
        """The run's latest checkpoint while it is unfinished."""
        return self.path / RESUME

    @property
    def weights(self) -> Path:
        """The finished run's parameters (train.keep_weights), float32 safetensors."""
        return self.path / WEIGHTS

    @property
    def tensorboard(self) -> Path:
        """Event files of launch.tracking: tensorboard."""
        return self.path / TENSORBOARD

    @property
    def branch_points(self) -> Path:
        """A cooldown trunk's checkpoints at its branch points, which its branches start from."""
        return self.path / BRANCH_POINTS


@dataclass(frozen=True, init=False)
class SweepDir:
    """results/<sweep>/."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def runs(self) -> Path:
        return self.path / RUNS

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.runs / run_id)

    def run_dirs(self) -> list[Path]:
        """Every entry of runs/, in name order (run folders and anything else found there)."""
        return sorted(self.runs.iterdir()) if self.runs.is_dir() else []

    @property
    def sweep_json(self) -> Path:
        return self.path / "sweep.json"

    @property
    def jobs(self) -> Path:
        return self.path / "jobs.json"

    @property
    def fit_json(self) -> Path:
        return self.path / "fit.json"

    @property
    def curves_json(self) -> Path:
        """The curve laws fitted to the runs' loss curves, per size (`scalinglab fit --curves`)."""
        return self.path / "curves.json"

    def curve_figure(self, N: float) -> Path:
        """The figure of one size's curves and their fitted law."""
        return self.figures / f"curves_N{round(N)}.png"

    @property
    def report(self) -> Path:
        """The sweep's one-page report (scalinglab report)."""
        return self.path / "report.html"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def logs(self) -> Path:
        """submitit's folder: job scripts, pickles, stdout and stderr."""
        return self.path / "logs"

    @property
    def compile_cache(self) -> Path:
        return self.path / "jax_cache"
