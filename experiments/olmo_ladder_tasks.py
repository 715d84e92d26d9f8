"""Task scaling laws on the OLMo model ladder (Bhagia et al. 2024): the two-step prediction of
7 tasks' accuracy for OLMo 2 7B and 13B from the 16 ladder runs (190M-1.3B), with bootstrap
intervals, beside the single-step one and the models' measured accuracy; the backtest holding out
the 1.3B runs; and each task's emergence verdict over the ladder. "step 2 at bpb": step 2 applied to
the target's measured bpb, which separates the two steps' errors.

Data: tests/data/olmo_ladder_tasks.csv and olmo_targets.csv (tests/data/README.md). The measured 7B
and 13B numbers are from github.com/allenai/OLMo-ladder at commit 67a3f440f787d020da35e3ca8eeae475fae754f5:
- 7B (N = 6,887,575,552, D = 3,945,065,873,408): src/scripts/paper/data/ladder-runs/
  peteish7_eval_anneal.csv, its one row (the annealed final model);
- 13B (N = 13,202,396,160, D = 5,000,088,518,656): src/scripts/paper/data/ladder-runs/
  peteish13_eval_final.csv, the mean of its last 5 rows, as the paper's --moving_avg 5 takes it;
  these equal the "Actual" column of src/scripts/paper/figures/chained_main.csv, whose "Pred"
  column (the paper's own two-step prediction for 13B) is printed beside ours.
Columns: eval/downstream/<task>_rc_5shot_len_norm (accuracy) and eval/downstream_bpb/<task>_rc_5shot_bpb.

Usage: python experiments/olmo_ladder_tasks.py [--bootstrap K]  (default 200 resamples: about
0.2 s each per task on one core, so 1,000 for 7 tasks and the backtest would take half an hour)
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.analysis.emergence import emergence
from scalinglab.analysis.laws.bootstrap import LEVEL
from scalinglab.analysis.task_laws import (
    backtest,
    bootstrap_two_step,
    final_rows,
    fit_single_step,
    fit_two_step,
    predict_two_step,
    task_columns,
)
from scalinglab.sweep.spec import FitSpec

CSV = Path(__file__).resolve().parents[1] / "tests" / "data" / "olmo_ladder_tasks.csv"
CHANCE = {"hellaswag": 0.25, "arc_easy": 0.25, "arc_challenge": 0.25, "piqa": 0.5, "csqa": 0.2,
          "socialiqa": 1 / 3, "openbookqa": 0.25}
TARGETS = {"7B": (6.888e9, 3.945e12), "13B": (1.320e10, 5.0e12)}
# Measured (acc, bpb) of the targets: tests/data/olmo_targets.csv, from the OLMo-ladder files named above.
TARGETS_CSV = CSV.with_name("olmo_targets.csv")
MEASURED = {model: {r.task: (r.acc, r.bpb) for r in rows.itertuples()} for model, rows in pd.read_csv(TARGETS_CSV).groupby("model")}
PAPER_13B = {"hellaswag": 0.85304, "arc_easy": 0.77242, "arc_challenge": 0.52671, "piqa": 0.82080, "csqa": 0.77609,
             "socialiqa": 0.59948, "openbookqa": 0.44865}  # chained_main.csv, "Pred"
# Test items per task (the standard splits' sizes), for accuracy's standard error in the emergence check.
ITEMS = {"hellaswag": 10042, "arc_easy": 2376, "arc_challenge": 1172, "piqa": 1838, "csqa": 1221, "socialiqa": 1954,
         "openbookqa": 500}


def predictions(frame: pd.DataFrame, task: str, n_boot: int) -> list[dict]:
    chance = CHANCE[task]
    spec = FitSpec(bootstrap=n_boot)  # the fit section's defaults otherwise: Huber delta 1e-3, varpro
    model, boots = fit_two_step(frame, chance, spec), bootstrap_two_step(frame, chance, spec)
    single = fit_single_step(frame, chance)
    rows = []
    for target, (N, D) in TARGETS.items():
        p = predict_two_step(model, boots, N, D)
        acc, bpb = MEASURED[target][task]
        rows.append({"task": task, "target": target, "bpb_pred": p["task_loss"], "bpb": bpb, "acc_pred": p["acc"],
                     "ci": p["acc_ci"], "step2": float(model.step2(bpb)), "single": float(single(N, D)), "acc": acc,
                     "paper": PAPER_13B[task] if target == "13B" else np.nan})
    return rows


def show_predictions(rows: list[dict]) -> None:
    print(f"{'task':<14} {'model':<5} {'bpb pred':>8} {'bpb':>6}   {'two-step acc [95% interval]':<28} {'err':>5}   "
          f"{'step 2 at bpb':>13}   {'1-step':>6} {'err':>5}   {'paper':>5} {'err':>5}   {'measured':>8}")
    for r in rows:
        err, step2_err, single_err, paper_err = (100 * (r[k] - r["acc"]) for k in ("acc_pred", "step2", "single", "paper"))
        paper = f"{100 * r['paper']:5.1f} {paper_err:+5.1f}" if np.isfinite(r["paper"]) else f"{'':5} {'':5}"
        print(f"{r['task']:<14} {r['target']:<5} {r['bpb_pred']:8.3f} {r['bpb']:6.3f}   "
              f"{100 * r['acc_pred']:5.1f} [{100 * r['ci'][0]:5.1f}, {100 * r['ci'][1]:5.1f}]{'':11} {err:+5.1f}   "
              f"{100 * r['step2']:7.1f} {step2_err:+5.1f}   "
              f"{100 * r['single']:6.1f} {single_err:+5.1f}   {paper}   {100 * r['acc']:8.1f}")
    for target in TARGETS:
        sel = [r for r in rows if r["target"] == target]
        counts = {k: sum(abs(r[k] - r["acc"]) <= 0.02 for r in sel) for k in ("acc_pred", "single", "paper")}
        covered = sum(r["ci"][0] <= r["acc"] <= r["ci"][1] for r in sel)
        paper = f", the paper's own prediction {counts['paper']}" if target == "13B" else ""
        print(f"{target}: within 2 points, two-step {counts['acc_pred']} of {len(sel)} tasks (measured inside the "
              f"{LEVEL:.0%} interval: {covered}), single-step {counts['single']}{paper}")


def show_backtest(frame_by_task: dict[str, pd.DataFrame], n_boot: int) -> None:
    print(f"\nbacktest: fitted on the 190M-760M runs, predicting the 1.3B runs' final accuracy "
          f"(error in points, predicted - measured; {n_boot} resamples for the intervals)")
    table = {}
    for task, frame in frame_by_task.items():
        held = backtest(frame, CHANCE[task], spec=FitSpec(bootstrap=n_boot)).set_index("run")
        covered = sum(lo <= a <= hi for a, (lo, hi) in zip(held["acc"], held["acc_pred_ci"]))
        table[task] = held["error_points"]
        print(f"{task:<14} two-step " + " ".join(f"{e:+5.1f}" for e in held["error_points"])
              + f"  mean |err| {held['error_points'].abs().mean():4.1f}   single-step "
              + " ".join(f"{e:+5.1f}" for e in held["single_step_error_points"])
              + f"  mean |err| {held['single_step_error_points'].abs().mean():4.1f}   in interval {covered}/4")
    errors = pd.DataFrame(table).abs()
    print(f"  runs, in order: {', '.join(held.index)}; two-step within 2 points: {(errors <= 2).to_numpy().sum()} of "
          f"{errors.size}; at 1.3B-10xC {(errors.loc['1.3B-10xC'] <= 2).sum()} of {len(errors.columns)} tasks")


def show_emergence(frame_by_task: dict[str, pd.DataFrame]) -> None:
    print("\nemergence over the ladder's final checkpoints (accuracy vs bpb, lower is better):")
    for task, frame in frame_by_task.items():
        finals = final_rows(frame)
        se = np.sqrt(finals["acc"] * (1 - finals["acc"]) / ITEMS[task])
        em = emergence(finals["N"], finals["acc"], finals["task_loss"], se, continuous_higher_is_better=False,
                       names=("acc", "bpb"))
        print(f"{task:<14} sharpness acc {em.discontinuous.sharpness:.2f}, bpb {em.continuous.sharpness:.2f}: "
              f"{em.verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    t0 = time.perf_counter()
    table = pd.read_csv(CSV)
    frames = {task: task_columns(table, {"run": "model", "task_loss": f"{task}_bpb", "acc": f"{task}_acc"}) for task in CHANCE}
    print(f"two-step predictions from all 16 ladder runs, {args.bootstrap} bootstrap resamples of the runs "
          f"(accuracy in points)")
    show_predictions([r for task, frame in frames.items() for r in predictions(frame, task, args.bootstrap)])
    show_backtest(frames, args.bootstrap)
    show_emergence(frames)
    print(f"\n{time.perf_counter() - t0:.0f} s")
