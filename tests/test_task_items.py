"""A user task's items are checked when its sweep is (plan, run), before any run trains: a bad item
is exit 2 and one line naming eval.tasks[i], the file and the line, and nothing is written. An item
that passed used to fail the run at its first task evaluation, after training."""

import json

import pytest
import yaml

from scalinglab.cli import main
from scalinglab.data.tasks import MAX_ITEMS, load_jsonl_task
from scalinglab.errors import SpecError
from scalinglab.store.records import RunRecord
from scalinglab.sweep import planner
from scalinglab.sweep.read import parse

GOOD = {"context": "2 + 2 =", "choices": ["4", "5"], "gold": 0, "target": "4"}
SWEEP = {"name": "t", "grid": {"N": [1e5], "D": [1e6]}}


def _sweep(tmp_path, lines: list[bytes], **task) -> str:
    (tmp_path / "t.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    doc = {**SWEEP, "eval": {"tasks": [{"name": "u", "test": "t.jsonl", **task}], "pool_items": 2}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    return "s.yaml"


def _item(**fields) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


# The second line of t.jsonl (after a good one), the task's settings, and the end of the error.
BAD_ITEMS = {
    "empty context and choice": (_item(context="", choices=["", "b"]), {}, "field 'context' (doc_to_text) is empty; give it some text"),
    "empty choice": (_item(choices=["a", ""]), {}, r"field 'choices' (doc_to_choice) [1] is empty; give it some text"),
    "empty target": (
        _item(target=""),
        {"output_type": "generate_until", "doc_to_target": "target"},
        "field 'target' (doc_to_target) is empty; give it some text",
    ),
    "one choice": (_item(choices=["a"]), {}, "field 'choices' (doc_to_choice) has 1 choice(s); give at least 2"),
    "gold past the choices": (_item(gold=2), {}, "field 'gold' (doc_to_target) is 2, out of range for 2 choices (0..1)"),
    "a choice a number": (_item(choices=["a", 3]), {}, "field 'choices' (doc_to_choice) is [\"a\", 3], not a list of strings"),
    "context a list": (_item(context=["q"]), {}, "field 'context' (doc_to_text) is [\"q\"], not a string"),
    "id a list": (_item(id=[1]), {}, "field 'id' is [1]; give a string or an integer"),
    "Latin-1": (
        '{"context": "café", "choices": ["a", "b"], "gold": 0}'.encode("latin-1"),
        {},
        "not UTF-8 text (byte 16 of the line); save the file as UTF-8",
    ),
}


@pytest.mark.parametrize("case", BAD_ITEMS)
@pytest.mark.parametrize("verb", ["plan", "run"])
def test_a_bad_item_exits_2_naming_the_task_file_and_line_and_writes_nothing(case, verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line, task, message = BAD_ITEMS[case]
    assert main([verb, _sweep(tmp_path, [_item(), line], **task)]) == 2
    assert capsys.readouterr().err == f"scalinglab: error: eval.tasks[0] (u): t.jsonl:2: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "t.jsonl"]


@pytest.mark.parametrize("fewshot", [None, "pool.jsonl"])
def test_a_pool_too_small_for_the_shots_is_refused_naming_the_file(fewshot, tmp_path, capsys, monkeypatch):
    """Without a fewshot file the pool is the test file's first items, less the item itself."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pool.jsonl").write_bytes(_item(context="1 + 1 =") + b"\n")
    path = _sweep(tmp_path, [_item(), _item(context="3 + 1 =")], fewshot=fewshot)
    doc = yaml.safe_load((tmp_path / path).read_text())
    doc["eval"]["num_fewshot"] = [0, 2]
    (tmp_path / path).write_text(yaml.safe_dump(doc))
    assert main(["plan", path]) == 2
    source, have = ("pool.jsonl", 1) if fewshot else ("t.jsonl", 1)
    assert capsys.readouterr().err == (
        f"scalinglab: error: eval.tasks[0] (u): eval.num_fewshot 2: test item '1' has {have} demonstration(s) to draw "
        f"from (the first 2 items of {source}, itself left out); give more items or fewer shots\n"
    )
    doc["eval"]["num_fewshot"] = [0, 1]
    (tmp_path / path).write_text(yaml.safe_dump(doc))
    assert main(["plan", path]) == 0


def test_item_counts_are_bounded(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(_item(context=str(i)) + b"\n" for i in range(MAX_ITEMS + 1)))
    with pytest.raises(SpecError, match=rf"^{path}:{MAX_ITEMS + 1}: more than 100,000 items; a task is scored on far fewer, cut the file$"):
        load_jsonl_task("u", path, None, "multiple_choice", "context", "choices", "gold")
    with pytest.raises(SpecError, match=r"^eval.pool_items: Input should be less than or equal to 100000"):
        parse({**SWEEP, "eval": {"pool_items": MAX_ITEMS + 1}})


def test_the_run_record_of_a_user_task_without_a_fewshot_file_is_valid(tmp_path, monkeypatch):
    """Its files are [test, null]: read back as a run, not as a damaged file."""
    monkeypatch.chdir(tmp_path)
    spec = parse(yaml.safe_load((tmp_path / _sweep(tmp_path, [_item(), _item(context="3 + 1 =")])).read_text()))
    record = json.loads(json.dumps(planner.plan(spec)[0].record()))
    assert record["eval_task_files"] == [[str(tmp_path / "t.jsonl"), None]]
    assert RunRecord.check(record) is None
