"""Results on disk, read back by the tests that share the session's trained sweep (one file, so
that one test worker trains it): figures and fits regenerated from the folder alone, and damaged
results: a truncated metrics line, a lost or corrupt summary, a corrupt run.json, foreign files, a
damaged jobs.json. load, fit, plot and status name each damaged file and go on with the rest; run
rewrites a run.json and trains again the runs that lost their summaries."""

import json
import multiprocessing
import subprocess
import sys
import warnings

import pytest
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
    truncated = f"{ids['truncated']}/metrics.jsonl: line 2 is not a whole evaluation record"
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
