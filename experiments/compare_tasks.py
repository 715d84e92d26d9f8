"""How often `compare`'s task-accuracy intervals hold the truth. Two copies of results/abilities
whose cloze scores are drawn from a known two-step law (tests/test_compare.py's CLOZE), B's at
sqrt(2) times each run's N and tokens, so that B's best accuracy at a compute is A's at twice it.
For each draw of the noise, `compare --json` reports B - A in points at the runs' lowest, middle and
highest compute with a 95% interval; printed: per compute, the share of draws whose interval holds
the truth, the mean |error| in points and the median interval width.

    python experiments/compare_tasks.py [--draws 20] [--bootstrap 50]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from scalinglab.analysis.compare_tasks import best_accuracy  # noqa: E402  (after the path, as the next)
from scalinglab.cli import main  # noqa: E402
from test_compare import CLOZE, M, _set_tasks  # noqa: E402  (the test's truth and its writer)


def one_draw(seed: int, bootstrap: int, work: Path) -> list[dict]:
    a, b = work / "A", work / "B"
    for folder, s, scale in ((a, 2 * seed + 1, 1.0), (b, 2 * seed + 2, M)):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(ROOT / "results" / "abilities", folder)
        _set_tasks(folder, s, scale)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", str(a), str(b), "--law", "chinchilla", "--bootstrap", str(bootstrap), "--json"]) == 0
    points = json.loads(out.getvalue())["comparisons"][0]["tasks"]["cloze"]["points"]
    for p in points:
        p["truth"] = 100 * float(best_accuracy(CLOZE, 2 * p["C_6ND"]) - best_accuracy(CLOZE, p["C_6ND"]))
    return points


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=50)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.draws):
            for p in one_draw(seed, args.bootstrap, Path(work)):
                lo, hi = p["d_points"]["ci"]
                rows.setdefault(p["where"], []).append((p["d_points"]["value"], lo, hi, p["truth"]))
            last = (f"{w} {v[-1][0]:+.2f} [{v[-1][1]:+.2f}, {v[-1][2]:+.2f}] (truth {v[-1][3]:+.2f})" for w, v in rows.items())
            print(f"draw {seed}: " + ", ".join(last))
    print(f"{args.draws} draws, {args.bootstrap} resample pairs each:")
    for where, values in rows.items():
        v, lo, hi, truth = np.array(values).T
        held = np.mean((lo <= truth) & (truth <= hi))
        error, width = np.mean(np.abs(v - truth)), np.median(hi - lo)
        truth_mid = np.median(truth)
        print(f"  {where}: truth {truth_mid:+.2f} points; interval held it {held:.0%}; mean |error| {error:.2f}; width {width:.2f}")


if __name__ == "__main__":
    main_()
