"""Results on disk, read back by the tests that share the session's trained sweep (one file, so
that one test worker trains it): figures and fits regenerated from the folder alone, and damaged
results: a truncated metrics line, a lost or corrupt summary, a corrupt run.json, foreign files, a
damaged jobs.json. load, fit, plot and status name each damaged file and go on with the rest; run
rewrites a run.json and trains again the runs that lost their summaries."""

import contextlib
import io
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import damage
from conftest import FIGURES, check_sweep, data_config, law_figures
from scalinglab import results
from scalinglab.analysis.select import fit_inputs
from scalinglab.cli import main
from scalinglab.data.corpus import load_corpus
from scalinglab.launch import jobs
from scalinglab.store import runs as run_files
from scalinglab.store.layout import RunDir, SweepDir


@pytest.fixture
def damaged(trained_sweep, trained_copy):
    """A copy of the trained sweep (10 runs: 7 are left for the 5 parameters of L(N,D)), damaged
    in six ways; returns (sweep yaml, folder, run ids)."""
    path, copy = trained_sweep[0], trained_copy
    runs = sorted(p for p in (copy / "runs").iterdir())
    truncated, lost, corrupt, foreign, spec = runs[:5]
    metrics = (truncated / "metrics.jsonl").read_text()
    (truncated / "metrics.jsonl").write_text(metrics[: len(metrics) - 20])  # the last line cut short
    (lost / "summary.json").unlink()
    summary = (corrupt / "summary.json").read_text()
    (corrupt / "summary.json").write_text(summary[: len(summary) // 2])
    (foreign / "notes.txt").write_text("my notes\n")
    (spec / "run.json").write_text('["not", "a", "spec"]')
    (copy / "runs" / "stray.csv").write_text("a,b\n")
    ids = {"truncated": truncated, "lost": lost, "corrupt": corrupt, "foreign": foreign, "spec": spec}
    return path, copy, {k: v.name for k, v in ids.items()}


def test_a_healthy_sweep_loads_without_a_warning(trained_copy):
    copy = trained_copy
    run = next((copy / "runs").iterdir())
    (run / ".summary.json.x1y2z3").write_text("{")  # left by a write that was killed: not a foreign file
    with warnings.catch_warnings():
        warnings.simplefilter("error", results.DamagedResults)
        assert len(results.load(copy)) == 10 and len(results.load(copy, per_eval=True)) == 20


def test_load_reports_each_damaged_file_and_keeps_the_rest(damaged):
    _, sweep_dir, ids = damaged
    with pytest.warns(results.DamagedResults) as caught:
        df = results.load(sweep_dir).set_index("run_id")
    messages = [str(w.message) for w in caught]
    expect = [
        f"{ids['lost']}: evaluations up to step",
        f"{ids['corrupt']}/summary.json: not JSON",
        f"{ids['foreign']}/notes.txt: not a scalinglab file",
        f"{ids['spec']}/run.json: not a JSON object",
        "runs/stray.csv: not a run folder",
    ]
    for text in expect:
        assert sum(text in m for m in messages) == 1, (text, messages)
    assert len(messages) == len(expect)
    assert len(df) == 10
    assert df.loc[ids["lost"], "status"] == "pending"
    assert df.loc[ids["corrupt"], "status"] == "damaged" and df.loc[ids["spec"], "status"] == "damaged"
    assert (df.drop([ids["lost"], ids["corrupt"], ids["spec"]])["status"] == "done").all()
    with pytest.warns(results.DamagedResults) as caught:
        evals = results.load(sweep_dir, per_eval=True)  # the evaluations are read only now
    cut = len((sweep_dir / "runs" / ids["truncated"] / "metrics.jsonl").read_text().splitlines())  # the last, an evaluation
    truncated = f"{ids['truncated']}/metrics.jsonl: line {cut} is not a whole metrics record"
    assert sum(truncated in str(w.message) for w in caught) == 1
    per_run = evals.groupby("run_id").size()
    assert per_run[ids["truncated"]] == 1 and per_run[ids["foreign"]] == 2  # the whole line before the cut is kept
    assert ids["corrupt"] not in per_run and ids["spec"] not in per_run


def test_fit_plot_and_status_warn_per_run_and_go_on(damaged, capsys):
    _, sweep_dir, ids = damaged
    assert main(["fit", str(sweep_dir), "--json", "--bootstrap", "0"]) == 0
    out, err = capsys.readouterr()
    fit = json.loads(out)  # the warnings went to stderr, not into the JSON
    assert fit["n_runs"] == 7 and fit["law"]["law"]["law"] == fit["laws"]["chosen"]
    lines = err.splitlines()
    assert all(line.startswith("scalinglab: warning: ") for line in lines)
    for run_id in ids.values():
        assert sum(run_id in line for line in lines) == 1, (run_id, lines)  # once, though read twice
    assert sum("stray.csv" in line for line in lines) == 1

    for png in (sweep_dir / "figures").iterdir():
        png.unlink()
    assert main(["plot", str(sweep_dir), "--bootstrap", "0"]) == 0
    assert len(list((sweep_dir / "figures").iterdir())) >= 4
    assert ids["corrupt"] in capsys.readouterr().err

    assert main(["status", str(sweep_dir)]) == 0
    out, err = capsys.readouterr()
    assert "1 pending · 7 done · 2 damaged" in out
    assert "summary.json: not JSON" in out and "run.json: damaged" in out  # the damaged runs' detail in the table
    assert ids["corrupt"] in err and ids["lost"] in err


def test_run_repairs_what_it_can_and_trains_again_the_runs_whose_summary_was_lost_or_damaged(damaged, capsys):
    path, sweep_dir, ids = damaged
    assert main(["run", str(path), "--results", str(sweep_dir.parent)]) == 0
    assert "2 trained, 8 already done, 0 failed" in capsys.readouterr().out  # run.json rewritten, not retrained
    with pytest.warns(results.DamagedResults, match="not a scalinglab file"):  # foreign files stay
        df = results.load(sweep_dir)
    assert (df["status"] == "done").all() and len(df) == 10


def _record(sweep_dir, worker, start):
    start.wait()  # all at once
    for i in range(40):
        jobs.record_jobs(SweepDir(sweep_dir), "local", {f"run-{worker}-{i}": str(i)})


def test_concurrent_launchers_keep_every_job_in_jobs_json(tmp_path):
    """Four processes record jobs at once: the sweep folder's lock loses none of them."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    workers = [ctx.Process(target=_record, args=(tmp_path, w, start)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(w.exitcode == 0 for w in workers)
    assert len(jobs.read_jobs(SweepDir(tmp_path))) == 4 * 40


def test_a_damaged_jobs_json_or_requeue_record_is_reported_and_the_sweep_goes_on(tmp_path, capsys):
    sweep, run = SweepDir(tmp_path), RunDir(tmp_path)
    sweep.jobs.write_text('{"abc": {"job_id": "12')
    with pytest.warns(results.DamagedResults, match="jobs.json: not JSON"):
        assert jobs.read_jobs(sweep) == {}
    jobs.record_jobs(sweep, "local", {"abc": "7"})  # the next job recorded repairs it
    assert jobs.read_jobs(sweep) == {"abc": {"job_id": "7", "executor": "local"}}
    run.requeues.write_text("[1, 2")
    with pytest.warns(results.DamagedResults, match="requeues.json: not JSON"):
        assert run_files.requeue_count(run) == 0


def test_plot_regenerates_figures_from_disk_alone(trained_copy):
    sweep_dir = trained_copy
    for png in (sweep_dir / "figures").iterdir():
        png.unlink()
    (sweep_dir / "fit.json").unlink()
    code = "import sys; from scalinglab.cli import main; rc = main(sys.argv[1:]); assert 'jax' not in sys.modules; sys.exit(rc)"
    proc = subprocess.run([sys.executable, "-c", code, "plot", str(sweep_dir), "--bootstrap", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    fit = json.loads((sweep_dir / "fit.json").read_text())
    assert {"frontier.png", "contours.png", "residuals.png", "extrapolation.png", "backtest.png"} <= law_figures(fit)  # 10 runs
    check_sweep(sweep_dir, n_runs=10, figures=FIGURES)


def test_fit_command_prints_json_from_results_and_csv(trained_copy, tmp_path, capsys):
    assert main(["fit", str(trained_copy), "--json", "--bootstrap", "0", "--law", "chinchilla"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert set(fit["law"]["params"]) == {"E", "A", "B", "alpha", "beta"} and fit["law"]["n_points"] == 10 and fit["power_laws"]
    csv = tmp_path / "runs.csv"
    results.load(trained_copy).rename(columns={"N": "params", "L": "val"})[["params", "D", "val"]].to_csv(csv)
    assert main(["fit", "--csv", str(csv), "--map", "N=params", "--map", "L=val", "--json", "--bootstrap", "0", "--law", "chinchilla"]) == 0
    assert json.loads(capsys.readouterr().out)["law"]["params"]["alpha"] == pytest.approx(fit["law"]["params"]["alpha"], rel=1e-3)


def test_load_gives_U_the_unique_tokens_each_run_could_see(trained_copy):
    split = len(load_corpus(data_config()).train)  # the sweep trains on the whole training split
    assert (results.load(trained_copy)["U"] == split).all() and (fit_inputs(SweepDir(trained_copy)).runs["U"] == split).all()
    for summary in trained_copy.glob("runs/*/summary.json"):  # as runs trained before U was recorded
        record = json.loads(summary.read_text())
        del record["U"]
        summary.write_text(json.dumps(record))
    df = results.load(trained_copy)
    assert len(df) == 10 and df["U"].isna().all()
    assert fit_inputs(SweepDir(trained_copy)).runs["U"].isna().all()  # what the fits are given: U, unknown


# ---- files damaged in type or shape, files that are not files, random damage ----------------------


def _edit(path, change) -> None:
    """Rewrites a JSON file through change(obj) -> obj (NaN and infinities as Python's json writes them)."""
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _set(key, value):
    return lambda obj: {**obj, key: value}


TYPE_DAMAGE = [  # (file, change, what the warning says): each leaves its run out, named
    ("run.json", _set("N", 0), "N: input should be greater than or equal to 1"),
    ("run.json", _set("N", -5), "N: input should be greater than or equal to 1"),
    ("run.json", _set("N", math.nan), "N: input should be a valid integer"),
    ("run.json", _set("N", "12480"), "N: input should be a valid integer"),
    ("run.json", _set("steps", [40]), "steps: input should be a valid integer"),
    ("run.json", _set("eval_steps", {"a": 1}), "eval_steps: input should be a valid list"),
    ("summary.json", _set("L", "abc"), "L: input should be a valid number"),
    ("summary.json", _set("L", -1.0), "L: a loss must be positive"),
    ("summary.json", _set("status", "running"), "status running is never written"),
    ("summary.json", _set("status", "done onmouseover=alert(1)"), "status: input should be"),
    ("summary.json", lambda obj: [obj], "not a JSON object (list)"),
    ("summary.json", lambda obj: "done", "not a JSON object (str)"),
]


@pytest.mark.parametrize("name,change,says", TYPE_DAMAGE, ids=[f"{n}:{s.split(':')[0]}" for n, _, s in TYPE_DAMAGE])
def test_a_file_of_the_wrong_type_or_shape_is_damaged_like_a_broken_one(trained_copy, name, change, says):
    run = sorted((trained_copy / "runs").iterdir())[3]
    _edit(run / name, change)
    with pytest.warns(results.DamagedResults) as caught:
        df = results.load(trained_copy).set_index("run_id")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith(f"{run / name}: ") and says.lower() in messages[0].lower(), messages
    assert df.loc[run.name, "status"] == "damaged" and (df.drop(run.name)["status"] == "done").all()


@pytest.mark.parametrize(
    "line,says",
    [
        ({"step": 20, "tokens": 0, "L": -1.0}, "tokens: input should be greater than or equal to 1"),
        ({"step": 20, "tokens": 2560, "L": -1.0}, "L: a loss must be positive"),
        ({"step": "20", "tokens": 2560, "L": 3.0}, "step: input should be a valid integer"),
        ([20, 2560, 3.0], "not a JSON object (list)"),
    ],
)
def test_an_evaluation_of_the_wrong_type_is_skipped_and_named(trained_copy, line, says):
    run = sorted((trained_copy / "runs").iterdir())[0]
    evaluations = [x for x in (run / "metrics.jsonl").read_text().splitlines() if '"L"' in x]
    (run / "metrics.jsonl").write_text(json.dumps(line) + "\n" + evaluations[1] + "\n")
    with pytest.warns(results.DamagedResults) as caught:
        evals = results.load(trained_copy, per_eval=True)
    [message] = [str(w.message) for w in caught]
    assert message.startswith(f"{run / 'metrics.jsonl'}: line 1 ") and says.lower() in message.lower()
    assert evals[evals["run_id"] == run.name]["step"].tolist() == [40] and len(evals) == 19


def test_fit_plot_status_and_report_leave_out_and_name_runs_damaged_in_type(trained_copy, capsys):
    """The issue's cases: a run.json with N = 0 used to make fit skip L(N,D) for the whole sweep
    unnamed; a metrics line with tokens 0 and L -1 dropped Approach 1 with a false reason; a
    summary with L "abc", a list for a summary, metrics.jsonl a folder: tracebacks."""
    r = sorted((trained_copy / "runs").iterdir())
    _edit(r[0] / "run.json", _set("N", 0))
    _edit(r[1] / "summary.json", _set("L", "abc"))
    _edit(r[2] / "summary.json", lambda obj: [obj])
    (r[3] / "metrics.jsonl").write_text(
        '{"step": 20, "tokens": 0, "L": -1}\n' + [x for x in (r[3] / "metrics.jsonl").read_text().splitlines() if '"L"' in x][1] + "\n"
    )
    (r[4] / "metrics.jsonl").unlink()
    (r[4] / "metrics.jsonl").mkdir()
    named = [r[0] / "run.json", r[1] / "summary.json", r[2] / "summary.json", r[3] / "metrics.jsonl", r[4] / "metrics.jsonl"]
    assert main(["fit", str(trained_copy), "--json", "--bootstrap", "0"]) == 0
    out, err = capsys.readouterr()
    fit = json.loads(out)
    assert fit["n_runs"] == 7 and "skipped" not in fit["law"] and "skipped" not in fit["envelope"]  # Approach 1 kept
    assert all(sum(str(p) in line for line in err.splitlines()) == 1 for p in named), err
    for args in (["plot", str(trained_copy), "--bootstrap", "0"], ["status", str(trained_copy)], ["report", str(trained_copy)]):
        assert main(args) == 0, args
        err = capsys.readouterr().err
        assert all(line.startswith("scalinglab: warning: ") for line in err.splitlines())
        assert all(str(p) in err for p in named[:3]), (args, err)  # the runs left out, in every command


def test_a_fifo_folder_or_symlink_out_is_never_opened_as_a_results_file(trained_copy, tmp_path):
    """A FIFO in place of a results file blocked status, fit and report forever; a symlink out of
    the sweep was followed. The guard's timeout only keeps a regression from hanging the suite."""
    r = sorted((trained_copy / "runs").iterdir())
    (r[0] / "summary.json").unlink()
    os.mkfifo(r[0] / "summary.json")
    (r[1] / "metrics.jsonl").unlink()
    os.mkfifo(r[1] / "metrics.jsonl")
    outside = tmp_path / "elsewhere.json"
    outside.write_text((r[2] / "run.json").read_text())  # a valid spec: followed, it would be read
    (r[2] / "run.json").unlink()
    (r[2] / "run.json").symlink_to(outside)
    (r[3] / "summary.json").unlink()
    (r[3] / "summary.json").symlink_to(r[4] / "summary.json")  # inside the sweep: read
    expect = {
        r[0] / "summary.json": "a FIFO, not a file",
        r[1] / "metrics.jsonl": "a FIFO, not a file",
        r[2] / "run.json": "a symlink out of",
    }
    for verb in ("status", "fit", "report"):
        args = [sys.executable, "-m", "scalinglab.cli", verb, str(trained_copy), *(["--bootstrap", "0"] if verb == "fit" else [])]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        for path, says in expect.items():
            if verb != "status" or path.name != "metrics.jsonl":  # status reads evaluations of unfinished runs only
                assert f"{path}: {says}" in proc.stderr, (verb, proc.stderr)
    (trained_copy / "fit.json").unlink()
    os.mkfifo(trained_copy / "fit.json")
    proc = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli", "report", str(trained_copy)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 2 and f"{trained_copy / 'fit.json'}: a FIFO, not a file" in proc.stderr


@pytest.mark.parametrize("content", ["[1, 2]", '{"schema": 3, "n_runs": "<script>alert(1)</script>"}', '"fit"'])
def test_report_refuses_a_fit_json_of_the_wrong_shape_in_one_line_and_plot_repairs_it(trained_copy, capsys, content):
    from scalinglab.analysis.sweepfit import SCHEMA  # noqa: PLC0415 (the version this scalinglab writes)

    (trained_copy / "fit.json").write_text(content.replace('"schema": 3', f'"schema": {SCHEMA}'))
    assert main(["report", str(trained_copy)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"scalinglab: error: {trained_copy / 'fit.json'}: ") and "scalinglab plot" in line
    assert not (trained_copy / "report.html").exists()
    assert main(["plot", str(trained_copy), "--bootstrap", "0"]) == 0 and main(["report", str(trained_copy)]) == 0


def _add_task_scores(study) -> None:
    """Task scores for every evaluation of every run, as a sweep with a task records them (the
    trained sweep has none): the fuzz test damages them too."""
    for run in (study / "runs").iterdir():
        records = []
        for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()):
            if "L" not in m:  # a curve point: tasks are scored at evaluations
                continue
            for shots in (0, 2):
                acc = 0.3 + 0.05 * shots + 0.001 * m["step"]
                demos = [["p1", "p2"]] * 3 if shots else [[], [], []]
                records.append(
                    {"step": m["step"], "tokens": m["tokens"], "task": "arith", "kind": "multiple_choice", "shots": shots,
                     "strategy": "random", "acc": acc, "acc_norm": acc, "task_loss": 1.2, "task_bpb": 1.7, "p_gold": 0.3,
                     "chance": 0.25, "n_items": 3, "acc_se": 0.05, "items": ["a", "b", "c"], "item_acc": [1, 0, 0],
                     "item_score": [0.4, 0.2, 0.3], "demos": demos}
                )  # fmt: skip
        (run / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _is_damaged(path, study) -> bool:
    """Whether the readers' own definitions call the file damaged: the oracle for what must be named."""
    from scalinglab.analysis.sweepfit import SweepFit  # noqa: PLC0415 (analysis only for this test)
    from scalinglab.errors import InputError  # noqa: PLC0415
    from scalinglab.store.records import CurvePoint, Evaluation, RunRecord, Summary, TaskScore  # noqa: PLC0415
    from scalinglab.sweep.spec import SweepSpec  # noqa: PLC0415

    if path.is_symlink() or not path.is_file():
        return path.exists() or path.is_symlink()
    if path.name == "fit.json":
        try:
            SweepFit.read(path)
        except InputError:
            return True
        return False
    try:
        objs = [json.loads(line) for line in path.read_text().splitlines()] if path.suffix == ".jsonl" else [json.loads(path.read_text())]
    except ValueError:
        return True
    if path.name == "sweep.json":
        try:
            SweepSpec.model_validate(objs[0])
        except ValueError:
            return True
        return False
    check = {"run.json": RunRecord, "summary.json": Summary, "metrics.jsonl": Evaluation, "tasks.jsonl": TaskScore, "jobs.json": None}[
        path.name
    ]
    if check is None:
        return jobs._check_jobs(objs[0]) is not None
    if check is Evaluation:  # metrics.jsonl: evaluations (with L) and the training curve's points
        return any((Evaluation if isinstance(obj, dict) and "L" in obj else CurvePoint).check(obj) is not None for obj in objs)
    return any(check.check(obj) is not None for obj in objs)


def test_fuzz_random_damage_to_every_results_file(trained_copy, tmp_path):
    """Rounds of three random damages to a copy of a trained study, each in another file: fit,
    status and report (and every fourth round plot) run without a traceback, and name every file
    the readers' definitions (store/records.py, SweepSpec, SweepFit) call damaged."""
    _add_task_scores(trained_copy)
    rounds, mutations = 10, []  # 30 mutations a run; more by hand found no other class (kept short for CI)
    for seed in range(rounds):
        rng, study = random.Random(seed), tmp_path / f"round{seed}"
        shutil.copytree(trained_copy, study, symlinks=True, ignore=shutil.ignore_patterns("jax_cache", "logs", "weights.safetensors"))
        done: dict = {}
        while len(done) < 3:
            path, what = damage.mutate(study, rng, avoid=set(done))
            done[path] = what
        err = io.StringIO()
        verbs = [["status"], ["report"], ["fit", "--bootstrap", "0"]] + ([["plot", "--bootstrap", "0"]] if seed % 4 == 0 else [])
        for verb, *flags in verbs:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                assert main([verb, str(study), *flags]) in (0, 2), (verb, done)
        assert all(line.startswith("scalinglab: ") for line in err.getvalue().splitlines()), err.getvalue()
        for path, what in done.items():
            mutations.append(what)
            run_left_out = path.suffix == ".jsonl" and any(_is_damaged(path.parent / f, study) for f in ("run.json", "summary.json"))
            if _is_damaged(path, study) and not run_left_out:  # a damaged run's evaluations are not read
                # a run.json that is not there (a dangling symlink): its folder is "not a run folder"
                named = str(path.parent) if path.name == "run.json" and not path.exists() else str(path)
                assert named in err.getvalue(), (path, what, err.getvalue())
    assert len(mutations) == 3 * rounds


def test_a_sweep_under_a_folder_named_like_rich_markup_is_fitted_and_named_as_it_is(trained_sweep, tmp_path, capsys):
    """A `[/]` in a path is text: rich read it as a closing tag and fit, plot and report failed."""
    study = Path(shutil.copytree(trained_sweep[1], tmp_path / "a[/]b[bold]" / "tiny"))
    damaged_spec = sorted((study / "runs").iterdir())[0] / "run.json"
    _edit(damaged_spec, _set("N", 0))
    for args in (["fit", str(study), "--bootstrap", "0"], ["plot", str(study), "--bootstrap", "0"], ["report", str(study)]):
        assert main(args) == 0, args
        out, err = capsys.readouterr()
        assert str(damaged_spec) in out + err, args  # the left-out run, named letter for letter
    assert f"wrote {study / 'report.html'}" in out
