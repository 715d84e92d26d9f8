import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.approaches import frontier, power_laws
from scalinglab.analysis.laws import Loss
from scalinglab.analysis.laws.chinchilla import CHINCHILLA
from scalinglab.analysis.laws.power import PowerLaw
from scalinglab.analysis.laws.solve import fit
from scalinglab.analysis.table import from_columns
from scalinglab.errors import FitError


def fit_chinchilla(N, D, L):
    return fit(CHINCHILLA, (N, D), L, Loss(1e-3))


def fit_power_law(x, L, irreducible=False, name="X"):
    return fit(PowerLaw((name,), irreducible), (x,), L)

# Hoffmann et al. 2022 Fig. 4 as extracted by Epoch AI (Besiroglu et al. 2024); see tests/data/README.md
CHINCHILLA_CSV = Path(__file__).parent / "data" / "chinchilla_fig4_points.csv"


def test_power_law_recovers_exponent_from_noisy_data():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e4, 1e8, 30)
    L = 50 * x**-0.3 * np.exp(rng.normal(0, 0.01, x.size))
    law = fit_power_law(x, L, name="N")
    assert law["b"] == pytest.approx(-0.3, abs=0.01)
    assert law["a"] == pytest.approx(50, rel=0.15)
    assert "E" not in law.values


def test_power_law_with_irreducible_term_recovers_all_three():
    rng = np.random.default_rng(1)
    x = np.geomspace(1e15, 1e21, 40)
    L = 1.7 + 2000 * x**-0.2 * np.exp(rng.normal(0, 0.005, x.size))
    law = fit_power_law(x, L, irreducible=True, name="C")
    assert law["E"] == pytest.approx(1.7, rel=0.05)
    assert law["b"] == pytest.approx(-0.2, abs=0.02)


def test_chinchilla_law_recovers_known_parameters_from_noisy_synthetic_runs():
    rng = np.random.default_rng(2)
    N, D = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e9, 8), np.geomspace(1e8, 1e11, 8)))
    truth = dict(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.37)
    L = (truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]) * np.exp(rng.normal(0, 0.005, N.size))
    law = fit_chinchilla(N, D, L)
    assert law["alpha"] == pytest.approx(0.34, abs=0.03)
    assert law["beta"] == pytest.approx(0.37, abs=0.03)
    assert law["E"] == pytest.approx(1.8, rel=0.03)
    held_out = truth["E"] + truth["A"] / 1e10 ** 0.34 + truth["B"] / 1e12 ** 0.37
    assert law(1e10, 1e12) == pytest.approx(held_out, rel=0.02)  # extrapolates 10x beyond the data


def test_chinchilla_fig4_reproduces_the_published_approach_3_fit():
    table = from_columns(pd.read_csv(CHINCHILLA_CSV), {"N": "Model Size", "C_6ND": "Training FLOP", "L": "loss"})
    table = table.sort_values("L").iloc[:-5]  # Epoch drops the 5 highest-loss points
    law = fit_chinchilla(table["N"], table["D"], table["L"])
    assert law.n_points == 240
    assert law["E"] == pytest.approx(1.8172, rel=0.01)
    assert law["alpha"] == pytest.approx(0.3473, rel=0.01)
    assert law["beta"] == pytest.approx(0.3672, rel=0.01)
    assert law["A"] == pytest.approx(477.8, rel=0.05)
    assert law["B"] == pytest.approx(2143, rel=0.05)


def test_power_laws_are_fitted_against_N_D_and_C():
    rng = np.random.default_rng(3)
    N, D = (g.ravel() for g in np.meshgrid([1e4, 3e4, 1e5, 3e5], [1e6, 2e6, 4e6, 8e6]))
    L = (1.5 + 30 / N**0.3 + 200 / D**0.35) * np.exp(rng.normal(0, 0.002, N.size))
    df = pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "L": L})
    laws = {(law.fitted().law.inputs[0], "E" in law.params): law for law in power_laws(df)}
    assert set(laws) == {(x, irr) for x in "NDC" for irr in (False, True)}
    assert laws["N", True].params["b"] == pytest.approx(-0.3, abs=0.05) and laws["N", True].at == "D=8e+06"
    assert laws["D", True].params["b"] == pytest.approx(-0.35, abs=0.05) and laws["D", True].at == "N=3e+05"


def test_frontier_keeps_exactly_the_runs_that_beat_every_cheaper_run():
    df = pd.DataFrame({"run": list("abcdef"), "C": [1, 2, 3, 3, 4, 5], "L": [3.0, 3.5, 2.5, 2.8, 2.5, 2.0]})
    # b: worse than a with more compute; d: same compute as c, higher loss; e: no lower than c.
    assert frontier(df.sample(frac=1, random_state=0))["run"].tolist() == ["a", "c", "f"]


def test_too_little_data_says_what_is_missing():
    with pytest.raises(FitError, match=r"need at least 2 distinct N, 2 distinct D and 5 runs \(5 parameters\); got 1 N, 5 D, 5 runs"):
        fit_chinchilla([1e5] * 5, [1e6, 2e6, 3e6, 4e6, 5e6], [3, 2.9, 2.8, 2.7, 2.6])
    with pytest.raises(FitError, match="power law in N: need at least 2 distinct N values, got 1"):
        fit_power_law([1e5, 1e5], [3.0, 2.9], name="N")
    with pytest.raises(FitError, match="positive and finite"):
        fit_power_law([1e4, 1e5, 1e6], [3.0, float("nan"), 2.0], name="N")
    with pytest.raises(FitError, match="positive and finite"):
        fit_chinchilla([1e4, 1e5] * 3, [1e6] * 3 + [2e6] * 3, [3.0, 2.0, 0.0, 2.5, 2.2, 2.1])
    with pytest.raises(FitError, match="no column for N"):
        from_columns(pd.DataFrame({"size": [1.0], "L": [2.0], "D": [3.0]}), {})


def test_diverged_runs_are_left_out_by_name_and_all_diverged_is_a_clear_error(sweep_file, tmp_path, capsys):
    from scalinglab.cli import main

    path = sweep_file(train={"lr": 1e12, "grad_clip": 1e9})  # every run overflows at once
    res = tmp_path / "res"
    assert main(["run", str(path), "--results", str(res)]) == 0  # diverging is an outcome, not a failure
    out = capsys.readouterr().out
    assert "warning: 4 diverged run(s) left out of the fits:" in out and "N=" in out
    assert main(["fit", str(res / "tiny")]) == 2
    assert capsys.readouterr().err == f"scalinglab: error: {res / 'tiny'}: all 4 finished runs diverged; nothing to fit\n"


def test_a_tables_U_column_reaches_the_runs_the_fits_are_given(tmp_path, capsys):
    from scalinglab.cli import main

    table = pd.read_csv(CHINCHILLA_CSV)
    table["unique tokens"] = table["Training FLOP"] / (6 * table["Model Size"]) / 2  # each run saw its data twice
    mapping = {"N": "Model Size", "C_6ND": "Training FLOP", "L": "loss", "U": "unique tokens"}
    runs = from_columns(table, mapping)
    assert list(runs.columns) == ["N", "D", "C", "L", "U"] and runs["U"].to_numpy() == pytest.approx(runs["D"].to_numpy() / 2)
    assert from_columns(table, {k: v for k, v in mapping.items() if k != "U"})["U"].isna().all()  # a table without U
    table.loc[3, "unique tokens"] = 0
    with pytest.raises(FitError, match=r"^row 4, column 'unique tokens' \(U\): '0.0' is not a positive number$"):
        from_columns(table, mapping)
    table.loc[3, "unique tokens"] = 1e9
    table.to_csv(tmp_path / "t.csv", index=False)
    maps = [arg for k, v in mapping.items() for arg in ("--map", f"{k}={v}")]
    assert main(["fit", "--csv", str(tmp_path / "t.csv"), *maps, "--bootstrap", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] == len(table)
