"""Run ids: a run's folder name and what `scalinglab run` recognises as done. They must not change
for results already on disk: the ids below are what scalinglab gave every kind of run before the
run spec was nested (computed then, by that code). A corpus is known by its content, not its path."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import data_config, with_sections
from scalinglab.data.corpus import load_corpus
from scalinglab.errors import SpecError
from scalinglab.store.layout import RunDir
from scalinglab.store.records import RunRecord
from scalinglab.store.runs import write_spec
from scalinglab.sweep import planner
from scalinglab.sweep.read import parse
from scalinglab.sweep.runspec import RunSpec

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
BASE = {
    "name": "t",
    "data": {"val_tokens": 2048},
    "model": {"seq_len": 32},
    "grid": {
        "shapes": [{"n_layers": 1, "d_model": 32, "n_heads": 2}, {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 100}],
        "D": [7680, 15360, 30720],
    },
    "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 3},
}


def variant(**sections) -> dict:
    return with_sections(BASE, **sections)


# (sweep, number of runs, first run id, sha256 of all ids joined by spaces, first 16 hex digits)
KNOWN = [
    ("cpu-study.yaml", 30, "129cb8d449a3", "3cb6b06ed8f1c512"),
    ("quickstart.yaml", 18, "529f9ad8c9f6", "aad341d40cc666fd"),
    (BASE, 6, "985da1fbc12e", "e113fcb002cd8e36"),
    (variant(train={"schedule": "cosine", "warmup_steps": 5}), 6, "43c8cca64535", "14885e44807a8af4"),
    (variant(train={"schedule": "linear", "warmup_steps": 5}), 6, "a2a57256041c", "962d63c68d07d4b2"),
    (variant(train={"schedule": "constant", "warmup_steps": 5}), 6, "03a3a10086ed", "80b6c348571793a6"),
    (variant(train={"schedule": "wsd", "warmup_steps": 5}), 6, "d372abb8ad12", "0363c04ab5ff142a"),
    (
        variant(train={"schedule": "wsd", "cooldown_branches": True, "cooldown_shape": "linear", "cooldown_fraction": 0.3}),
        8,
        "e0f352c19bd4",
        "40895267bde37203",
    ),
    (variant(train={"objective": "masked", "mask_fraction": 0.2}), 6, "66e9c1f8ec01", "3385b43fb1a72993"),
    (variant(train={"objective": "masked"}), 6, "5686532be590", "2a18593e7421f3a1"),
    (variant(model={"parametrization": "mup", "base_width": 32}), 6, "f7e28ed2c94f", "02a313c5e867104e"),
    (variant(model={"parametrization": "u-mup"}), 6, "ee413ea5a873", "30b7ae734fe21c5d"),
    (
        variant(train={"precision": "bf16", "b1": 0.8, "weight_decay": 0.0, "grad_clip": 2, "min_lr_ratio": 0.0}),
        6,
        "8f13dadba908",
        "2835fbbc2a6a32be",
    ),
    (variant(seeds=[0, 1, 5]), 18, "985da1fbc12e", "47f182b068e65708"),
    (variant(grid={"shapes": None, "N": [2e4, 8e4], "D": None, "tokens_per_param": [2, 4]}), 4, "9e3b8964b09b", "f90eb84c31e2a094"),
    (variant(grid={"shapes": None, "N": [2e4, 8e4, 3e5], "D": None, "C": [1e12, 4e12]}), 6, "51a5049c492c", "7790d3addc4f5b06"),
    (variant(data={"val_fraction": 0.1, "val_tokens": 4096}), 6, "ae7dad3d6b52", "6a6e6b513411b44f"),
]


@pytest.mark.parametrize("sweep,n_runs,first,digest", KNOWN, ids=lambda x: x if isinstance(x, str) else None)
def test_run_ids_are_the_ones_results_on_disk_have(sweep, n_runs, first, digest):
    doc = yaml.safe_load((SWEEPS / sweep).read_text()) if isinstance(sweep, str) else sweep
    runs = planner.plan(parse(doc))
    ids = [r.run_id for r in runs]
    assert (len(ids), ids[0], hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]) == (n_runs, first, digest), ids
    for run in runs:  # run.json holds the record; a job rebuilds the same spec from it
        assert RunSpec.from_record(json.loads(json.dumps(run.record()))) == run
        assert_a_typed_run_json(run)


def assert_a_typed_run_json(run: RunSpec) -> None:
    """What the planner writes to run.json is what the readers accept (store/records.py), and
    every key of it has a type there: a new field must be typed before its runs can be read."""
    record = json.loads(json.dumps(run.record()))
    assert RunRecord.check(record) is None
    assert set(record) <= set(RunRecord.model_fields), set(record) - set(RunRecord.model_fields)


def test_a_sweep_with_tasks_writes_typed_run_json_too():
    runs = planner.plan(parse(yaml.safe_load((SWEEPS / "abilities.yaml").read_text())))
    assert runs[0].eval.tasks
    for run in runs:
        assert_a_typed_run_json(run)


def corpus_sweep(path: Path) -> dict:
    return variant(data={"source": "jsonl", "path": str(path), "val_tokens": 256})


def test_a_corpus_is_known_by_its_content_not_its_path(tmp_path):
    docs = "".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(200))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "corpus.jsonl").write_text(docs)
    before = planner.plan(parse(corpus_sweep(tmp_path / "a" / "corpus.jsonl")))
    shutil.move(tmp_path / "a", tmp_path / "moved")
    moved = planner.plan(parse(corpus_sweep(tmp_path / "moved" / "corpus.jsonl")))
    assert [r.run_id for r in moved] == [r.run_id for r in before]
    assert moved[0].data.path != before[0].data.path and moved[0].data.content == before[0].data.content
    (tmp_path / "moved" / "corpus.jsonl").write_text(docs.replace("document 7 ", "document seven "))
    edited = planner.plan(parse(corpus_sweep(tmp_path / "moved" / "corpus.jsonl")))
    assert not {r.run_id for r in edited} & {r.run_id for r in before}


def test_a_corpus_changed_after_planning_is_refused(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(200)))
    run = planner.plan(parse(corpus_sweep(path)))[0]
    assert len(load_corpus(run.data).train) > 0
    path.write_text(path.read_text().replace("document 3 ", "document three "))
    with pytest.raises(SpecError, match=r"^data.path: the files of \S+corpus.jsonl changed since the sweep was planned"):
        load_corpus(run.data)
    assert load_corpus(data_config("jsonl", path)).train is not None  # unplanned: read as it is now


def test_the_committed_lr_study_is_what_its_sweep_plans():
    """results/lr-study was trained from sweeps/lr-study.yaml (grid.lr x grid.batch_size): the same runs."""
    runs = planner.plan(parse(yaml.safe_load((SWEEPS / "lr-study.yaml").read_text())))
    assert len(runs) == 72 and {r.run_id for r in runs} == {d.name for d in (SWEEPS.parent / "results" / "lr-study" / "runs").iterdir()}


@pytest.mark.parametrize("study", ["schedules", "cpu-study-curves"])
def test_the_committed_curve_studies_are_what_their_sweeps_plan(study, tmp_path):
    """results/schedules (grid.schedules) and results/cpu-study-curves: the same runs, each
    run.json as the planner writes it now."""
    committed = SWEEPS.parent / "results" / study / "runs"
    runs = planner.plan(parse(yaml.safe_load((SWEEPS / f"{study}.yaml").read_text())))
    assert {r.run_id for r in runs} == {d.name for d in committed.iterdir()} and len(runs) == 15
    for run in runs:
        run_dir = RunDir(tmp_path / run.run_id)
        run_dir.path.mkdir()
        write_spec(run_dir, run.record())
        assert run_dir.spec.read_bytes() == (committed / run.run_id / "run.json").read_bytes()


def test_run_json_is_written_byte_for_byte_as_the_committed_lr_studys(tmp_path):
    """results/lr-study's run.json files were written when precision, role, tracking, data source,
    tokenizer and strategies were plain strings in the run spec; written now, with them as enums,
    each is the same bytes."""
    committed = SWEEPS.parent / "results" / "lr-study" / "runs"
    for run in planner.plan(parse(yaml.safe_load((SWEEPS / "lr-study.yaml").read_text()))):
        run_dir = RunDir(tmp_path / run.run_id)
        run_dir.path.mkdir()
        write_spec(run_dir, run.record())
        assert run_dir.spec.read_bytes() == (committed / run.run_id / "run.json").read_bytes()


def test_U_is_in_the_run_id_only_when_set():
    """data.U null (the default) keeps every run's record and id; a cap is part of both, and each
    grid.U value is the run data.U of that value would be."""
    plain = planner.plan(parse(BASE))
    assert planner.plan(parse(variant(data={"U": None}))) == plain and all("U" not in r.record() for r in plain)
    capped = planner.plan(parse(variant(data={"U": 50_000})))
    assert [r.data.U for r in capped] == [50_000] * 6 and capped[0].record()["U"] == 50_000
    assert not {r.run_id for r in capped} & {r.run_id for r in plain}
    assert RunSpec.from_record(json.loads(json.dumps(capped[0].record()))) == capped[0]
    axis = planner.plan(parse(variant(grid={"U": [50_000, 100_000]})))
    assert len(axis) == 12 and {r.run_id for r in axis if r.data.U == 50_000} == {r.run_id for r in capped}
