"""Experiment tracking (launch.tracking): each evaluation's figures as scalars, by step, under the
run's folder. tensorboard: event files in runs/<id>/tensorboard/ (tensorboard's own writer, no
TensorFlow); wandb: an offline run in runs/<id>/wandb/ (`wandb sync` uploads it later). Process 0
of a run writes; a resumed run adds an event file, and a cooldown branch logs its own steps."""

from __future__ import annotations

import math
import time
from enum import StrEnum

from ..store.layout import RunDir


class Tracking(StrEnum):
    """launch.tracking: where each evaluation's figures are also logged."""

    NONE = "none"
    TENSORBOARD = "tensorboard"
    WANDB = "wandb"


EVALUATION = {
    "L": "val/loss",
    "bpb": "val/bpb",
    "train_loss": "train/loss",
    "tokens_per_s": "throughput/tokens_per_s",
    "mfu": "throughput/mfu",
    "task_s": "throughput/task_s",
}
TASK_METRICS = ("acc", "acc_norm", "task_loss", "task_bpb", "p_gold", "exact_match", "token_acc")


class Tracker:
    """Writes nothing: launch.tracking none, or a process other than the run's first."""

    def evaluation(self, step: int, record: dict, lr: float) -> None:
        values = {tag: record.get(key) for key, tag in EVALUATION.items()} | {"train/lr": lr}
        self.scalars(step, {tag: float(v) for tag, v in values.items() if v is not None and math.isfinite(v)})

    def curve(self, step: int, point: dict) -> None:
        """A point of the training curve (training.loop): its rate and losses."""
        values = {"train/lr": "step_lr", "train/loss_interval": "train_loss", "train/loss_ema": "train_loss_ema"}
        self.scalars(step, {tag: float(point[key]) for tag, key in values.items()})

    def tasks(self, step: int, records: list[dict]) -> None:
        self.scalars(
            step,
            {
                f"tasks/{r['task']}/{r['shots']}shot/{r['strategy']}/{m}": float(r[m])
                for r in records
                for m in TASK_METRICS
                if r.get(m) is not None
            },
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoard(Tracker):
    def __init__(self, run_dir: RunDir):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: PLC0415  (tensorboard only where launch.tracking asks for it)

        self.writer = EventFileWriter(str(run_dir.tensorboard))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event  # noqa: PLC0415  (tensorboard only where launch.tracking asks for it)
        from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: PLC0415  (tensorboard only where launch.tracking asks for it)

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])
        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Wandb(Tracker):
    def __init__(self, run_dir: RunDir, record: dict):
        import wandb  # noqa: PLC0415  (optional: launch.tracking wandb is refused without it)

        self.run = wandb.init(
            mode="offline",
            dir=str(run_dir.path),
            project=run_dir.sweep.name,
            name=run_dir.run_id,
            id=run_dir.run_id,
            config=record,
            resume="allow",
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def open_tracker(kind: Tracking, run_dir: RunDir, record: dict, main: bool) -> Tracker:
    if not main or kind == Tracking.NONE:
        return Tracker()
    return TensorBoard(run_dir) if kind == Tracking.TENSORBOARD else Wandb(run_dir, record)
