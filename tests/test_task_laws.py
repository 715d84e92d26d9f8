"""Task scaling: the two-step prediction (Bhagia et al. 2024) recovers known laws and extrapolates
on the OLMo ladder's real runs, emergence verdicts (Schaeffer et al. 2023), the sweep report and
its figures, and `scalinglab fit --csv` with task maps."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy.special import expit

from scalinglab.analysis.emergence import FLAT, VERDICTS, emergence, sharpness
from scalinglab.analysis.parts import LawFit, Skipped
from scalinglab.analysis.sweepfit import SweepFit
from scalinglab.analysis.task_laws import backtest, bootstrap_two_step, fit_two_step, predict_two_step, smoothed, task_columns
from scalinglab.analysis.task_report import strategy_vs_scale, task_report
from scalinglab.analysis.taskfit import Emergence, Shape, Spread, TaskExtrapolation, TaskReport, TwoStepFit
from scalinglab.analysis.text import lines
from scalinglab.cli import main
from scalinglab.errors import FitError
from scalinglab.sweep.spec import FitSpec

OLMO_CSV = Path(__file__).parent / "data" / "olmo_ladder_tasks.csv"  # see tests/data/README.md
OLMO_CHANCE = {"hellaswag": 0.25, "arc_easy": 0.25, "arc_challenge": 0.25, "piqa": 0.5, "csqa": 0.2,
               "socialiqa": 1 / 3, "openbookqa": 0.25}
SCALINGLAB = Path(sys.executable).parent / "scalinglab"

# The synthetic truth: task loss L(N, D), and accuracy a sigmoid of it from chance (0.25) up to 1.
STEP1 = {"E": 0.5, "A": 40.0, "B": 300.0, "alpha": 0.3, "beta": 0.3}
CHANCE, K, L0 = 0.25, 8.0, 0.9


def task_loss(N, D):
    return STEP1["E"] + STEP1["A"] / N ** STEP1["alpha"] + STEP1["B"] / D ** STEP1["beta"]


def accuracy(L):
    return CHANCE + (1 - CHANCE) * expit(-K * (L - L0))


def ladder(seed=0, sizes=(1e8, 2e8, 4e8, 8e8, 1.6e9), multiples=(1, 2, 5, 10), checkpoints=12) -> pd.DataFrame:
    """Runs of each size at 20, 40, 100 and 200 tokens per parameter, a row per checkpoint, with
    0.3% noise on the task loss and half a point on accuracy."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for m in multiples:
            for D in 20 * N * m * np.arange(1, checkpoints + 1) / checkpoints:
                L = task_loss(N, D) * np.exp(rng.normal(0, 0.003))
                rows.append({"run": f"{N:.0e}-{m}x", "N": N, "D": D, "task_loss": L, "acc": accuracy(L) + rng.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_two_step_recovers_the_laws_and_its_intervals_cover_the_truth():
    frame = ladder()
    model = fit_two_step(frame, CHANCE)
    assert model.step1["E"] == pytest.approx(STEP1["E"], abs=0.03)
    assert model.step1["alpha"] == pytest.approx(STEP1["alpha"], abs=0.08)  # A and alpha trade off over 1.2 decades of N
    assert model.step1["beta"] == pytest.approx(STEP1["beta"], abs=0.03)
    assert (model.step2["k"], model.step2["x0"]) == (pytest.approx(K, rel=0.05), pytest.approx(L0, abs=0.01))
    assert model.step2(1e6) == pytest.approx(CHANCE)  # the floor is chance, exactly
    boots = bootstrap_two_step(frame, CHANCE, FitSpec(bootstrap=20))
    assert len(boots) == 20
    for N, D in ((3.2e9, 6.4e11), (6.4e9, 1.28e12)):  # 2x and 4x past the largest model
        truth = accuracy(task_loss(N, D))
        point = predict_two_step(model, boots, N, D)
        assert set(point) == {"N", "D", "task_loss", "acc", "acc_ci"}
        assert point["task_loss"] == pytest.approx(task_loss(N, D), rel=0.01)
        assert point["acc"] == pytest.approx(truth, abs=0.01)
        assert point["acc_ci"][0] <= truth <= point["acc_ci"][1]
    for key in ("E", "alpha", "beta"):
        assert np.quantile([b.step1[key] for b in boots], 0.025) <= STEP1[key] <= np.quantile([b.step1[key] for b in boots], 0.975)


def test_backtest_predicts_the_held_out_largest_models():
    held = backtest(ladder(), CHANCE)
    assert set(held["N"]) == {1.6e9} and len(held) == 4
    assert held["error_points"].abs().max() < 2
    assert held["single_step_error_points"].abs().max() < 5  # compute alone, for comparison
    assert held.attrs["n_fit_runs"] == 16


def test_too_little_or_flat_data_is_a_fit_error():
    frame = ladder(sizes=(1e8,))
    with pytest.raises(FitError, match="need at least 2 distinct N"):
        fit_two_step(frame, CHANCE)
    flat = ladder().assign(acc=CHANCE)
    with pytest.raises(FitError, match=r"accuracy never passes chance \(0.25\) by a point"):
        fit_two_step(flat, CHANCE)


def olmo(task: str) -> pd.DataFrame:
    return task_columns(pd.read_csv(OLMO_CSV), {"run": "model", "task_loss": f"{task}_bpb", "acc": f"{task}_acc"})


def test_olmo_ladder_backtest_holding_out_the_1b_runs():
    """Fitted on the 190M-760M runs, both steps predict the four 1.3B runs' final accuracy.
    Measured (points, 1xC 2xC 5xC 10xC): hellaswag +0.3 -1.2 -2.3 -2.4, arc_easy -0.4 -1.2 -3.0
    -2.9, arc_challenge -1.4 +1.0 +0.5 +2.0, piqa -0.6 -0.9 -1.4 -1.7, csqa +0.6 -1.6 +1.3 +0.7,
    socialiqa +0.2 -1.6 -1.7 -1.9, openbookqa -1.2 +1.9 +1.3 +0.4: 23 of 28 within 2 points, every
    task's mean |error| under 2, and at the 10xC runs 4 of 7 tasks within 2 points."""
    errors = {}
    for task, chance in OLMO_CHANCE.items():
        held = backtest(olmo(task), chance).set_index("run")
        assert list(held.index) == ["1.3B-1xC", "1.3B-2xC", "1.3B-5xC", "1.3B-10xC"]
        errors[task] = held["error_points"]
    table = pd.DataFrame(errors)
    assert (table.abs().mean() < 2.5).all(), table
    assert table.abs().max().max() < 4.5, table
    assert (table.abs() <= 2).to_numpy().sum() >= 20, table
    assert (table.loc["1.3B-10xC"].abs() <= 2).sum() >= 4, table


def test_olmo_ladder_predicts_olmo_2_7b_and_13b_as_well_as_the_paper():
    """From all 16 ladder runs, the 7B (4T tokens) and 13B (5T) models' accuracy on 3 of the 7
    tasks within 2 points; the paper has 4 of its 8 (MMLU among them; its released 13B predictions,
    chained_main.csv, have 2 of these 7). Measured errors, 7B / 13B: hellaswag +0.6 / +1.6,
    arc_easy -10.1 / -12.2, arc_challenge -6.4 / -6.6, piqa -1.8 / -1.9, csqa +2.7 / +3.1,
    socialiqa -5.1 / -6.2, openbookqa -0.2 / +2.0. arc_challenge's step 1 has nearly tied optima
    over the ladder's 4 sizes: before the laws were registered entries its solver stopped at one
    2% worse in Huber objective (6.98e-5 against 6.83e-5) that happened to land within a point."""
    targets = pd.read_csv(OLMO_CSV.with_name("olmo_targets.csv"))
    models = {task: fit_two_step(olmo(task), chance) for task, chance in OLMO_CHANCE.items()}
    targets["error"] = [100 * (float(models[t.task](t.N, t.D)) - t.acc) for t in targets.itertuples()]
    within = targets[targets["error"].abs() <= 2].groupby("model")["task"].apply(set)
    assert within["7B"] >= {"hellaswag", "piqa", "openbookqa"}, targets
    assert within["13B"] >= {"hellaswag", "piqa", "openbookqa"}, targets


def test_checkpoints_are_averaged_over_the_last_5_percent_of_their_runs_tokens():
    frame = pd.DataFrame({"run": ["a"] * 5 + ["b"] * 2, "N": 1.0, "D": [10, 20, 96, 98, 100, 50, 100],
                          "task_loss": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "acc": 0.5})
    out = smoothed(frame.iloc[::-1])  # any row order
    assert out["task_loss"].tolist() == [7.0, 6.0, 4.0, 3.5, 3.0, 2.0, 1.0]  # b: 5 apart, alone


def test_sharpness_measures_the_largest_step_beyond_a_straight_line_in_log_n():
    N = [1e7, 1e8, 1e9, 1e10]
    assert sharpness(N, [0.1, 0.2, 0.3, 0.4]).sharpness == pytest.approx(0)
    jump = sharpness(N, [0.25, 0.25, 0.25, 0.7])
    assert jump.sharpness == pytest.approx(2 / 3) and jump.between == (1e9, 1e10) and jump.shape is Shape.SHARP
    loss = sharpness(N, [3.0, 2.7, 2.4, 2.1], higher_is_better=False)
    assert loss.shape is Shape.SMOOTH and loss.rise == pytest.approx(0.9)
    with pytest.raises(FitError, match="need at least 3 model sizes, got 2"):
        sharpness([1e7, 1e8, 1e8], [0.1, 0.2, 0.3])


@pytest.mark.parametrize(("acc", "continuous", "verdict"), [
    ([0.25, 0.25, 0.26, 0.25, 0.62, 0.70], [0.30, 0.36, 0.42, 0.48, 0.55, 0.61], VERDICTS[Shape.SHARP, Shape.SMOOTH]),
    ([0.25, 0.25, 0.26, 0.25, 0.62, 0.70], [0.30, 0.30, 0.31, 0.31, 0.58, 0.62], VERDICTS[Shape.SHARP, Shape.SHARP]),
    ([0.25, 0.32, 0.39, 0.45, 0.52, 0.58], [0.30, 0.36, 0.42, 0.48, 0.55, 0.61], VERDICTS[Shape.SMOOTH, Shape.SMOOTH]),
    ([0.25, 0.26, 0.25, 0.24, 0.25, 0.26], [0.30, 0.36, 0.42, 0.48, 0.55, 0.61], FLAT),
])
def test_emergence_verdicts(acc, continuous, verdict):
    N = np.geomspace(1e7, 1e10, 6)
    out = emergence(np.repeat(N, 2), np.repeat(acc, 2), np.repeat(continuous, 2), discontinuous_se=np.full(12, 0.01),
                    names=("acc", "p_gold"))
    assert out.verdict == verdict
    assert Emergence.model_validate_json(out.model_dump_json()) == out


def sweep_frame(seed=0) -> pd.DataFrame:
    """Evaluations as results.load(path, tasks=True) returns them: 5 sizes x 2 data sizes, 6
    evaluations each, tasks "mc" (on the laws above), "gen" (exact match jumps at 8e8 while
    per-token accuracy climbs steadily) and "hard" (at chance throughout), 0 and 5 shots, two
    demonstration strategies whose gap closes with N."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (1e8, 2e8, 4e8, 8e8, 1.6e9):
        for D in (20 * N, 100 * N):
            for step, tokens in enumerate(D * np.arange(1, 7) / 6, start=1):
                L = task_loss(N, tokens) * np.exp(rng.normal(0, 0.003))
                for shots in (0, 5):
                    for strategy, gap in (("random", 0.0), ("similar", 0.08 * (1.6e9 / N) ** 0.3 if shots else 0.02)):
                        base = {"run_id": f"{N:.0e}-{D / N:.0f}tpp", "N": N, "D": D, "tokens": tokens, "C": 6 * N * D, "step": step,
                                "shots": shots, "strategy": strategy, "n_items": 500, "acc_se": 0.02}
                        acc = accuracy(L) - gap + rng.normal(0, 0.005)
                        rows.append(base | {"task": "mc", "kind": "multiple_choice", "acc": acc, "acc_norm": acc, "task_loss": L,
                                            "task_bpb": L / np.log(2), "p_gold": 0.25 + 0.5 * expit(-4 * (L - 1)),
                                            "exact_match": np.nan, "token_acc": np.nan, "chance": 0.25})
                        em = 0.6 * (N >= 8e8) * tokens / D
                        rows.append(base | {"task": "gen", "kind": "generation", "acc": em, "acc_norm": em, "task_loss": 2 * L,
                                            "task_bpb": 2 * L / np.log(2), "p_gold": np.nan, "exact_match": em,
                                            "token_acc": 0.1 * np.log10(N) - 0.5, "chance": 0.0})
                        hard = 0.25 + rng.normal(0, 0.002)
                        rows.append(base | {"task": "hard", "kind": "multiple_choice", "acc": hard, "acc_norm": hard, "task_loss": 1.5 * L,
                                            "task_bpb": 1.5 * L / np.log(2), "p_gold": 0.25, "exact_match": np.nan,
                                            "token_acc": np.nan, "chance": 0.25})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    frame = sweep_frame()
    return frame, task_report(frame, FitSpec(bootstrap=4), {"2e+09-20tpp", "2e+09-100tpp"}, shots=5, strategy="random")


def test_task_report_fits_predicts_and_skips_what_it_cannot_fit(report):
    _, out = report
    assert TaskReport.model_validate_json(out.model_dump_json()) == out  # as fit.json keeps it
    assert (out.shots, out.strategy, out.held_out) == (5, "random", ["2e+09-100tpp", "2e+09-20tpp"])
    mc = out.tasks["mc"]
    assert isinstance(mc.two_step, TwoStepFit) and isinstance(mc.extrapolation, TaskExtrapolation)
    assert (mc.n_runs, mc.n_fit_runs, mc.two_step.n_bootstrap) == (10, 8, 4)
    assert mc.two_step.step2.params["x0"] == pytest.approx(L0, abs=0.03)
    held = mc.extrapolation.held_out
    assert {h.run_id for h in held} == {"2e+09-20tpp", "2e+09-100tpp"}
    assert all(h.acc_pred_ci is not None and h.single_step_error_points is not None for h in held)
    assert {h.D for h in held} == {20 * 1.6e9, 100 * 1.6e9}  # tokens trained at the final checkpoint: the run's D
    assert max(abs(h.error_points) for h in held) < 3
    assert isinstance(mc.single_step, LawFit) and mc.single_step.law["x"] == "log10 C_6ND"
    gen = out.tasks["gen"].emergence
    assert gen.verdict == VERDICTS[Shape.SHARP, Shape.SMOOTH] and gen.continuous.metric == "token_acc"
    hard = out.tasks["hard"]
    assert "accuracy never passes chance" in hard.two_step.skipped and isinstance(hard.single_step, Skipped)
    assert hard.emergence.verdict == FLAT


def test_strategy_spread_against_scale(report):
    _, out = report
    mc = out.strategy_vs_scale["mc"]
    assert {(c.shots, c.strategy) for c in mc.curves} == {(s, t) for s in (0, 5) for t in ("random", "similar")}
    curve = next(c for c in mc.curves if c.shots == 5 and c.strategy == "random")
    assert len(curve.N) == 5 and all(lo < a < hi for a, (lo, hi) in zip(curve.acc, curve.acc_ci))
    five = next(s for s in mc.spread if s.shots == 5)
    assert isinstance(five, Spread)
    assert five.slope_points_per_decade < 0 and five.finding.startswith("with N the spread between the best and worst strategy shrinks")
    assert set(five.best) == {"random"} and set(five.worst) == {"similar"}


def test_task_figures_draw_what_the_report_found(report):
    from scalinglab.analysis.task_plots import task_figures  # noqa: PLC0415  (matplotlib only here)

    frame, out = report
    figs = task_figures(frame, out)
    assert list(figs) == ["tasks_emergence.png", "tasks_strategies.png", "tasks_two_step.png"]
    # Two-step: per fitted task, the held-out runs' measured task loss (hollow) and predictions (x) at their N.
    fitted = [name for name, t in out.tasks.items() if isinstance(t.two_step, TwoStepFit)]
    assert fitted == ["gen", "mc"]  # hard never passes chance: no row
    step1 = figs["tasks_two_step.png"].axes[2 * fitted.index("mc")]
    points = {(x, y) for c in step1.collections for x, y in c.get_offsets().data}
    for h in out.tasks["mc"].extrapolation.held_out:
        assert {(h.N, h.task_loss), (h.N, h.task_loss_pred)} <= points
        assert step1.get_ylim()[0] <= min(h.task_loss, h.task_loss_pred) and max(h.task_loss, h.task_loss_pred) <= step1.get_ylim()[1]
    # Strategies: a panel per (task, shots) with both strategies, a curve each over the 5 sizes.
    panels = [ax for ax in figs["tasks_strategies.png"].axes if ax.get_visible()]
    assert len(panels) == 3 * 2 and all(len(ax.containers) == 2 for ax in panels)
    # One strategy (and one task, to draw less): no strategy figure, the rest still drawn.
    one = frame[(frame["strategy"] == "random") & (frame["task"] == "mc")]
    out = out.model_copy(update={"tasks": {"mc": out.tasks["mc"]}, "strategy_vs_scale": strategy_vs_scale(one)})
    assert list(task_figures(one, out)) == ["tasks_emergence.png", "tasks_two_step.png"]


# Names with a $ pair start mathtext, where a stray backslash or brace fails to draw.
MATH_NAMES = {"mc": r"$\frac$ mc", "gen": "gen $x^{$ \\", "hard": r"a\$b$c"}
MATH_STRATEGIES = {"random": r"$\alpha$ random", "similar": "similar $$"}


def test_task_and_strategy_names_with_mathtext_are_drawn_letter_for_letter(tmp_path):
    from matplotlib import cbook  # noqa: PLC0415  (matplotlib only here)

    from scalinglab.analysis.task_plots import plot_tasks, task_figures  # noqa: PLC0415

    frame = sweep_frame().replace({"task": MATH_NAMES, "strategy": MATH_STRATEGIES})
    out = task_report(frame, FitSpec(bootstrap=4), {"2e+09-20tpp", "2e+09-100tpp"}, shots=5, strategy=MATH_STRATEGIES["random"])
    texts = [t.get_text() for fig in task_figures(frame, out).values() for ax in fig.axes for t in (ax.title, *ax.get_legend().texts)]
    assert not any(cbook.is_math_text(t) for t in texts)
    shown = {t.replace(r"\$", "$") for t in texts}  # as matplotlib shows text with no math in it
    assert set(MATH_STRATEGIES.values()) <= shown and all(any(t.startswith(name) for t in shown) for name in MATH_NAMES.values())
    assert [p.name for p in plot_tasks(frame, out, tmp_path)] == ["tasks_emergence.png", "tasks_strategies.png", "tasks_two_step.png"]


def test_task_and_strategy_names_with_rich_tags_are_printed_letter_for_letter():
    """`fit`, `plot` and `run` print through rich, which read a task named "[/]" as a tag and failed."""
    data = json.loads((Path(__file__).resolve().parents[1] / "results" / "abilities" / "fit.json").read_text())
    names = {"cloze": "[/]", "completion": "[bold]x[/bold] [link=https://example.org]y"}
    for part in ("tasks", "strategy_vs_scale"):
        data["tasks"][part] = {names.get(k, k): v for k, v in data["tasks"][part].items()}
    data["tasks"]["strategy"] = "[/random]"
    console = Console(file=io.StringIO(), width=400)
    for line in lines(SweepFit.model_validate(data)):
        console.print(line)
    printed = console.file.getvalue()
    assert all(f"  {name}: " in printed for name in names.values()) and "(3-shot, [/random] demonstrations;" in printed


@pytest.fixture
def ladder_csv(tmp_path) -> Path:
    path = tmp_path / "ladder.csv"
    ladder().rename(columns={"run": "model", "task_loss": "bpb", "acc": "accuracy"}).to_csv(path, index=False)
    return path


def test_cli_fits_the_two_steps_and_prints_one_json_object_per_point(ladder_csv):
    args = ["fit", "--csv", str(ladder_csv), "--map", "task_loss=bpb", "--map", "acc=accuracy", "--map", "run=model",
            "--chance", "0.25", "--predict", "N=3.2e9,D=6.4e11", "--predict", "N=6.4e9,D=1.28e12", "--json"]
    out = subprocess.run([str(SCALINGLAB), *args, "--bootstrap", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    points = json.loads(out.stdout)
    assert [set(p) for p in points] == [{"N", "D", "task_loss", "acc", "acc_ci"}] * 2
    assert points[1]["acc"] == pytest.approx(accuracy(task_loss(6.4e9, 1.28e12)), abs=0.01)


def test_cli_without_bootstrap_has_no_interval(ladder_csv, capsys):
    args = ["fit", "--csv", str(ladder_csv), "--map", "task_loss=bpb", "--map", "acc=accuracy", "--map", "run=model",
            "--predict", "N=3.2e9,D=6.4e11", "--bootstrap", "0"]
    assert main([*args, "--json"]) == 0
    assert [set(p) for p in json.loads(capsys.readouterr().out)] == [{"N", "D", "task_loss", "acc"}]
    assert main(args) == 0
    assert "predict at N = 3.2e+09, D = 6.4e+11: task_loss = " in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--chance", "1"], "--chance 1: the chance accuracy must be at least 0 and below 1"),
    (["--chance", "-0.1"], "--chance -0.1: the chance accuracy must be at least 0 and below 1"),
    (["--map", "acc=nope"], "--map acc=nope: acc is already mapped to 'accuracy'; give one --map acc=COLUMN"),
    (["--predict", "C_6ND=1e21"], "--predict C_6ND=...: a task fit predicts at N=PARAMS,D=TOKENS"),
])
def test_cli_bad_task_input_is_one_line_and_exit_code_2(ladder_csv, capsys, extra, message):
    args = ["fit", "--csv", str(ladder_csv), "--map", "task_loss=bpb", "--map", "acc=accuracy", "--bootstrap", "0"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scalinglab: error: {message}") and err.count("\n") == 1


def test_cli_chance_without_task_maps_is_refused(ladder_csv):
    out = subprocess.run([str(SCALINGLAB), "fit", "--csv", str(ladder_csv), "--map", "L=bpb", "--chance", "0.25"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("scalinglab: error: --chance 0.25: applies only to a task fit, with --csv and "
                          "--map task_loss=COLUMN --map acc=COLUMN\n")
