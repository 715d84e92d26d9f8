"""`scalinglab report`: one self-contained page per sweep, opened from disk in a real headless
Chromium (Debian's, driven by Playwright): no console errors, every figure decodes, every run's
link reaches its curve; the law's values are those of fit.json. A folder without a fit, or with
one of another version, is refused in one line."""

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.mark.parametrize("study", ["cpu-study", "abilities"])
def test_the_report_opens_from_disk_with_every_figure_and_run(study, browser, tmp_path):
    sweep = Path(shutil.copytree(ROOT / "results" / study, tmp_path / study, ignore=shutil.ignore_patterns("jax_cache", "logs")))
    assert main(["report", str(sweep)]) == 0
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((sweep / "report.html").as_uri())
    assert errors == []
    decoded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert decoded == [True] * len(list((sweep / "figures").glob("*.png")))
    links = page.evaluate("Array.from(document.querySelectorAll('a[href^=\"#run-\"]')).map(a => a.hash.slice(1))")
    grid_points = [p for p in (sweep / "runs").glob("*/run.json") if json.loads(p.read_text())["role"] != "trunk"]
    assert len(links) == len(grid_points)  # cooldown trunks are not grid points: no row
    assert all(page.evaluate(f"document.getElementById('{target}') !== null") for target in links)
    assert page.locator("h2", has_text="Held-out check").count() == 1
    law = SweepFit.read(sweep / "fit.json").law  # the page shows the fit on disk
    assert page.locator("td", has_text="not pinned").count() == len(law.loose)  # cpu-study: E, B; abilities (kaplan): none
    assert page.locator("h2", has_text="Laws of the loss").count() == 1
    table = SweepFit.read(sweep / "fit.json").laws
    assert page.locator("b", has_text=table.chosen).count() >= 1  # the chosen law, bold in the table
    cells = page.evaluate("Array.from(document.querySelectorAll('td')).map(td => td.textContent)")
    assert all(f"{v:.4g}" in cells for v in law.params.values())
    assert (page.locator("h2", has_text="Task accuracy, held out").count() == 1) == (study == "abilities")


def test_a_sweep_without_a_fit_or_with_an_old_one_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "s" / "runs").mkdir(parents=True)
    assert main(["report", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no fit.json; run `scalinglab plot" in err
    (tmp_path / "s" / "fit.json").write_text(json.dumps({"n_runs": 3, "E": 1.8}))  # before fit.json had a schema
    assert main(["report", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written by another version of scalinglab (schema 1, this one reads 3)" in err
    assert f"regenerate it with `scalinglab plot {tmp_path / 's'}`" in err
    assert not (tmp_path / "s" / "report.html").exists()
