"""Bad sweep YAML: exit code 2, one line naming the YAML path, no traceback, nothing written."""

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import with_sections

from scalinglab.cli import main
from scalinglab.data.corpus import TokenizerKind
from scalinglab.data.demonstrations import Strategy
from scalinglab.data.objectives import OBJECTIVES
from scalinglab.data.sources import Source, corpus_files
from scalinglab.data.tasks import OutputType
from scalinglab.errors import SpecError
from scalinglab.model.kernels import Precision
from scalinglab.model.parametrization import PARAMETRIZATIONS
from scalinglab.sweep.read import load, parse
from scalinglab.sweep.spec import SweepSpec
from scalinglab.sweep.types import Executor
from scalinglab.training.schedules import SCHEDULES, CooldownShape
from scalinglab.training.tracking import Tracking

BASE = {"name": "s", "grid": {"N": [1e5], "D": [1e6]}}


def with_(**sections):
    return with_sections(BASE, **sections)


CASES = [
    (with_(model={"n_layer": 2}), r"^model.n_layer: unknown key; known keys: seq_len, mlp_ratio, d_head, aspect_ratio, parametrization, base_width$"),
    (with_(train={"learning_rate": 1e-3}), r"train.learning_rate: unknown key"),
    (with_(trian={"lr": 1e-3}), r"trian: unknown key; did you mean 'train'\?"),
    (with_(grid={"N": [1e5], "D": [1e6], "shapes": None, "tokens_per_parm": [20]}), r"grid.tokens_per_parm: unknown key; did you mean 'tokens_per_param'\?"),
    (with_(grid={"N": None, "D": [1e6], "shapes": [{"n_layer": 2, "d_model": 64, "n_heads": 4}]}),
     r"^grid.shapes\[0\].n_layer: unknown key; did you mean 'n_layers'\?$"),
    (with_(launch={"slurm": {"partion": "gpu"}}), r"launch.slurm.partion: unknown key; did you mean 'partition'\?"),
    (with_(train={"batch_size": "big"}), r"train.batch_size: Input should be a valid integer.*'big'"),
    (with_(train={"lr": -1}), r"train.lr: Input should be greater than 0"),
    (with_(train={"b2": 1.5}), r"train.b2: Input should be less than 1"),
    (with_(grid={"N": None, "D": [1e6], "shapes": [{"n_layers": 2, "d_model": 64, "n_heads": 4}, {"n_layers": 2, "d_model": 100, "n_heads": 3}]}),
     r"^grid.shapes\[1\].n_heads: d_model 100 is not divisible by n_heads 3$"),
    (with_(grid={"shapes": [{"n_layers": 2, "d_model": 64, "n_heads": 4}]}), r"grid: give exactly one of 'N' \(target sizes\) or 'shapes'"),
    (with_(grid={"D": None}), r"grid: give exactly one of 'D' \(tokens\), 'tokens_per_param' or 'C'"),
    (with_(launch={"executor": "kubernetes"}), r"launch.executor: Input should be 'debug', 'local' or 'slurm'"),
    ({"grid": {"N": [1e5], "D": [1e6]}}, r"^name: required, but missing$"),
    (with_(data={"source": "text", "path": "/nonexistent/corpus"}), r"data.path: /nonexistent/corpus does not exist"),
    (with_(seeds=[0, 0]), r"seeds: \[0, 0\] repeats a seed"),
    (with_(grid={"N": [1e5], "D": [1e6], "schedules": [{"schedule": "cosine"}, {"schedule": "constant", "min_lr_ratio": 0.2}]}),
     r"^grid.schedules\[1\].min_lr_ratio: not used with schedule 'constant', only with .*; remove it or change grid.schedules\[1\].schedule$"),
    (with_(grid={"N": [1e5], "D": [1e6], "schedules": [{"schedule": "cosine", "cooldown_fraction": 0.1}]}),
     r"^grid.schedules\[0\].cooldown_fraction: not used with schedule 'cosine', only with 'wsd' or 'step'"),
    (with_(grid={"N": [1e5], "D": [1e6], "schedules": [{"schedule": "wsd"}]}, train={"schedule": "wsd", "cooldown_branches": True}),
     r"^grid.schedules: not with train.cooldown_branches"),
    (with_(grid={"N": [1e5], "D": [1e6], "schedules": [{"schedule": "warmup-only"}]}), r"^grid.schedules\[0\].schedule: Input should be 'constant', 'cosine', 'linear', 'wsd' or 'step'"),
    (with_(grid={"N": [1e5], "D": [1e6], "schedules": [{"schedule": "cosine"}]}, train={"cooldown_fraction": 0.1}),
     r"^train.cooldown_fraction: not used by any of grid.schedules, only by 'wsd' or 'step'; remove it$"),
]


@pytest.mark.parametrize("doc,message", CASES)
def test_bad_sweep_is_rejected_with_a_path_precise_line(doc, message):
    with pytest.raises(SpecError, match=message):
        parse(doc)


# Each closed field of the YAML and where its choices come from: a registry's names or an enum's values.
CHOICES = [
    ("data", "source", Source), ("data", "tokenizer", TokenizerKind), ("model", "parametrization", PARAMETRIZATIONS.names),
    ("train", "objective", OBJECTIVES.names), ("train", "schedule", SCHEDULES.names), ("train", "cooldown_shape", CooldownShape),
    ("train", "precision", Precision), ("launch", "executor", Executor), ("launch", "tracking", Tracking),
]


@pytest.mark.parametrize("section,field,source", CHOICES, ids=[f"{s}.{f}" for s, f, _ in CHOICES])
def test_a_choice_is_its_registrys_in_the_error_and_in_the_json_schema(section, field, source):
    """The schema takes the choices from where the code defines them; the error line and the JSON
    schema (which the docs read) list them, the schema at the field itself."""
    names = [str(name) for name in source]
    listed = ", ".join(f"'{n}'" for n in names[:-1]) + f" or '{names[-1]}'"
    with pytest.raises(SpecError, match=f"^{section}.{field}: Input should be {re.escape(listed)} \\(got 'nope'\\)$"):
        parse(with_(**{section: {field: "nope"}}))
    schema = SweepSpec.model_json_schema()
    properties = schema["$defs"][schema["properties"][section]["$ref"].split("/")[-1]]["properties"]
    field_schema = properties[field]  # an optional field (train.precision: unset by default) has it in anyOf, beside null
    assert [p["enum"] for p in [field_schema, *field_schema.get("anyOf", [])] if "enum" in p] == [names]


def test_the_eval_sections_choices_come_from_their_enums():
    schema = SweepSpec.model_json_schema()["$defs"]
    assert schema["EvalSpec"]["properties"]["strategies"]["items"]["enum"] == [str(s) for s in Strategy]
    assert schema["TaskEntry"]["properties"]["output_type"]["enum"] == [str(t) for t in OutputType]
    with pytest.raises(SpecError, match=r"^eval.strategies\[1\]: Input should be 'random', 'first_n', .* or 'difficulty' \(got 'best'\)$"):
        parse(with_(eval={"strategies": ["random", "best"]}))


@pytest.mark.parametrize("verb", ["plan", "run"])
def test_cli_bad_input_exit_2_one_line_nothing_written(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(with_(grid={"N": None, "D": [1e6], "shapes": [{"n_layers": 2, "d_model": 100, "n_heads": 3}]})))
    assert main([verb, str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "scalinglab: error: grid.shapes[0].n_heads: d_model 100 is not divisible by n_heads 3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


# A flag that overrides the launch section is checked with the whole spec: each of these sweeps is
# valid as written, and the flag breaks a rule across sections, which the jobs would otherwise
# only meet inside the trainer.
SLURM_NODES = {"executor": "slurm", "slurm": {"nodes": 2}}
OVERRIDES = [
    (["plan", "run"], ["--executor", "local"], with_(launch=SLURM_NODES, train={"fsdp": 2}),
     r"--executor local: launch.slurm.nodes: 2 needs launch.executor 'slurm' \(.*\); remove it to train each run in one process"),
    (["plan", "run"], ["--executor", "local"], with_(launch={**SLURM_NODES, "gpus_per_job": 4}, train={"fsdp": 8}),
     r"--executor local: launch.slurm.nodes: 2 needs launch.executor 'slurm'"),
    (["plan", "run"], ["--executor", "debug"], with_(launch={"gpus_per_job": 1, "jobs_per_gpu": 2}),
     r"--executor debug: launch.jobs_per_gpu: shares a GPU between local jobs; needs launch.executor 'local'"),
]


@pytest.mark.parametrize("verbs,flags,doc,message", OVERRIDES,
                         ids=["local-over-2-nodes", "local-over-2-nodes-fsdp-8", "debug-sharing-a-gpu"])
def test_a_flag_that_breaks_the_spec_exits_2_with_one_line_and_writes_nothing(verbs, flags, doc, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    load(path)  # valid as written
    for verb in verbs:
        assert main([verb, str(path), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("scalinglab: error: ") and err.count("\n") == 1, err
        assert re.fullmatch(message + r".*\n", err.removeprefix("scalinglab: error: ")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no results/s/


def test_a_flag_changes_the_launch_only(tmp_path, capsys):
    """The spec rebuilt with a flag is the same sweep: the same runs, the same ids."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(with_(train={"schedule": "wsd", "cooldown_branches": True}, grid={"N": [1e5], "D": [1e6, 2e6]})))
    for name, flags in (("yaml", []), ("flag", ["--executor", "debug"])):
        assert main(["plan", str(path), "--json", str(tmp_path / f"{name}.json"), *flags]) == 0
    assert "(1 job(s) at once, debug)" in capsys.readouterr().out
    assert (tmp_path / "yaml.json").read_text() == (tmp_path / "flag.json").read_text()


def test_missing_file_and_broken_yaml(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such sweep file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ngrid: [1, 2\n")
    with pytest.raises(SpecError, match=r"broken.yaml:\d+:\d+: not valid YAML"):
        load(broken)


def test_bad_command_line_is_one_line_exit_2(capsys, tmp_path):
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the following arguments are required: sweep" in err
    for verb in ("status", "fit", "plot"):  # a folder that is no sweep's results
        assert main([verb, str(tmp_path)]) == 2
        assert capsys.readouterr().err == f"scalinglab: error: {tmp_path}: no runs/ folder; is this a results/<sweep> folder?\n"


def test_empty_text_corpus_is_rejected_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(with_(data={"source": "text", "path": str(tmp_path / "corpus")})))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scalinglab: error: data.path:") and err.rstrip().endswith("is empty")
    assert not (tmp_path / "results").exists()


BAD_SWEEPS = sorted((Path(__file__).parent / "data" / "bad_sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD_SWEEPS, ids=lambda p: p.stem)
@pytest.mark.parametrize("verb", ["plan", "run"])
def test_each_bad_sweep_exits_2_with_one_line_and_writes_nothing(path, verb, tmp_path, capsys, monkeypatch):
    """tests/data/bad_sweeps/*.yaml: syntax errors, wrong types, bad sizes, unsafe names and tags,
    duplicate keys, too many runs, missing data; each file's first line is the expected error."""
    expected = path.read_bytes().split(b"\n", 1)[0].decode().removeprefix("# error: ")
    monkeypatch.chdir(tmp_path)
    assert main([verb, str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("scalinglab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(expected, err.removeprefix("scalinglab: error: ")), err
    assert list(tmp_path.iterdir()) == []  # no results/, nothing else


def test_the_docs_count_the_bad_sweeps():
    text = (Path(__file__).parents[1] / "docs" / "sweeps.md").read_text()
    assert re.search(r"`tests/data/bad_sweeps/` holds (\d+)\s+such files", text)[1] == str(len(BAD_SWEEPS))


def test_a_fifo_as_data_path_is_refused_and_one_in_a_folder_is_skipped(tmp_path, capsys, monkeypatch):
    """Reading a FIFO (or a device) never ends: refused as data.path, passed over inside a folder."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe.txt")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(with_(data={"source": "text", "path": str(tmp_path / "pipe.txt")})))
    assert main(["plan", str(path)]) == 2
    assert capsys.readouterr().err == f"scalinglab: error: data.path: {tmp_path / 'pipe.txt'} is not a regular file or a folder; give a file or folder of documents\n"
    folder = tmp_path / "docs"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    (folder / "a.txt").write_text("some text " * 50_000)
    assert corpus_files("text", str(folder)) == [folder / "a.txt"]
