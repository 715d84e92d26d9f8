"""The law registry: every entry recovers known parameters from noisy runs drawn from it, its
derivatives are the derivatives, the one solver and the one bootstrap take any entry, and a fitted
law written as fit.json keeps it comes back the same law."""

import numpy as np
import pytest

from scalinglab.analysis.laws import LAWS, Fitted, Loss, from_record
from scalinglab.analysis.laws.bootstrap import BATCHED_MIN_RUNS, bootstrap, draw
from scalinglab.analysis.laws.chinchilla import CHINCHILLA
from scalinglab.analysis.laws.power import PowerLaw
from scalinglab.analysis.laws.sigmoid import Sigmoid
from scalinglab.analysis.laws.solve import fit
from scalinglab.analysis.parts import LawFit
from scalinglab.errors import FitError

RNG = np.random.default_rng(7)
N_GRID, D_GRID = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e9, 7), np.geomspace(1e8, 1e11, 7)))
X1 = np.geomspace(1e15, 1e21, 40)
# Each entry: the law, its truth, points, how noisy (relative for losses, absolute for accuracy), loss.
CASES = {
    "chinchilla": (CHINCHILLA, {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}, (N_GRID, D_GRID), 0.003, Loss(1e-3)),
    "power": (PowerLaw(("C",)), {"a": 80.0, "b": -0.12}, (X1,), 0.005, Loss()),
    "power_E": (PowerLaw(("C",), irreducible=True), {"E": 1.7, "a": 2000.0, "b": -0.2}, (X1,), 0.003, Loss()),
    "power_ND": (PowerLaw(("N", "D"), y="lr*"), {"a": 3.0, "b_N": -0.3, "b_D": 0.05}, (N_GRID, D_GRID), 0.01, Loss()),
    "sigmoid": (Sigmoid(0.25, falling=True, x="task_loss"), {"ceiling": 0.9, "k": 6.0, "x0": 1.1}, (np.linspace(0.6, 1.8, 60),),
                0.01, Loss()),
}


def noisy(law, truth, X, noise):
    y = Fitted.of(law, truth)(*X)
    return y * np.exp(RNG.normal(0, noise, y.shape)) if law.space == "log" else y + RNG.normal(0, noise, y.shape)


def test_every_registered_law_has_a_case():
    assert set(LAWS.classes) == {"chinchilla", "power", "sigmoid"}
    assert {type(c[0]).name for c in CASES.values()} == set(LAWS.classes)


@pytest.mark.parametrize("case", CASES)
def test_each_law_recovers_its_parameters_from_noisy_runs(case):
    law, truth, X, noise, loss = CASES[case]
    fitted = fit(law, X, noisy(law, truth, X, noise), loss)
    for k, v in truth.items():
        assert fitted[k] == pytest.approx(v, rel=0.1, abs=0.02), k
    assert fitted.n_points == len(X[0])


@pytest.mark.parametrize("case", CASES)
def test_jacobian_and_hessian_are_the_derivatives_of_the_fitted_value(case):
    law, truth, X, _, _ = CASES[case]
    theta, X = law.theta(truth) + 0.05, tuple(x[:9] for x in X)
    h = 1e-6
    numeric = np.stack([(law.fitted_value(theta + e, *X) - law.fitted_value(theta - e, *X)) / (2 * h)
                        for e in np.eye(len(theta)) * h], axis=-1)
    assert law.jacobian(theta, *X) == pytest.approx(numeric, rel=1e-5, abs=1e-7)
    second = np.stack([(law.jacobian(theta + e, *X) - law.jacobian(theta - e, *X)) / (2 * h)
                       for e in np.eye(len(theta)) * h], axis=-1)
    assert law.hessian(theta, *X) == pytest.approx(second, rel=1e-4, abs=1e-6)


def test_the_batched_bootstrap_takes_any_terms_law_and_matches_refits():
    law, truth, _, _, _ = CASES["power_E"]
    x = np.geomspace(1e15, 1e21, BATCHED_MIN_RUNS + 20)
    y = noisy(law, truth, (x,), 0.003)
    loss = Loss(1e-3)
    batched = bootstrap(law, (x,), y, 30, loss)
    refits = [fit(law, (x[i],), y[i], loss) for i in (draw(len(y), s) for s in range(30))]
    for a, b in zip(batched, refits):
        assert a.objective <= b.objective * (1 + 1e-9)
        assert a["b"] == pytest.approx(b["b"], rel=1e-4)


def test_the_bootstrap_refits_a_law_without_batched_derivatives():
    law, truth, X, noise, loss = CASES["sigmoid"]
    y = noisy(law, truth, X, noise)
    boots = bootstrap(law, X, y, 20, loss)
    assert len(boots) == 20
    ks = [b["k"] for b in boots]
    assert min(ks) < truth["k"] < max(ks)


def test_too_few_distinct_points_is_a_fit_error_naming_the_law():
    with pytest.raises(FitError, match="need at least 2 distinct N, 2 distinct D and 5 runs"):
        fit(CHINCHILLA, (np.full(6, 1e6), np.geomspace(1e8, 1e9, 6)), np.ones(6))
    with pytest.raises(FitError, match="power law in C: need at least 3 distinct C values, got 2"):
        fit(PowerLaw(("C",), irreducible=True), (np.array([1.0, 2, 2]),), np.array([3.0, 2, 2]))
    with pytest.raises(FitError, match="every value must be positive"):
        fit(CHINCHILLA, (N_GRID, D_GRID), -np.ones(N_GRID.size))


@pytest.mark.parametrize("case", CASES)
def test_a_fitted_law_comes_back_from_its_record(case):
    law, truth, X, noise, loss = CASES[case]
    fitted = fit(law, X, noisy(law, truth, X, noise), loss)
    again = LawFit.model_validate_json(LawFit.of(fitted).model_dump_json()).fitted()
    assert again.law == law == from_record(law.record())
    assert again(*X) == pytest.approx(fitted(*X), rel=1e-12)
