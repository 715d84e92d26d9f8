"""The store's mechanisms: one atomic-replace scheme for files, folders and cache entries; the
results layout; the CPU facts that key cache entries, read once from /proc/cpuinfo."""

import os

import pytest

from scalinglab.store import cache
from scalinglab.store.files import is_in_progress, replacing, write_json, write_text
from scalinglab.store.layout import RUN_FILES, RunDir, SweepDir


def test_a_failed_replace_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"status": "done"})
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text('{"status": "fai')
        raise RuntimeError("killed mid-write")
    assert path.read_text() == '{\n "status": "done"\n}\n'
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_replaced_folder_appears_whole(tmp_path):
    done = tmp_path / "entry"
    with replacing(done) as tmp:
        tmp.mkdir()
        (tmp / "a.npy").write_bytes(b"x")
        assert not done.exists() and is_in_progress(tmp.name, "entry")
    assert [p.name for p in done.iterdir()] == ["a.npy"]
    with pytest.raises(ValueError), replacing(tmp_path / "other") as tmp:
        tmp.mkdir()
        raise ValueError
    assert sorted(os.listdir(tmp_path)) == ["entry"]


def test_build_once_builds_an_absent_entry_once_and_clears_what_a_dead_builder_left(tmp_path):
    (tmp_path / ".peak.json.node7.4242.a1b2c3").write_text("half")  # a builder killed mid-build
    (tmp_path / ".peak.json.node7.4243.d4e5f6").mkdir()
    built = []

    def build(tmp):
        built.append(tmp)
        write_text(tmp, "42")

    for _ in range(3):
        assert cache.build_once(tmp_path / "peak.json", build).read_text() == "42"
    assert len(built) == 1
    assert sorted(os.listdir(tmp_path)) == ["peak.json", "peak.json.lock"]


def test_the_layout_names_every_run_file(tmp_path):
    sweep = SweepDir(tmp_path / "s")
    run = sweep.run("abc123")
    assert run == RunDir(tmp_path / "s" / "runs" / "abc123") and run.sweep == sweep and run.run_id == "abc123"
    names = {p.name for p in (run.spec, run.metrics, run.tasks, run.summary, run.requeues, run.resume, run.branch_points)}
    assert names == set(RUN_FILES)
    assert {p.parent for p in (sweep.sweep_json, sweep.jobs, sweep.fit_json, sweep.figures, sweep.logs, sweep.compile_cache)} == {sweep.path}


def test_cpu_facts_come_from_the_first_cpu_of_proc_cpuinfo():
    info = cache.cpu_info()
    with open("/proc/cpuinfo") as f:
        first = f.read().split("\n\n")[0]
    assert f"model name\t: {info['model name']}" in first
    assert info["flags"] and f"flags\t\t: {info['flags']}" in first
