"""How often `compare`'s 95% intervals hold the truth, over draws of the noise, on the synthetic
sweeps of tests/test_compare.py.

- loss: two 24-run tables on results/cpu-study's grid drawn from its law with 0.5% noise, B drawn
  (a) at sqrt(2) N and D (k = 2 everywhere), (b) with alpha 0.56 (k grows with compute), (c) as a
  second draw of A's law (k = 1). Per case and compute: the share of draws whose interval for k
  holds the true k, the median |ln k error| and interval width; and the same for the slope.
- tasks: two copies of results/abilities whose cloze scores are drawn from a known two-step law,
  B's at sqrt(2) times each run's N and tokens, so that B's best accuracy at a compute is A's at
  twice it; per compute the share of intervals of B - A (points) that hold the truth.

    python experiments/compare_coverage.py [--part loss|tasks|both] [--draws 20] [--bootstrap 50]
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

from scalinglab.analysis.compare.multiplier import multiplier, slope  # noqa: E402  (after the path, as the next)
from scalinglab.analysis.compare.tasks import best_accuracy  # noqa: E402
from scalinglab.cli import main  # noqa: E402
from test_compare import CLOZE, MAPS, TRUTH, M, _set_tasks, draw, law, write_table  # noqa: E402  (the tests' truths and writers)

# case: (B's law, the law B's runs are drawn from, at scale x (N, D)); A is law() in every case
CASES = {
    "k = 2": (law(A=TRUTH["A"] * M ** -TRUTH["alpha"], B=TRUTH["B"] * M ** -TRUTH["beta"]), law(), M),
    "k grows": (law(alpha=0.56, A=160.0), law(alpha=0.56, A=160.0), 1.0),
    "k = 1": (law(), law(), 1.0),
}


def compare_json(*args: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", *args, "--json"]) == 0
    return json.loads(out.getvalue())


def loss_draw(case: str, seed: int, bootstrap: int, work: Path) -> list[tuple[str, float, float, float, float]]:
    """(what, estimate, lo, hi, truth) of k at each compute and of the slope, for one draw."""
    (B, drawn, scale), A = CASES[case], law()
    table = write_table(work / "t.csv", {"A": draw(A, 2 * seed + 1), "B": draw(drawn, 2 * seed + 2, scale=scale)})
    report = compare_json("--csv", str(table), *MAPS, "--law", "chinchilla", "--bootstrap", str(bootstrap))
    c = report["comparisons"][0]
    rows = [(p["where"], p["k"]["value"], *p["k"]["ci"], float(multiplier(A, B, p["C_6ND"]))) for p in c["points"]]
    return [*rows, ("slope", c["slope"]["value"], *c["slope"]["ci"], slope(A, B, tuple(c["C_6ND_range"])))]


def task_draw(seed: int, bootstrap: int, work: Path) -> list[tuple[str, float, float, float, float]]:
    a, b = work / "A", work / "B"
    for folder, s, scale in ((a, 2 * seed + 1, 1.0), (b, 2 * seed + 2, M)):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(ROOT / "results" / "abilities", folder)
        _set_tasks(folder, s, scale)
    report = compare_json(str(a), str(b), "--law", "chinchilla", "--bootstrap", str(bootstrap))
    out = []
    for p in report["comparisons"][0]["tasks"]["cloze"]["points"]:
        truth = 100 * float(best_accuracy(CLOZE, 2 * p["C_6ND"]) - best_accuracy(CLOZE, p["C_6ND"]))
        out.append((p["where"], p["d_points"]["value"], *p["d_points"]["ci"], truth))
    return out


def summary(name: str, rows: list[tuple[str, float, float, float, float]], log: bool) -> None:
    by: dict[str, list] = {}
    for what, *values in rows:
        by.setdefault(what, []).append(values)
    for what, values in by.items():
        v, lo, hi, truth = np.array(values, dtype=float).T
        held = np.mean((lo <= truth) & (truth <= hi))
        positive = log and what != "slope"
        error = np.abs(np.log(v / truth)) if positive else np.abs(v - truth)
        width = np.log(hi / lo) if positive else hi - lo
        unit = "ln" if positive else "abs"
        error, width = np.median(error), np.median(width)
        held_of = f"held {held:.0%} of {len(v)}"
        print(f"  {name}, {what}: truth {np.median(truth):.3g}; {held_of}; |error| ({unit}) {error:.3g}; width {width:.3g}")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["loss", "tasks", "both"], default="both")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.draws} draws, {args.bootstrap} resample pairs each; 95% intervals")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.part in ("loss", "both"):
            for case in CASES:
                summary(case, [r for seed in range(args.draws) for r in loss_draw(case, seed, args.bootstrap, work)], log=True)
        if args.part in ("tasks", "both"):
            summary("cloze B - A, points", [r for seed in range(args.draws) for r in task_draw(seed, args.bootstrap, work)], log=False)


if __name__ == "__main__":
    run()
