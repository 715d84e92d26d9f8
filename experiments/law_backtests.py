"""Which law of the loss does each real table choose, and how far off is each out of sample?
For every outside table of runs in tests/data (provenance in tests/data/README.md) and the
committed studies in results/, every law family is fitted on the runs up to each of 4 rolling
origins by compute C_6ND (or N where a study holds out by N) and scored on the runs beyond (mean
|relative error| of their loss), as `scalinglab fit --law auto` chooses.

Tables: Chinchilla's Figure 4 (Epoch AI, 245 runs); the OLMo ladder's final checkpoints (16 runs,
C4 loss); the Misfitting survey's open_lm sweep (best lr per (N, D)); Open-Athena's compiled IsoFLOP
runs, one fit per group (QC outliers dropped, the digitised Llama 3 group left out: its loss unit
is not stated); Muennighoff et al.'s repeated-data runs (with U); results/cpu-study,
results/abilities and results/lr-study (each (N, D)'s best run), by N.
Found (2026-12-06): Farseer chosen on 8 of the 9 tables of single-epoch runs, Chinchilla's form on
the Misfitting sweep and the committed studies, the data-constrained law on the repeated-data runs
(docs/fitting.md has the table).
Usage: python experiments/law_backtests.py   (~10 minutes on 2 cores)
"""

import os

os.environ.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from scalinglab.analysis.choose import choose
from scalinglab.analysis.hparams import tune, tuned_axes
from scalinglab.analysis.select import fit_inputs
from scalinglab.store.layout import SweepDir
from scalinglab.sweep.spec import FitSpec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def tables() -> dict[str, tuple[pd.DataFrame, str]]:
    """name -> (runs with N, D, C, L and maybe U; the column the origins roll along)."""
    out = {}
    chin = pd.read_csv(DATA / "chinchilla_fig4_points.csv").rename(columns={"Model Size": "N", "Training FLOP": "C", "loss": "L"})
    chin["D"] = chin["C"] / (6 * chin["N"])
    out["chinchilla_fig4"] = (chin, "C")
    olmo = pd.read_csv(DATA / "olmo_ladder_tasks.csv")
    olmo = olmo.loc[olmo.groupby("model")["step"].idxmax()].rename(columns={"c4_loss": "L"})
    out["olmo_ladder"] = (olmo.assign(C=6 * olmo["N"] * olmo["D"]), "C")
    mis = pd.read_csv(DATA / "misfitting_runs.csv")
    out["misfitting"] = (mis.loc[mis.groupby(["N", "D"])["L"].idxmin()], "C")
    iso = pd.read_csv(DATA / "openathena_isoflop.csv")
    for group, rows in iso[~iso["outlier"] & (iso["group"] != "llama_3__raw_loss")].groupby("group"):
        out[f"openathena:{group}"] = (rows.assign(C=6 * rows["N"] * rows["D"]), "C")
    rep = pd.read_csv(DATA / "repeated_runs.csv")
    out["repeated_runs"] = (rep.assign(C=6 * rep["N"] * rep["D"]), "C")
    for study in ("cpu-study", "lr-study", "abilities"):  # each holds out by N, as its sweep says
        runs = fit_inputs(SweepDir(ROOT / "results" / study)).runs
        if tuned_axes(runs):
            runs, _ = tune(runs, 0)
        out[study] = (runs, "N")
    return out


def backtest(name: str, runs: pd.DataFrame, by: str) -> list[str]:
    table = choose(runs, FitSpec(bootstrap=0, holdout_by=by), all_intervals=False).table
    scores = {c.name: c.score for c in table.candidates}
    cells = "  ".join(f"{n} {'-' if s is None else f'{s:.2%}'}" for n, s in scores.items())
    return [f"{name} ({len(runs)} runs, origins by {by}): {cells}", f"  chosen: {table.why}"]


def main() -> None:
    items = tables()
    with ProcessPoolExecutor(2) as pool:
        results = pool.map(backtest, items, [t[0] for t in items.values()], [t[1] for t in items.values()])
        for lines in results:
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
