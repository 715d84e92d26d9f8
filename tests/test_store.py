"""The store's mechanisms: one atomic-replace scheme for files, folders and cache entries; the
results layout; the CPU facts that key cache entries, read once from /proc/cpuinfo."""

import os
import platform
import shutil
import subprocess

import pytest

from scalinglab.store import cache, runs
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
    names = {p.name for p in (run.spec, run.metrics, run.tasks, run.summary, run.requeues, run.resume, run.branch_points,
                              run.weights, run.tensorboard)}
    assert names | {"wandb"} == set(RUN_FILES)  # wandb's folder: wandb names what it writes
    assert {p.parent for p in (sweep.sweep_json, sweep.jobs, sweep.fit_json, sweep.figures, sweep.logs, sweep.compile_cache)} == {sweep.path}


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu sse2 avx avx2 avx512f
bogomips\t: 4800.00

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu sse2 avx avx2
"""


def test_cpu_facts_are_the_first_cpus_of_a_cpuinfo_file(tmp_path):
    """A machine whose CPUs differ (a hybrid, or a file from another machine): the first CPU's fields,
    whole, none of the second's."""
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cache.cpu_info(str(path))
    assert info == {"processor": "0", "vendor_id": "GenuineIntel", "model name": "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
                    "flags": "fpu sse2 avx avx2 avx512f", "bogomips": "4800.00"}
    assert cache.cpu_info(str(tmp_path / "none"))["model name"] == platform.processor()  # no cpuinfo: platform's name


@pytest.mark.skipif(shutil.which("lscpu") is None or platform.machine() != "x86_64",
                    reason="lscpu names an x86 CPU and its flags as /proc/cpuinfo does; ARM's differ")
def test_this_machines_cpu_is_the_one_lscpu_names():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=True).stdout
    named = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines())}
    assert cache.cpu_info()["model name"] == named["Model name"]
    assert set(cache.cpu_info()["flags"].split()) == set(named["Flags"].split())


def test_a_resumed_run_drops_the_task_scores_it_will_redo_and_a_branch_copies_its_trunks(tmp_path):
    """Task scores follow the evaluations: a run resumed from step 20 scores step 30 again (its old
    record would be a duplicate), and a cooldown branch's history up to its branch point is its trunk's."""
    trunk, branch = RunDir(tmp_path / "trunk"), RunDir(tmp_path / "branch")
    trunk.path.mkdir()
    for step in (10, 20, 30):
        runs.append_metrics(trunk, [{"step": step, "tokens": 100 * step, "L": 3.0}])
        runs.append_tasks(trunk, [{"step": step, "tokens": 100 * step, "task": t, "shots": 0, "strategy": "random", "acc": 0.5}
                                  for t in ("cloze", "recall")])
    branch.path.mkdir()
    runs.copy_evaluations(trunk, branch, upto=20)
    assert [(t["step"], t["task"]) for t in runs.read_tasks(branch)] == [(10, "cloze"), (10, "recall"), (20, "cloze"), (20, "recall")]
    assert [m["step"] for m in runs.read_metrics(branch)] == [10, 20]
    runs.keep_metrics(trunk, lambda m: m["step"] <= 20)
    assert [t["step"] for t in runs.read_tasks(trunk)] == [10, 10, 20, 20]
    assert [m["step"] for m in runs.read_metrics(trunk)] == [10, 20]
