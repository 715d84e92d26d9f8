"""launch.tracking: tensorboard writes every evaluation's figures (and the task scores) as event
files under the run's folder, read back here with tensorboard's own reader; wandb without the
package is refused before anything runs."""

import importlib.util

import numpy as np
import pytest
from conftest import tiny_runs
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scalinglab.errors import SpecError
from scalinglab.store import runs
from scalinglab.store.layout import RunDir
from scalinglab.sweep.read import parse
from scalinglab.training.loop import train


def test_tensorboard_event_files_hold_every_evaluation_and_task_score(tmp_path):
    run = tiny_runs(launch={"tracking": "tensorboard"},
                    eval={"tasks": ["cloze"], "num_fewshot": [0, 1], "test_items": 6, "pool_items": 4})[0]
    run_dir = RunDir(tmp_path / "run")
    runs.write_spec(run_dir, run.record())
    assert train(run, run_dir, log=lambda *_: None)["status"] == "done"
    events = EventAccumulator(str(run_dir.tensorboard))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/loss", "val/bpb", "train/loss", "train/lr", "throughput/tokens_per_s", "throughput/mfu",
            "tasks/cloze/0shot/random/acc", "tasks/cloze/1shot/random/p_gold"} <= tags
    metrics = runs.read_metrics(run_dir)
    assert [e.step for e in events.Scalars("val/loss")] == [m["step"] for m in metrics] == list(run.eval.steps)
    np.testing.assert_allclose([e.value for e in events.Scalars("val/loss")], [m["L"] for m in metrics], rtol=1e-6)
    curve = runs.read_curve(run_dir)  # every point of the training curve, beside the evaluations
    assert [e.step for e in events.Scalars("train/loss_interval")] == [p["step"] for p in curve]
    np.testing.assert_allclose([e.value for e in events.Scalars("train/loss_ema")], [p["train_loss_ema"] for p in curve], rtol=1e-6)
    lr = [e.value for e in events.Scalars("train/lr")]
    assert lr[-1] == pytest.approx(float(run.optim.schedule.lr(run.optim.lr, run.steps - 1, np)), rel=1e-6)
    scores = {(t["step"], t["shots"]): t["acc"] for t in runs.read_tasks(run_dir) if t["strategy"] == "random"}
    assert {(e.step, 1): e.value for e in events.Scalars("tasks/cloze/1shot/random/acc")} == {
        k: pytest.approx(v) for k, v in scores.items() if k[1] == 1}


def test_wandb_logs_offline_into_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tiny_runs(launch={"tracking": "wandb"})[0]
    run_dir = RunDir(tmp_path / "runs" / run.run_id)
    runs.write_spec(run_dir, run.record())
    assert train(run, run_dir, log=lambda *_: None)["status"] == "done"
    (log,) = (run_dir.path / "wandb").glob(f"offline-run-*-{run.run_id}/run-{run.run_id}.wandb")
    data = log.read_bytes()  # wandb's own record log (protobuf): tags and values are plain bytes in it
    assert all(tag.encode() in data for tag in ("val/loss", "val/bpb", "train/lr", "throughput/tokens_per_s"))
    assert repr(runs.read_metrics(run_dir)[-1]["L"]).encode() in data


def test_wandb_without_the_package_is_refused_in_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SpecError, match="launch.tracking: wandb is not installed here; pip install wandb"):
        parse({"name": "t", "grid": {"N": [1e5], "D": [1e6]}, "launch": {"tracking": "wandb"}})
