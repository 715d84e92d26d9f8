"""scalinglab compare --shared-exponents: every sweep fitted together with Chinchilla's alpha and beta
shared, reported beside the separate fits; on test_compare.py's synthetic sweeps, whose truth shares
its exponents (B is A's law at (sqrt 2 N, sqrt 2 D): k = 2 at every compute)."""

import numpy as np
import pytest

from scalinglab.analysis.compare.multiplier import multiplier
from scalinglab.analysis.compare.shared import resample_rows
from scalinglab.analysis.laws import Fitted
from scalinglab.analysis.laws.bootstrap import draw as draw_rows
from scalinglab.analysis.laws.bootstrap import seeds
from scalinglab.analysis.laws.chinchilla_shared import SharedChinchilla
from scalinglab.cli import main
from test_compare import FAST, MAPS, TRUTH, M, compare_json, draw, inside, law, point, write_table

# B's truth: A's law at (M N, M D), so A and B share E, alpha and beta
B_TRUTH = {"E": TRUTH["E"], "A": TRUTH["A"] * M ** -TRUTH["alpha"], "B": TRUTH["B"] * M ** -TRUTH["beta"]}


def width(estimate: dict) -> float:
    return estimate["ci"][1] - estimate["ci"][0]


def test_shared_exponents_recover_the_truth_with_a_narrower_interval_than_separate_fits(tmp_path, capsys):
    csv = write_table(tmp_path / "t.csv", {"A": draw(law(), 1), "B": draw(law(), 2, scale=M)})
    report = compare_json(capsys, "--csv", str(csv), *MAPS, *FAST, "--shared-exponents")
    shared = report["shared"]
    assert inside(shared["alpha"], TRUTH["alpha"]) and inside(shared["beta"], TRUTH["beta"]), (shared["alpha"], shared["beta"])
    for sweep, truth in zip(shared["sweeps"], ({k: TRUTH[k] for k in B_TRUTH}, B_TRUTH)):
        assert all(inside(sweep[k], v) for k, v in truth.items()), (sweep, truth)
    separate_mid, shared_mid = point(report, "runs_mid"), point(shared, "runs_mid")
    assert inside(shared_mid["k"], 2.0) and abs(shared_mid["k"]["value"] / 2 - 1) < 0.1, shared_mid["k"]
    assert width(shared_mid["k"]) <= width(separate_mid["k"]), (shared_mid["k"], separate_mid["k"])
    c = shared["comparisons"][0]
    assert inside(c["slope"], 0.0) and shared["n_bootstrap"] == c["n_bootstrap"] == 50
    assert c["verdict"].startswith("shared exponents: B vs A at C_6ND") and "(B better)" in c["verdict"]
    assert report["comparisons"][0]["verdict"].startswith("B vs A at C_6ND")  # the separate fits' comparison, as without the flag


def test_both_ways_are_printed_and_json_without_the_flag_has_no_shared_part(tmp_path, capsys):
    csv = write_table(tmp_path / "t.csv", {"A": draw(law(), 1), "B": draw(law(), 2, scale=M)})
    args = ["compare", "--csv", str(csv), *MAPS, "--law", "chinchilla", "--bootstrap", "0"]
    page = tmp_path / "compare.html"
    assert main([*args, "--shared-exponents", "--html", str(page)]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "<h2>Shared exponents</h2>" in page.read_text() and "<h2>Shared exponents: B against A</h2>" in page.read_text()
    assert "B against A" in out and "Shared exponents: B against A" in out
    assert "alpha = " in out and "A: E = " in out and "B: E = " in out
    assert out.count("B vs A at C_6ND") == 2 and out.count("shared exponents: B vs A at C_6ND") == 1
    assert compare_json(capsys, *args[1:])["shared"] is None


@pytest.mark.parametrize("laws", ["kaplan", "chinchilla,farseer", "power_C"])
def test_shared_exponents_beside_another_law_is_refused_in_one_line(tmp_path, capsys, laws):
    csv = write_table(tmp_path / "t.csv", {"A": draw(law(), 1), "B": draw(law(), 2)})
    assert main(["compare", "--csv", str(csv), *MAPS, "--law", laws, "--shared-exponents"]) == 2
    err = capsys.readouterr().err
    assert f"--shared-exponents with --law {laws}: " in err and "give --law chinchilla or auto" in err and err.count("\n") == 1, err


def test_each_sweep_is_resampled_as_its_separate_bootstrap_resamples_it():
    sizes, n = [24, 30, 5], 7
    rows = resample_rows(sizes, n)
    for b in range(n):
        parts = np.split(rows[b], np.cumsum(sizes)[:-1])
        for g, (part, start) in enumerate(zip(parts, np.cumsum([0, *sizes[:-1]]))):
            np.testing.assert_array_equal(part - start, draw_rows(sizes[g], seeds(n, g)[b]))


def test_equal_irreducible_losses_and_shared_exponents_make_k_constant():
    joint = SharedChinchilla(2)
    values = {"E_1": 0.5, "A_1": 80.0, "B_1": 400.0, "E_2": 0.5, "A_2": 50.0, "B_2": 300.0, "alpha": 0.4, "beta": 0.3}
    A, B = joint.per_sweep(Fitted.of(joint, values), [10, 10])
    k = multiplier(A, B, np.geomspace(1e12, 1e24, 7))
    np.testing.assert_allclose(k, k[0], rtol=1e-6)
    assert k[0] > 1
