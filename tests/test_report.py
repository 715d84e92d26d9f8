"""`scalinglab report`: one self-contained page per sweep, opened from disk in a real headless
Chromium (Debian's, driven by Playwright): no console errors, every figure decodes, every run's
link reaches its curve; the law's values are those of fit.json. A folder without a fit, or with
one of another version, is refused in one line."""

import base64
import itertools
import json
import os
import shutil
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel

from scalinglab.analysis.page import page
from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.analysis.taskfit import TaskExtrapolation
from scalinglab.cli import main
from scalinglab.store.frame import load
from scalinglab.store.layout import SweepDir

ROOT = Path(__file__).resolve().parents[1]


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


# Hostile strings: each would run a script or add an element if it reached the page as markup.
# The page must show them as text, letter for letter.
PAYLOADS = [
    "<script>window.pwned=1</script>",
    "\"><img src=x onerror=\"window.pwned=1\">",
    "'><svg onload=window.pwned=1>",
    "done onmouseover=window.pwned=1",
    "</title></style><iframe srcdoc='<script>parent.pwned=1</script>'></iframe>",
    "<a href=\"javascript:window.pwned=1\">x</a>",
    "&lt;b&gt; ` ${'$'} \\ $x^{",
]
# Every element the page writes itself; an injected one (iframe, script, form...) is not among them.
ELEMENTS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "code", "b", "a", "table", "tbody",
            "tr", "th", "td", "figure", "img", "figcaption", "section", "svg", "polyline", "text"}  # fmt: skip
INSPECT = """() => {
    const all = Array.from(document.querySelectorAll('*'));
    return {
        pwned: window.pwned === 1,
        elements: [...new Set(all.map(e => e.localName))],
        handlers: all.filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
        hrefs: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')),
        srcs: Array.from(document.images).map(i => i.getAttribute('src').slice(0, 22)),
        text: document.title + document.body.textContent,
        policy: document.querySelector('meta[http-equiv="Content-Security-Policy"]').content,
    };
}"""


def hostile(i: int) -> str:
    return f"{PAYLOADS[i % len(PAYLOADS)]}#{i}#"


def inspect(browser, html: Path) -> dict:
    """The page opened: no dialog, no console error (a script or request the page's policy
    refused), no script run, nothing but the page's own elements, links and images, and a policy
    that allows no script."""
    page = browser.new_page()
    events = []
    page.on("dialog", lambda d: (events.append(d.message), d.dismiss()))
    page.on("console", lambda m: events.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events.append(str(e)))
    page.goto(html.as_uri())
    seen = page.evaluate(INSPECT)
    page.mouse.move(300, 300)  # over the run table: an onmouseover would fire
    page.close()
    assert events == [] and not seen["pwned"]
    assert seen["policy"].startswith("default-src 'none';") and "script" not in seen["policy"]  # no script allowed
    assert set(seen["elements"]) <= ELEMENTS and seen["handlers"] == 0
    assert all(h.startswith("#run-") for h in seen["hrefs"]) and set(seen["srcs"]) <= {"data:image/png;base64,"}
    return seen


def _hostile_fit(model, data, count):
    """fit.json's data with a hostile string in place of every string that SweepFit admits: every
    value but an enum's, and every key of a dict that is not a part's fields (parameter and task
    names). `model`, the SweepFit read from it, tells which is which."""
    if isinstance(model, BaseModel):
        return {k: _hostile_fit(getattr(model, k, None), v, count) for k, v in data.items()}
    if isinstance(data, dict):
        return {hostile(next(count)): _hostile_fit(model[k], v, count) for k, v in data.items()}
    if isinstance(data, list):
        return [_hostile_fit(m, v, count) for m, v in zip(model, data)]
    return hostile(next(count)) if isinstance(data, str) and not isinstance(model, Enum) else data


def test_hostile_names_paths_and_fit_values_stay_text_in_the_page(browser, tmp_path, capsys):
    """Through the CLI on a copied study: a hostile sweep folder name, name in sweep.json, run ids,
    figure file name, task names, and every string of fit.json that SweepFit admits; a summary.json status with a
    handler in it is refused by the reading layer (that run is left out)."""
    name = "\"><img src=x onerror=window.pwned=1> '<svg onload=window.pwned=1>"  # no / in a folder name
    sweep = Path(shutil.copytree(ROOT / "results" / "abilities", tmp_path / name, ignore=shutil.ignore_patterns("jax_cache", "logs")))
    runs = sorted((sweep / "runs").iterdir())
    ids = [hostile(i).replace("/", "|") for i in range(len(runs) - 1)]
    for run, new in zip(runs, ids):
        run.rename(run.with_name(new))
    rows = [i for i in ids if json.loads((sweep / "runs" / i / "run.json").read_text())["role"] != "trunk"]  # trunks: no row
    summary = runs[-1] / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": PAYLOADS[3]}))
    png = sorted((sweep / "figures").glob("*.png"))[0]
    png.rename(png.with_name("<img src=x onerror=window.pwned=1>.png"))
    saved = json.loads((sweep / "sweep.json").read_text())
    (sweep / "sweep.json").write_text(json.dumps({**saved, "name": PAYLOADS[0]}))
    data = json.loads((sweep / "fit.json").read_text())
    (sweep / "fit.json").write_text(json.dumps(_hostile_fit(SweepFit.model_validate(data), data, itertools.count())))
    assert main(["report", str(sweep)]) == 0
    assert "summary.json" in capsys.readouterr().err
    text = inspect(browser, sweep / "report.html")["text"]
    fit = SweepFit.read(sweep / "fit.json")
    tasks = [k for k, t in fit.tasks.tasks.items() if isinstance(t.extrapolation, TaskExtrapolation)]  # with a held-out row
    laws = [fit.law.form, fit.laws.why, *(c.name for c in fit.laws.candidates)]
    shown = [name, *rows, "<img src=x onerror=window.pwned=1>.png", *laws, *tasks, fit.tasks.strategy]
    assert [s for s in shown if s not in text] == []


def _hostile_part(value, count):
    """A typed value with a hostile string in place of every value and key, numbers and enums too:
    what a fit would hold if a wrong type slipped past the reading layer (model_copy checks none)."""
    if isinstance(value, BaseModel):
        return value.model_copy(update={k: _hostile_part(v, count) for k, v in value if v is not None})
    if isinstance(value, dict):
        return {hostile(next(count)): _hostile_part(v, count) for v in value.values()}
    if isinstance(value, list | tuple):
        return type(value)(_hostile_part(v, count) for v in value)
    return hostile(next(count))


def test_hostile_strings_in_every_field_of_the_fit_and_runs_stay_text_in_the_page(browser, tmp_path):
    """Directly through the page builder: every field of the fit and every column of the runs a
    hostile string, whatever its type, and so are the run ids and sizes of the loss curves."""
    sweep = SweepDir(ROOT / "results" / "abilities")
    count = itertools.count()
    fit = _hostile_part(SweepFit.read(sweep.fit_json), count)
    runs = load(sweep.path).astype(object)
    runs[:] = [[hostile(next(count)) for _ in runs.columns] for _ in range(len(runs))]
    evals = load(sweep.path, per_eval=True)
    evals = evals.assign(**{k: [hostile(next(count)) for _ in range(len(evals))] for k in ("run_id", "N", "D")})
    html = page(hostile(next(count)), fit, runs, evals, {hostile(next(count)): (sweep.figures / "loss_vs_N.png").read_bytes()})
    (tmp_path / "report.html").write_text(html)
    text = inspect(browser, tmp_path / "report.html")["text"]
    numbers = [fit.law.n_bootstrap, fit.extrapolation.n_fit, fit.tasks.shots, *runs["N"], *runs["L"]]  # each a string here
    assert [s for s in [*runs["run_id"], *runs["status"], *evals["run_id"], fit.law.form, *numbers] if s not in text] == []


def test_the_report_embeds_only_png_files_inside_the_sweep(browser, tmp_path, capsys):
    """figures/ may hold anything: a symlink to a file outside the sweep, a FIFO (which blocked the
    report forever), a folder, a file that is no PNG; or be a symlink out itself. Each is left out,
    named in one warning, and the report is written; a symlink to a figure of the sweep is shown."""
    sweep = Path(shutil.copytree(ROOT / "results" / "abilities", tmp_path / "s", ignore=shutil.ignore_patterns("jax_cache", "logs")))
    figures = sweep / "figures"
    pngs = sorted(figures.glob("*.png"))
    (figures / "zz-out.png").symlink_to("/etc/passwd")
    os.mkfifo(figures / "zz-fifo.png")
    (figures / "zz-folder.png").mkdir()
    (figures / "zz-text.png").write_text("<script>window.pwned=1</script>")
    (figures / "zz-in.png").symlink_to(pngs[0])
    assert main(["report", str(sweep)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "left out of the report" in line]
    assert len(warned) == 4
    assert all(sum(f"figures/zz-{name}.png: " in line for line in warned) == 1 for name in ("out", "fifo", "folder", "text"))
    seen = inspect(browser, sweep / "report.html")
    assert len(seen["srcs"]) == len(pngs) + 1
    assert base64.b64encode(Path("/etc/passwd").read_bytes()).decode()[:40] not in (sweep / "report.html").read_text()

    shutil.move(figures, tmp_path / "elsewhere")
    figures.symlink_to(tmp_path / "elsewhere")
    assert main(["report", str(sweep)]) == 0
    err = capsys.readouterr().err
    assert err.count("a symlink out of") == err.count("left out of the report") == len(list(figures.glob("*.png")))
    assert inspect(browser, sweep / "report.html")["srcs"] == []
