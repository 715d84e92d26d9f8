"""Hostile tables given to `scalinglab fit --csv` (L(N,D) and task tables): each refused with exit
code 2 and one line naming the file, the row and column, the --map or the --predict point, and
nothing written; and the memory a table's fit takes, bounded per row and independent of the
bootstrap's resamples."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis.analyze import analyze
from scalinglab.analysis.laws import LAWS, Loss
from scalinglab.analysis.laws.bootstrap import BATCH_POINTS, bootstrap
from scalinglab.analysis.laws.solve import sampled_starts, varpro_starts
from scalinglab.analysis.select import FitInputs, fit_spec
from scalinglab.analysis.table import from_columns
from scalinglab.cli import main

DATA = Path(__file__).parent / "data"
CHINCHILLA = (DATA / "chinchilla_fig4_points.csv").read_text().splitlines()  # x,y,color,Model Size,Training FLOP,hex_color,loss
OLMO = (DATA / "olmo_ladder_tasks.csv").read_text().splitlines()  # model,N,D,step,c4_loss,...,hellaswag_acc,...
MAPS = ["--map", "N=Model Size", "--map", "C_6ND=Training FLOP", "--map", "L=loss"]
TASK_MAPS = ["--map", "run=model", "--map", "task_loss=c4_loss", "--map", "acc=hellaswag_acc"]


def cell(lines: list[str], row: int, column: int, value: str) -> list[str]:
    """The table's lines with one cell (row counted from 1 under the header) replaced."""
    out = list(lines)
    cells = out[row].split(",")
    cells[column] = value
    out[row] = ",".join(cells)
    return out


def text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


CASES = {
    "header_only": (text(CHINCHILLA[:1]), MAPS, "--csv t.csv: a header and no rows"),
    "empty_file": (b"", MAPS, "--csv t.csv: the file is empty"),
    "text_in_a_column": (text(cell(CHINCHILLA, 5, 6, "abc")), MAPS, "row 5, column 'loss' (L): 'abc' is not a number"),
    "latin_1": (text(CHINCHILLA[:3]) + "caf\u00e9,1,2\n".encode("latin-1"), MAPS, "--csv t.csv: line 4 is not UTF-8 text (byte 0xe9)"),
    "empty_cell": (text(cell(CHINCHILLA, 7, 6, "")), MAPS, "row 7, column 'loss' (L): is empty or NaN"),
    "non_finite": (text(cell(CHINCHILLA, 2, 3, "inf")), MAPS, "row 2, column 'Model Size' (N): 'inf' is not finite"),
    "integer_beyond_a_float": (text(cell(CHINCHILLA, 3, 3, "9" * 400)), MAPS, "row 3, column 'Model Size' (N): 'inf' is not finite"),
    "non_positive": (text(cell(CHINCHILLA, 9, 4, "-1e20")), MAPS, "row 9, column 'Training FLOP' (C_6ND): '-1e+20' is not a positive"),
    "ambiguous_map": (
        text([CHINCHILLA[0] + ",N"] + [line + ",1" for line in CHINCHILLA[1:]]),
        MAPS,
        "--map N=Model Size: the table also has a column 'N', so N is ambiguous",
    ),
    "map_to_a_missing_column": (text(CHINCHILLA), [*MAPS[:4], "--map", "L=nosuch"], "--map L=nosuch: the table has no column 'nosuch'"),
    "map_given_twice": (text(CHINCHILLA), [*MAPS, "--map", "N=nosuch"], "--map N=nosuch: N is already mapped to 'Model Size'"),
    "one_column_mapped_twice": (text(CHINCHILLA), [*MAPS, "--map", "U=loss"], "--map U=loss: column 'loss' is already mapped to L"),
    "too_few_rows": (text(CHINCHILLA[:4]), MAPS, "--csv t.csv: no law of the loss fits its 3 rows: L(N,D): need at least"),
    "predict_inf": (text(CHINCHILLA), [*MAPS, "--predict", "C_6ND=inf"], "--predict C_6ND=inf: expected C_6ND=FLOPS"),
    "predict_nan": (text(CHINCHILLA), [*MAPS, "--predict", "N=nan,D=1e9"], "--predict N=nan,D=1e9: expected"),
    "prediction_overflows": (
        text(CHINCHILLA),
        [*MAPS, "--law", "chinchilla", "--predict", "C_6ND=5e-324", "--json"],
        "--predict C_6ND=5e-324: chinchilla predicts D_opt = inf there, not a finite number",
    ),
    "task_table_text": (text(cell(OLMO, 3, 4, "abc")), TASK_MAPS, "row 3, column 'c4_loss' (task_loss): 'abc' is not a number"),
    "task_acc_above_1": (text(cell(OLMO, 2, 6, "7")), TASK_MAPS, "row 2, column 'hellaswag_acc' (acc): 7 is not in [0, 1]"),
    "task_integer_beyond_a_float": (
        text(cell(OLMO, 2, 1, "9" * 400)),
        TASK_MAPS,
        "row 2, column 'N': '9999999999999999999999999999999999999...' is not finite",
    ),
    "task_header_only": (text(OLMO[:1]), TASK_MAPS, "--csv t.csv: a header and no rows"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_hostile_table_is_one_line_and_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    content, maps, expected = CASES[case]
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_bytes(content)
    assert main(["fit", "--csv", "t.csv", *maps, "--bootstrap", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("scalinglab: error: ")
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_fit_json_is_strict_json(tmp_path, capsys):
    (tmp_path / "t.csv").write_bytes(text(CHINCHILLA))
    args = ["fit", "--csv", str(tmp_path / "t.csv"), *MAPS, "--law", "chinchilla", "--bootstrap", "0", "--predict", "C_6ND=1e21"]
    assert main([*args, "--json"]) == 0

    def refuse(constant):
        raise AssertionError(f"{constant} in --json output")

    fit = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert fit["predictions"][0]["L"]["value"] == pytest.approx(2.31, abs=0.01)


def synthetic(rows: int) -> pd.DataFrame:
    """rows of L(N,D) from Chinchilla's published law, 1% noise."""
    rng = np.random.default_rng(0)
    N, D = 10 ** rng.uniform(7, 10, rows), 10 ** rng.uniform(8, 12, rows)
    L = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(rng.normal(0, 0.01, rows))
    return from_columns(pd.DataFrame({"N": N, "D": D, "L": L}), {})


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fit_table(rows: int, law: str, resamples: int = 0):
    table, spec = synthetic(rows), fit_spec(None, law=[law], bootstrap=resamples)
    return lambda: analyze(FitInputs(table), spec)


def starts(law: str, search):
    def run(rows: int):
        table = synthetic(rows)
        X, y = (table["N"].to_numpy(), table["D"].to_numpy()), table["L"].to_numpy()
        return lambda: search(LAWS[law](), X, y, Loss(1e-3))

    return run


@pytest.mark.parametrize(
    "search",
    [starts("chinchilla", varpro_starts), starts("farseer", varpro_starts), starts("kaplan", sampled_starts)],
    ids=["chinchilla", "farseer", "kaplan"],
)
def test_the_search_for_starts_takes_memory_linear_in_the_rows(search):
    """Every cell and start is scored over every row; all at once took over a megabyte a row
    (farseer's 16,384 cells): fit --csv on 100,000 rows, over 10 GB."""
    small, large = peak_bytes(search(500)), peak_bytes(search(2000))  # both past one batch
    assert large - small < 1500 * 1000  # under 1 kB a row
    assert large < 32 * 2**20


def test_the_bootstraps_memory_does_not_grow_with_its_resamples():
    """Resamples are solved a batch at a time; all at once they held ~200 arrays of the points each."""
    rows = 4000
    table, batch = synthetic(rows), BATCH_POINTS // rows
    X, y = (table["N"].to_numpy(), table["D"].to_numpy()), table["L"].to_numpy()
    one, four = (peak_bytes(lambda k=k: bootstrap(LAWS["chinchilla"](), X, y, k, Loss(1e-3), workers=1)) for k in (batch, 4 * batch))
    assert four < 1.3 * one


def test_thousands_of_held_out_runs_print_the_worst_and_their_count(tmp_path, capsys):
    """The printed fit of a 5,000-row table is at most a screen of held-out runs: the worst
    predicted and how many there are (every one stays in --json)."""
    synthetic(5000)[["N", "D", "L"]].to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--csv", str(tmp_path / "t.csv"), "--law", "chinchilla", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    held = [line for line in out if line.lstrip().startswith("N = ")]
    assert 0 < len(held) <= 20
    assert any("of the 1,000 held-out runs" in line for line in out)
