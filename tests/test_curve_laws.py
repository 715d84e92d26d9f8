"""Curve laws (analysis/curves): synthetic curves drawn from each law under random schedules are
fitted back; the blocked loss drop against the step-by-step sum; the rate tables; the errors; the
bootstrap; a real sweep's cooldown branches."""

import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.analysis.curves import (
    CURVE_LAWS,
    Curve,
    CurveLawName,
    areas,
    bootstrap_curves,
    curves_from_frame,
    fit_curves,
    lr_per_step_from_run,
    lr_per_step_from_table,
)
from scalinglab.analysis.curves.fit import law_of, predict
from scalinglab.errors import FitError
from scalinglab.results import load

ROOT = Path(__file__).resolve().parents[1]
T, PEAK, NOISE = 4000, 3e-3, 0.003
TRUE = {
    "multi_power": {"L0": 2.5, "A": 1.2, "alpha": 0.45, "B": 0.6, "C": 0.02, "beta": 0.6, "gamma": 0.5},
    "annealing": {"L0": 2.5, "A": 1.2, "alpha": 0.45, "C": 3e-4},
}
# Relative tolerances of the parameters the joint fit identifies (the largest error over 8 seeds,
# measured: annealing L0 0.3%, alpha 8%, C 1.2%; multi_power L0 0.2%, alpha 7%, B 6%, gamma 9%).
# A trades off against alpha over 4,000 steps (errors to ~20%), and multi_power's C against beta
# (to ~40% and ~20%): those are not asserted.
IDENTIFIED = {
    "annealing": {"L0": 0.01, "alpha": 0.15, "C": 0.03},
    "multi_power": {"L0": 0.01, "alpha": 0.15, "B": 0.12, "gamma": 0.15},
}
KINDS = ("constant", "cosine", "wsd", "step", "linear")


def schedule(kind: str, rng, steps: int = T) -> tuple[np.ndarray, int]:
    """(rate per step, warmup) of a random schedule of a kind, warmup 50..300 steps."""
    W = int(rng.integers(50, 300))
    t = np.arange(1, steps + 1)
    f = np.clip((t - W) / (steps - W), 0, 1)
    cool = int(steps * rng.uniform(0.1, 0.3))
    shape = {
        "constant": np.ones(steps),
        "cosine": 0.1 + 0.45 * (1 + np.cos(np.pi * f)),
        "linear": 1 - 0.9 * f,
        "wsd": np.where(t <= steps - cool, 1.0, 1 - 0.9 * np.clip((t - (steps - cool)) / cool, 0, 1)),
        "step": np.where(t < steps * 0.5, 1.0, np.where(t < steps * 0.8, 0.3, 0.1)),
    }[kind]
    return PEAK * np.where(t <= W, t / W, shape), W


def observed(steps: int = T, n: int = 100) -> np.ndarray:
    return np.unique(np.linspace(1, steps, n).astype(int))


def synthetic(name: str, kinds, rng, noise: float = NOISE) -> list[Curve]:
    law = law_of(name)
    theta = law.theta(TRUE[name])
    out = []
    for kind in kinds:
        lr, W = schedule(kind, rng)
        steps = observed()
        loss = predict(law, theta, PEAK, lr, steps) * (1 + noise * rng.standard_normal(len(steps)))
        out.append(Curve(kind, 1e6, lr, steps, loss, W))
    return out


def truth(name: str, lr, steps) -> np.ndarray:
    law = law_of(name)
    return predict(law, law.theta(TRUE[name]), PEAK, lr, steps)


def test_the_laws_are_registered_by_name():
    assert set(CURVE_LAWS.names) == {"multi_power", "annealing"} == set(CurveLawName)
    assert CURVE_LAWS["annealing"]().decay == 0.999


@pytest.mark.parametrize("C, beta, gamma", [(0.5, 0.5, 0.6), (0.01, 1.0, 0.5), (2.0, 0.3, 0.8), (1e-3, 2.0, 0.3)])
def test_blocked_loss_drop_matches_the_step_by_step_sum_on_a_20k_cosine(C, beta, gamma):
    steps_total, W = 20_000, 500
    t = np.arange(1, steps_total + 1)
    lr = np.where(t <= W, t / W, 0.1 + 0.45 * (1 + np.cos(np.pi * np.clip((t - W) / (steps_total - W), 0, 1))))
    steps = observed(steps_total)
    steps = steps[steps > W]
    law = law_of("multi_power")
    values = {"L0": 2.0, "A": 3.0, "alpha": 0.4, "B": 0.5, "C": C, "beta": beta, "gamma": gamma}
    blocked = law.predict(law.theta(values), *law.prepare(lr, steps))
    exact = 2.0 + 3.0 * areas.area(lr)[steps - 1] ** -0.4 - 0.5 * areas.exact_drop(lr, steps, C, beta, gamma)
    assert np.max(np.abs(blocked / exact - 1)) < 1e-4
    assert law.prepare(lr, steps)[1].shape[1] < 200  # blocks per observed step, against 20,000 steps


def test_the_rise_to_the_peak_is_not_a_decrement():
    lr = np.array([0.1, 0.5, 1.0, 1.0, 0.8, 0.9, 0.7])
    assert areas.decrements(lr).tolist() == pytest.approx([0, 0, 0, 0, 0.2, -0.1, 0.2])
    S2 = areas.momentum_area(lr, 0.5)  # m = 0, 0, 0, 0, 0.2, 0.0, 0.2
    assert S2.tolist() == pytest.approx([0, 0, 0, 0, 0.2, 0.2, 0.4])


@pytest.mark.parametrize("name", ["annealing", "multi_power"])
@pytest.mark.parametrize("seed", [100, 101])
def test_a_joint_fit_recovers_the_law_and_predicts_a_held_out_schedule(name, seed):
    rng = np.random.default_rng(seed)
    fitted = fit_curves(synthetic(name, KINDS, rng), name)
    for param, tolerance in IDENTIFIED[name].items():
        assert fitted.params[param] == pytest.approx(TRUE[name][param], rel=tolerance), param
    assert min(fitted.r2) > 0.85 and max(fitted.max_rel_error) < 5 * NOISE
    lr, W = schedule("wsd", rng)  # a cooldown length none of the fitted runs had
    steps = observed()
    steps = steps[steps > W]
    pred, true = fitted.predict(lr, steps), truth(name, lr, steps)
    assert np.max(np.abs(pred / true - 1)) < 0.005
    assert abs(pred[-1] / true[-1] - 1) < 0.003


def test_fixed_parameters_stay_at_their_values():
    curves = synthetic("annealing", KINDS, np.random.default_rng(3))
    fitted = fit_curves(curves, "annealing", fixed={"alpha": 0.5, "C": 2e-4})
    assert fitted.params["alpha"] == pytest.approx(0.5, rel=1e-12)
    assert fitted.params["C"] == pytest.approx(2e-4, rel=1e-12)
    assert fitted.law.pinned == {"C": 2e-4, "alpha": 0.5}
    slower = fit_curves(curves, CURVE_LAWS["annealing"](decay=0.99), fixed={"alpha": 0.5})  # an entry's setting kept
    assert slower.law.decay == 0.99 and slower.law.pinned == {"alpha": 0.5} and slower.objective > fitted.objective / 10
    mp = fit_curves(synthetic("multi_power", KINDS[:3], np.random.default_rng(4)), "multi_power", fixed={"gamma": 0.5})
    assert mp.params["gamma"] == pytest.approx(0.5, rel=1e-12)
    assert mp.params["L0"] == pytest.approx(2.5, rel=0.01)


def test_bad_input_raises_fit_errors_that_name_the_problem():
    lr, W = schedule("cosine", np.random.default_rng(0))
    steps = observed()
    with pytest.raises(FitError, match="run r: losses must be positive and finite; step"):
        Curve("r", 1.0, lr, steps, np.where(steps == steps[5], -1.0, 2.0), W)
    with pytest.raises(FitError, match=r"run r: observed step 4100 is outside its schedule's steps 1..4000"):
        Curve("r", 1.0, lr, np.append(steps, 4100), np.full(len(steps) + 1, 2.0), W)
    few = Curve("r", 1.0, lr, np.array([W + 10, W + 20, W + 30]), np.array([3.0, 2.9, 2.8]), W)
    with pytest.raises(FitError, match="3 observed points after warmup for 4 free parameters"):
        fit_curves([few], "annealing")
    fit_curves([few], "annealing", fixed={"alpha": 0.5, "C": 1e-4})  # 2 free: enough
    good = Curve("r", 1.0, lr, steps, np.full(len(steps), 2.0), W)
    with pytest.raises(FitError, match="annealing has no parameter gamma"):
        fit_curves([good], "annealing", fixed={"gamma": 0.5})
    with pytest.raises(FitError, match="unknown curve_law 'power'"):
        fit_curves([good], "power")
    with pytest.raises(FitError, match="share no parameters"):
        fit_curves([good, Curve("s", 2.0, lr, steps, np.full(len(steps), 2.0), W)], "annealing")


def test_a_rate_table_every_128_steps_rebuilds_each_step():
    listed = np.arange(256, 8193, 128)  # warmup to step 256, then a linear decay and a flat end
    rates = np.interp(listed, [256, 6000, 8192], [1e-3, 1e-4, 1e-4])
    lr, warmup = lr_per_step_from_table(listed, rates)
    assert warmup == 256 and len(lr) == 8192
    assert lr[:256] == pytest.approx(1e-3 * np.arange(1, 257) / 256, rel=1e-12)  # from 0 at step 0
    assert lr[listed - 1] == pytest.approx(rates, rel=1e-12)
    middle = listed[:-1] + 64
    assert lr[middle - 1] == pytest.approx((rates[:-1] + rates[1:]) / 2, rel=1e-12)
    assert lr[300 - 1] == pytest.approx(rates[0] + (rates[1] - rates[0]) * (300 - 256) / 128, rel=1e-12)
    assert len(lr_per_step_from_table(listed, rates, last_step=5000)[0]) == 5000
    with pytest.raises(FitError, match="nothing after"):
        lr_per_step_from_table(listed, rates, last_step=9000)


def test_a_run_record_rebuilds_its_schedule_exactly():
    run = json.loads(next((ROOT / "results" / "cpu-study" / "runs").glob("*/run.json")).read_text())
    run.update(schedule="wsd", steps=1000, warmup_steps=100, decay_start=800, min_lr_ratio=0.1, cooldown_shape="linear", lr=3e-3)
    lr, warmup = lr_per_step_from_run(run)
    assert warmup == 100 and len(lr) == 1000
    assert lr[[0, 99, 500, 799, 899, 999]] == pytest.approx([3e-5, 3e-3, 3e-3, 3e-3, 3e-3 * (1 - 0.9 * 0.5), 3e-4], rel=1e-6)
    with pytest.raises(FitError, match="lacks 'decay_start'"):
        lr_per_step_from_run({k: v for k, v in run.items() if k != "decay_start"})


def test_bootstrap_intervals_contain_the_truth_and_repeat():
    # Over 20 seeds of this case the 95% intervals held the truth 75-95% of the time (alpha and A
    # least, C most): five runs are few clusters to resample. This seed's intervals hold it.
    rng = np.random.default_rng(13)
    curves = synthetic("annealing", KINDS, rng)
    boot = bootstrap_curves(curves, "annealing", n=100, seed=0)
    assert len(boot.thetas) == 100
    for name, (lo, hi) in boot.params.items():
        assert lo <= TRUE["annealing"][name] <= hi, name
    assert boot.params["C"][1] / boot.params["C"][0] < 1.1  # a tight interval where identified
    lr, _ = schedule("cosine", rng)
    lo, hi = boot.predict(lr, [T])
    assert lo[0] <= truth("annealing", lr, [T])[0] <= hi[0] and hi[0] / lo[0] - 1 < 0.005
    again = bootstrap_curves(curves, "annealing", n=100, seed=0)
    assert np.array_equal(again.thetas, boot.thetas)


def test_with_two_curves_the_bootstrap_resamples_blocks_of_points():
    curves = synthetic("multi_power", ("wsd", "cosine"), np.random.default_rng(12))
    boot = bootstrap_curves(curves, "multi_power", n=20, seed=0, fixed={"beta": 0.6})
    assert len(boot.thetas) == 20
    lo, hi = boot.params["L0"]
    assert lo <= 2.5 <= hi and hi - lo < 0.1


def test_curves_from_a_sweep_of_cooldown_branches():
    df = load(ROOT / "results" / "cpu-study", per_eval=True, trunks=True)
    curves = curves_from_frame(df)
    assert len(curves) == df["run_id"].nunique() == 30
    trunk = next(c for c in curves if c.run == "129cb8d449a3")
    branch = next(c for c in curves if c.run == "29e22d626ae2")  # a branch of it from step 5000
    assert len(trunk.steps) == 10 and branch.steps.min() > 5000
    assert branch.lr[4999] == pytest.approx(3e-3) and branch.lr[-1] == pytest.approx(3e-4)
    assert len(curves_from_frame(df, shared=True)[1].steps) > len(curves[1].steps)
    train = df[df.run_id == trunk.run].sort_values("step").train_loss
    assert np.array_equal(curves_from_frame(df, loss_column="train_loss")[0].loss, train)
    by_size: dict[float, list[Curve]] = {}
    for c in curves:
        by_size.setdefault(c.size, []).append(c)
    for group in by_size.values():
        fitted = fit_curves(group, "multi_power")
        assert min(fitted.r2) > 0.9 and max(fitted.max_rel_error) < 0.03


def test_skipping_leaves_the_first_share_of_steps_out_of_the_fit():
    lr, W = schedule("constant", np.random.default_rng(0))
    steps = observed()
    curve = Curve("r", 1.0, lr, steps, np.full(len(steps), 2.0), W)
    assert curve.fitted.tolist() == (steps > W).tolist()
    later = curve.skipping(0.25)
    assert later.skip == 1000 and later.fitted.tolist() == (steps > max(W, 1000)).tolist()
    assert curve.skipping(0.0).fitted.tolist() == curve.fitted.tolist()  # warmup still left out
