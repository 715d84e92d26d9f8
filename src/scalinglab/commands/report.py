"""`scalinglab report results/<sweep>`: writes results/<sweep>/report.html (analysis/page.py)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..analysis.page import report_page
from ..store.files import write_text
from ..store.frame import NotASweep
from ..store.layout import SweepDir


def main(args, console: Console) -> int:
    sweep = SweepDir(Path(args.path))
    if not sweep.runs.is_dir():
        raise NotASweep(f"{args.path}: no {sweep.runs.name}/ folder; is this a results/<sweep> folder?")
    write_text(sweep.report, report_page(sweep))
    console.print(escape(f"wrote {sweep.report}: open it in a browser, no server needed"))
    return 0
