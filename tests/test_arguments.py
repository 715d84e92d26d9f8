"""Hostile arguments and paths (issue 33): every path a command writes is checked, and every number
bounded, before any work; a bad one is exit code 2, one line naming what the user wrote, and not a
byte written or changed. Nothing is overwritten that the user did not ask to be (--force)."""

import shutil
from pathlib import Path

import pytest
from conftest import tiny_sweep

from scalinglab.cli import main

STUDY = Path(__file__).resolve().parents[1] / "results" / "cpu-study"


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """A folder to work in: a sweep YAML, a copy of the committed study, a file and a folder."""
    (tmp_path / "sweeps").mkdir()
    tiny_sweep(tmp_path / "sweeps")
    shutil.copytree(STUDY, tmp_path / "study")
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


SWEEP, SUGGEST = "sweeps/tiny.yaml", ["suggest", "study", "--target", "C_6ND=1e16", "--bootstrap", "0"]
CASES = {  # argv, the words its one line must hold
    "plan --csv onto a folder": (["plan", SWEEP, "--csv", "adir"], "--csv adir: a folder"),
    "plan --json in no folder": (["plan", SWEEP, "--json", "nodir/x.json"], "--json nodir/x.json: no folder"),
    "plan --json under a file": (["plan", SWEEP, "--json", "afile/x.json"], "--json afile/x.json: "),
    "plan --csv onto a file": (["plan", SWEEP, "--csv", "afile"], "--csv afile: exists; add --force"),
    "suggest --out onto a folder": ([*SUGGEST, "--out", "adir"], "--out adir: a folder"),
    "suggest --out onto a file": ([*SUGGEST, "--out", "afile"], "--out afile: exists; add --force"),
    "suggest --out onto sweep.json": ([*SUGGEST, "--out", "study/sweep.json", "--force"], "--out study/sweep.json: inside the results"),
    "suggest --out into a sweep": ([*SUGGEST, "--out", "study/runs/x.yaml"], "--out study/runs/x.yaml: inside the results"),
    "suggest --target with no runs": (
        ["suggest", "study", "--target", "C_6ND=1e300", "--bootstrap", "0", "--out", "new.yaml"],
        "--target C_6ND=1e300: every candidate run",
    ),
    "suggest --budget inf": ([*SUGGEST, "--budget", "inf", "--out", "new.yaml"], "--budget inf: give the FLOPs (6ND) the new runs may spend"),
    "run --results onto a file": (["run", SWEEP, "--results", "afile"], "--results afile: "),
    "run --results under a file": (["run", SWEEP, "--results", "afile/r"], "--results afile/r: "),
    "run --max-parallel 0": (["run", SWEEP, "--max-parallel", "0"], "argument --max-parallel: 0: give a whole number at least 1"),
    "run --threads-per-job -3": (["run", SWEEP, "--threads-per-job", "-3"], "argument --threads-per-job: -3:"),
    "run --max-parallel x": (["run", SWEEP, "--max-parallel", "x"], "argument --max-parallel: x:"),
    "sample --seed 2**64": (["sample", "r", "--prompt", "x", "--seed", str(2**64)], f"argument --seed: {2**64}: give a whole number"),
    "sample --seed -1": (["sample", "r", "--prompt", "x", "--seed", "-1"], "argument --seed: -1:"),
    "sample --temperature nan": (["sample", "r", "--prompt", "x", "--temperature", "nan"], "argument --temperature: nan: give a finite"),
    "sample --temperature inf": (["sample", "r", "--prompt", "x", "--temperature", "inf"], "argument --temperature: inf:"),
    "sample --max-new-tokens 1e9": (["sample", "r", "--prompt", "x", "--max-new-tokens", "1000000000"], "argument --max-new-tokens:"),
    "sample --max-new-tokens 0": (["sample", "r", "--prompt", "x", "--max-new-tokens", "0"], "argument --max-new-tokens: 0:"),
    "sample --top-k -1": (["sample", "r", "--prompt", "x", "--top-k", "-1"], "argument --top-k: -1:"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_argument_is_one_line_and_nothing_written(here, case, capsys):
    argv, words = CASES[case]
    before = snapshot(here)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("scalinglab: error: ") and words in err, err
    assert snapshot(here) == before


@pytest.mark.parametrize("verb", ["plan", "prepare", "run"])
@pytest.mark.parametrize("cache", ["afile", "afile/cache"])
def test_a_cache_that_cannot_be_a_folder_is_one_line(here, verb, cache, monkeypatch, capsys):
    monkeypatch.setenv("SCALINGLAB_CACHE", str(here / cache))
    before = snapshot(here)
    assert main([verb, SWEEP, *(["--results", "res"] if verb == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"SCALINGLAB_CACHE={here / cache}: {here / 'afile'} is not a folder" in err, err
    assert snapshot(here) == before


@pytest.mark.parametrize("where", ["figures", "fit.json", "figures/loss_vs_N.png"])
def test_plot_checks_what_it_writes_before_the_fit(here, where, capsys):
    """A folder or file in the way of plot's outputs: refused before fit.json is rewritten."""
    target = here / "study" / where
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.write_text("mine\n") if where == "figures" else target.mkdir()
    before = snapshot(here)
    assert main(["plot", "study"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"study/{where}: " in err and "move it away and run again" in err, err
    assert snapshot(here) == before


def test_plan_replaces_its_table_only_with_force(here, capsys):
    assert main(["plan", SWEEP, "--csv", "afile", "--force"]) == 0
    assert (here / "afile").read_text().startswith("run_id,")
    assert not [p for p in here.iterdir() if p.name.startswith(".")]  # written beside, then swapped in


def test_run_finds_what_its_fit_cannot_write_before_it_trains(here, capsys):
    (here / "res" / "tiny").mkdir(parents=True)
    (here / "res" / "tiny" / "figures").write_text("mine\n")
    before = snapshot(here)
    assert main(["run", SWEEP, "--results", "res"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "res/tiny/figures: " in err and "is not a folder; move it away" in err, err
    assert snapshot(here) == before


def test_a_file_name_of_rich_markup_is_written_and_named_as_it_is(here, capsys):
    assert main(["plan", SWEEP, "--csv", "x[bold]y.csv"]) == 0
    assert (here / "x[bold]y.csv").is_file() and "wrote x[bold]y.csv" in capsys.readouterr().out
