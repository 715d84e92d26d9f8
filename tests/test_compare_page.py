"""`scalinglab compare --html FILE`: the comparison as one self-contained page, opened from disk in a
real headless Chromium (as tests/test_report.py opens report.html): no console errors, the figure
decodes, the k shown is the --json report's; hostile group names stay text; an existing file needs
--force and bad input writes nothing."""

import base64
import json
from pathlib import Path

import pandas as pd

from scalinglab.cli import main
from test_compare import MAPS, draw, law, write_table
from test_report import PAYLOADS, inspect

QUICK = ["--law", "chinchilla", "--bootstrap", "20"]
FAR = 1e22  # a compute where a sweep of lower irreducible loss reaches what the baseline never does: k is inf
CELLS = "Array.from(document.querySelectorAll('table')).map(t => Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.textContent)))"


def opened(browser, html: Path) -> dict:
    """The page from disk: console errors, whether each image decoded, every table's cells, the text."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    seen = {
        "errors": errors,
        "decoded": page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"),
        "tables": page.evaluate(CELLS),
        "text": page.evaluate("document.body.textContent"),
    }
    page.close()
    return seen


def shown(x: float | None) -> str:
    return "inf" if x is None else f"{x:.3g}"  # JSON's null for k is inf


def k_cells(report: dict) -> list[list[str]]:
    """Each comparison's k column as the page should show it: the --json value and interval."""
    cell = lambda k: f"{shown(k['value'])} [{shown(k['ci'][0])}, {shown(k['ci'][1])}]"  # noqa: E731  (a one-line helper, named where it is read)
    return [[cell(p["k"]) for p in c["points"]] for c in report["comparisons"]]


def test_the_page_opens_from_disk_and_shows_the_json_reports_numbers(browser, tmp_path, capsys):
    table = write_table(tmp_path / "t.csv", {"A": draw(law(), 1), "B": draw(law(), 2, scale=2**0.5), "low E": draw(law(E=0.3), 3)})
    html = tmp_path / "compare.html"
    args = ["compare", "--csv", str(table), *MAPS, *QUICK, "--at", f"C_6ND={FAR}", "--html", str(html)]
    assert main(args) == 0
    assert f"wrote {html}" in capsys.readouterr().out.replace("\n", "")
    first = opened(browser, html)
    figure = tmp_path / "compare.png"
    assert main([*args, "--json", "--force", "--figure", str(figure)]) == 0  # the same seeds: the same numbers; the JSON alone on stdout
    report = json.loads(capsys.readouterr().out)
    assert base64.b64encode(figure.read_bytes()).decode() in html.read_text()  # the page embeds --figure's own drawing
    again = opened(browser, html)
    assert first["errors"] == again["errors"] == [] and first["decoded"] == [True]
    assert first["tables"] == again["tables"]
    comparisons = [t for t in again["tables"] if t[0][-1] == "k"]
    assert [[row[-1] for row in t[1:]] for t in comparisons] == k_cells(report)
    assert comparisons[1][-1][-1].startswith("inf [")  # low E at FAR: below every loss A's law reaches
    assert [t[0][3] for t in comparisons] == ["L*_B (B)", "L*_B (low E)"]
    text = again["text"]
    assert report["convention"] in text and all(c["verdict"] in text for c in report["comparisons"])
    assert all(f"{v:.4g}" in text and s["why"] in text for s in report["sweeps"] for v in s["law"]["params"].values())


def test_hostile_group_names_stay_text_in_the_page(browser, tmp_path):
    names = [PAYLOADS[1], PAYLOADS[0], PAYLOADS[4]]  # "><img onerror>, <script>, </title></style><iframe srcdoc>
    table = write_table(tmp_path / "t.csv", {name: draw(law(), i) for i, name in enumerate(names)})
    html = tmp_path / "compare.html"
    assert main(["compare", "--csv", str(table), *MAPS, *QUICK, "--html", str(html)]) == 0
    seen = inspect(browser, html)  # no dialog, no console error, no script run, only the page's own elements
    assert len(seen["srcs"]) == 1
    assert all(seen["text"].count(name) >= 4 for name in names)  # title, heading, law, table, verdict


def test_an_existing_page_needs_force_and_bad_input_writes_nothing(tmp_path, capsys):
    table = write_table(tmp_path / "t.csv", {"A": draw(law(), 1), "B": draw(law(), 2)})
    html = tmp_path / "compare.html"
    html.write_text("kept")
    args = ["compare", "--csv", str(table), *MAPS, *QUICK, "--html", str(html)]
    assert main(args) == 2  # refused before any fit
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"--html {html}: exists; add --force" in err and out == "" and html.read_text() == "kept"
    assert main(["compare", "--csv", str(table), *MAPS, "--force"]) == 2
    assert "--force: replaces the --figure or --html file" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "no" / "compare.html")]) == 2
    assert "no folder" in capsys.readouterr().err
    runs = pd.read_csv(table).astype(object)
    runs.loc[2, "loss"] = "x"
    runs.to_csv(tmp_path / "bad.csv", index=False)
    html.unlink()
    assert main(["compare", "--csv", str(tmp_path / "bad.csv"), *MAPS, *QUICK, "--html", str(html)]) == 2
    assert "row 3, column 'loss' (L): 'x' is not a number" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "t.csv"]
