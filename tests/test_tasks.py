"""Downstream tasks: item formats and prompts, user JSONL tasks and their errors, the built-in tasks,
and every few-shot demonstration strategy."""

import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scalinglab.data.builtin_tasks import BUILTIN, builtin_task
from scalinglab.data.demonstrations import NEEDS, Strategy, choose
from scalinglab.data.tasks import Item, Task, load_jsonl_task
from scalinglab.errors import SpecError

TASKS = Path(__file__).parent / "data" / "tasks"


def mc_task(**delimiters) -> Task:
    pool = (Item("a", "Q1", ("x", "y"), 1), Item("b", "Q2", ("u", "v", "w"), 0))
    return Task("t", "multiple_choice", pool, (Item("c", "Q3", ("p", "q"), 1),), 0.5, **delimiters)


def generation_task(pool: list[str], test: list[str], answer: str = "z") -> Task:
    """Contexts as given, every answer `answer`; ids p0.. and t0.."""
    items = [tuple(Item(f"{s}{i}", c, target=answer) for i, c in enumerate(cs)) for s, cs in (("p", pool), ("t", test))]
    return Task("t", "generation", *items, 0.0)


# ---- formats ------------------------------------------------------------------------------------


def test_an_items_answer_is_its_gold_choice_or_its_target():
    assert Item("1", "c", ("a", "b", "c"), 2).answer == "c"
    assert Item("1", "c", target="t").answer == "t"


def test_prompts_and_continuations_are_exact():
    task = mc_task()
    demo_a, demo_b = task.pool
    assert task.demonstration(demo_a) == "Q1 y"
    assert task.prompt(task.test[0], [demo_a, demo_b]) == "Q1 y\n\nQ2 u\n\nQ3"
    assert task.prompt(task.test[0], []) == "Q3"
    assert task.continuations(task.test[0]) == [" p", " q"]
    gen = Task("g", "generation", (), (Item("1", "ab=", target="05"),), 0.0, target_delimiter="", fewshot_delimiter="\n")
    assert gen.prompt(gen.test[0], [Item("0", "cd=", target="17")]) == "cd=17\nab="
    assert gen.continuations(gen.test[0]) == ["05"]


# ---- user tasks from JSONL ----------------------------------------------------------------------


def load(test, fewshot=None, output_type="multiple_choice", **kw) -> Task:
    fields = ("question", "options", "label") if output_type == "multiple_choice" else ("prompt", None, "answer")
    return load_jsonl_task("user", test, fewshot, output_type, *fields, **kw)


def test_a_multiple_choice_file_reads_indices_and_strings_and_ids():
    task = load(TASKS / "mc.jsonl")
    assert task.kind == "multiple_choice" and task.pool == task.test
    assert [t.id for t in task.test] == ["1", "2", "fn"]  # line numbers (a blank line counts), or the id field
    assert [t.answer for t in task.test] == ["4", "Paris", "x"]
    assert task.chance == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)
    assert task.continuations(task.test[1]) == [" Paris", " Rome"]
    assert all(i not in picks for i, picks in enumerate(choose(task, "first_n", 2, 0)))  # never itself


def test_a_generation_file_takes_its_pool_from_the_fewshot_file_in_file_order():
    task = load(TASKS / "gen.jsonl", TASKS / "gen_fewshot.jsonl", "generate_until", n_test=2, n_pool=2)
    assert task.kind == "generation" and task.chance == 0.0
    assert [(t.context, t.target) for t in task.test] == [("import numpy as", "np"), ("for i in range(3):", "pass")]
    assert [p.target for p in task.pool] == ["osp", "pd"]
    assert task.prompt(task.test[0], task.pool[:1]) == "import os.path as osp\n\nimport numpy as"


def test_without_a_fewshot_file_the_pool_is_the_first_n_pool_test_items():
    task = load(TASKS / "gen.jsonl", output_type="generate_until", n_test=1, n_pool=3, fewshot_delimiter="\n")
    assert [t.target for t in task.test] == ["np"] and [p.target for p in task.pool] == ["np", "pass", "break"]
    assert choose(task, "first_n", 2, 0) == [[1, 2]]


GOOD = '{"question": "q", "options": ["a", "b"], "label": 0}'
BAD_FILES = {  # content, output_type, (line, words the message must hold)
    "missing field": (GOOD + '\n{"question": "q", "options": ["a", "b"]}', "multiple_choice", (2, "'label'")),
    "gold out of range": ('{"question": "q", "options": ["a", "b"], "label": 2}', "multiple_choice", (1, "'label'", "out of range")),
    "gold not a choice": ('{"question": "q", "options": ["a", "b"], "label": "c"}', "multiple_choice", (1, "'label'", "not one of")),
    "gold a bool": ('{"question": "q", "options": ["a", "b"], "label": true}', "multiple_choice", (1, "'label'")),
    "one choice": ('{"question": "q", "options": ["a"], "label": 0}', "multiple_choice", (1, "'options'", "at least 2")),
    "choices not strings": ('{"question": "q", "options": ["a", 2], "label": 0}', "multiple_choice", (1, "'options'")),
    "text not a string": ('{"question": 3, "options": ["a", "b"], "label": 0}', "multiple_choice", (1, "'question'")),
    "not JSON": (GOOD + "\n{question: 1}", "multiple_choice", (2, "not valid JSON")),
    "not an object": ("[1, 2]", "multiple_choice", (1, "JSON object")),
    "repeated id": ('{"prompt": "p", "answer": "a", "id": 7}\n{"prompt": "q", "answer": "b", "id": 7}', "generate_until", (2, "'7'")),
    "target not a string": ('{"prompt": "p", "answer": 5}', "generate_until", (1, "'answer'")),
    "empty file": ("\n\n", "multiple_choice", (None, "empty")),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_task_file_names_its_file_line_and_field(case, tmp_path):
    content, output_type, (line, *words) = BAD_FILES[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(SpecError) as e:
        load(path, output_type=output_type)
    message = str(e.value)
    assert "\n" not in message
    assert (f"{path}:{line}:" if line else str(path)) in message
    assert all(w in message for w in words), message


def test_a_bad_task_config_is_named(tmp_path):
    with pytest.raises(SpecError, match="output_type 'loglikelihood'"):
        load(TASKS / "mc.jsonl", output_type="loglikelihood")
    with pytest.raises(SpecError, match="doc_to_choice"):
        load_jsonl_task("user", TASKS / "mc.jsonl", None, "multiple_choice", "question", None, "label")
    with pytest.raises(SpecError, match="n_test"):
        load(TASKS / "mc.jsonl", n_test=0)
    with pytest.raises(SpecError, match="no such file"):
        load(tmp_path / "missing.jsonl")


# ---- built-in tasks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def val_text() -> str:
    """Held-out text as the byte-level corpus gives it: some standard-library files joined by NUL."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[::25]
    return "\x00".join(f.read_bytes().decode("utf-8", "replace") for f in files)


@pytest.fixture(scope="module")
def builtins(val_text) -> dict[str, Task]:
    return {name: builtin_task(name, val_text, 60, 30, seed=0) for name in BUILTIN}


def test_builtin_tasks_are_deterministic_in_their_seed(val_text, builtins):
    for name, task in builtins.items():
        assert builtin_task(name, val_text, 60, 30, seed=0) == task
        assert builtin_task(name, val_text, 60, 30, seed=1).test != task.test
        assert builtin_task(name, val_text, 20, 30, seed=0).test == task.test[:20]  # more items extend, never change


def test_builtin_tasks_are_short_plain_and_at_their_chance_level(builtins):
    assert {n: t.chance for n, t in builtins.items() if n != "copy"} == {"recall": 0.01, "cloze": 0.25, "completion": 0.0}
    assert builtins["copy"].chance < 1e-6
    for name, task in builtins.items():
        assert (len(task.test), len(task.pool)) == (60, 30) and name in BUILTIN and "chance" in BUILTIN[name]
        for item in task.pool + task.test:
            assert 16 <= len(item.context) <= 32 and re.fullmatch(r"[ -~\n]+", item.context), item
            assert all(1 <= len(a) <= 8 and re.fullmatch(r"[ -~]+", a) for a in item.choices or (item.target,)), item
        prompts = [task.prompt(t, task.pool[:3]) + task.continuations(t)[0] for t in task.test]
        assert max(map(len, prompts)) <= 160, name


def test_builtin_pool_and_test_items_are_disjoint(val_text, builtins):
    half = len(val_text) // 2
    for name, task in builtins.items():
        assert not {(p.context, p.answer) for p in task.pool} & {(t.context, t.answer) for t in task.test}
        assert len({t.id for t in task.test}) == len(task.test) and len({p.id for p in task.pool}) == len(task.pool)
        if name in ("cloze", "completion"):  # ids are offsets in the held-out text: pool first half, test second
            assert max(int(p.id) for p in task.pool) < half <= min(int(t.id) for t in task.test)


def test_recall_and_copy_answers_are_what_the_context_implies(builtins):
    for item in builtins["recall"].test:
        *pairs, query = item.context.split(" ")
        values = dict(p.split("=") for p in pairs)
        assert len(values) == 4 and query.endswith("=") and values[query[:-1]] == item.target
    for item in builtins["copy"].test:
        first, second = item.context.split("|")
        assert first == second + item.target and len(item.target) == 6
    task = builtins["recall"]
    assert task.prompt(task.test[0], []) + task.continuations(task.test[0])[0] == task.test[0].context + task.test[0].target


def test_held_out_answers_follow_their_context_in_the_text(val_text, builtins):
    for task in (builtins["cloze"], builtins["completion"]):
        for item in task.test + task.pool:
            at = int(item.id)
            assert val_text[at - len(item.context):at + len(item.answer)] == item.context + item.answer
            assert not (val_text[at - 1].isalnum() or val_text[at - 1] == "_")  # the answer starts a word
            assert val_text[at - len(item.context) - 1] in " \t\n\x00" or at == len(item.context)
    for item in builtins["cloze"].test:
        assert len(item.choices) == 4 == len(set(item.choices)) and all(len(c) == 8 for c in item.choices)
    assert len({t.gold for t in builtins["cloze"].test}) == 4  # the right answer is not always in one place
    for item in builtins["completion"].test:
        at = int(item.id) + len(item.target)
        assert val_text[at] == "\n" and not item.target[-1].isspace()  # the rest of a line


def test_builtin_tasks_name_what_is_wrong():
    with pytest.raises(SpecError, match="recall, copy, cloze, completion"):
        builtin_task("hellaswag", "", 10, 10, 0)
    with pytest.raises(SpecError, match="n_pool"):
        builtin_task("recall", "", 10, 0, 0)
    with pytest.raises(SpecError, match="second half of the held-out text yields"):
        builtin_task("completion", "x = 1\n\x00    return value\n" * 4, 10, 1, 0)


# ---- demonstration strategies -------------------------------------------------------------------


def test_every_strategy_gives_k_demonstrations_never_the_item_itself():
    rng = np.random.default_rng(0)
    task = generation_task([f"word{i} other{i % 3}" for i in range(12)], [])
    task = Task("t", "generation", task.pool, task.pool, 0.0)  # the pool is the test set
    vectors = rng.normal(size=(12, 5))
    extra = {"embeddings": (vectors, vectors), "losses": rng.random(12)}
    assert set(NEEDS) <= set(Strategy)
    for strategy in Strategy:
        picks = choose(task, strategy, 4, 0, **extra)
        assert len(picks) == 12 and all(len(p) == len(set(p)) == 4 for p in picks), strategy
        assert all(i not in p for i, p in enumerate(picks)), strategy
        assert all(isinstance(j, int) for p in picks for j in p)


def test_a_pool_item_equal_to_the_test_item_is_never_its_demonstration():
    task = generation_task(["a b", "c d", "e f"], ["c d"])
    assert choose(task, "first_n", 2, 0) == [[0, 2]]
    assert choose(task, "bm25", 2, 0)[0][-1] != 1
    with pytest.raises(ValueError, match="only 2 pool items"):
        choose(task, "random", 3, 0)


def test_first_n_and_random():
    task = generation_task([f"c{i}" for i in range(30)], [f"q{i}" for i in range(8)])
    assert choose(task, "first_n", 3, 0) == [[0, 1, 2]] * 8
    picks = choose(task, "random", 3, seed=0)
    assert picks == choose(task, "random", 3, seed=0)  # paired: the same for every model and evaluation
    assert len({tuple(p) for p in picks}) == 8  # different for each item
    assert picks != choose(task, "random", 3, seed=1)
    assert [p[:2] for p in picks] == choose(task, "random", 2, seed=0)  # fewer shots: a prefix


def test_bm25_puts_the_lexically_closest_last():
    pool = ["stock prices fall sharply", "the cat sat on the mat", "import os path join", "a cat ran to the mat today"]
    task = generation_task(pool, ["The cat sat on a mat", "os.path.join(a, b)"])
    first, second = choose(task, "bm25", 2, 0)
    assert first == [3, 1] and second[-1] == 2


def test_embedding_and_mmr_put_the_most_similar_last_and_mmr_skips_duplicates():
    task = generation_task(["a", "b", "c", "d"], ["q"])
    pool = np.array([[1.0, 0.0], [2.0, 0.0], [0.8, 0.6], [0.0, -1.0]])  # 0 and 1 point the same way
    test = np.array([[1.0, 0.05]])
    assert choose(task, "embedding", 2, 0, embeddings=(pool, test)) == [[1, 0]]
    assert choose(task, "mmr", 2, 0, embeddings=(pool, test)) == [[2, 0]]  # 1 would only repeat 0
    assert choose(task, "embedding", 4, 0, embeddings=(pool, test)) == [[3, 2, 1, 0]]


def test_difficulty_picks_the_lowest_losses_easiest_last():
    task = generation_task(["a", "b", "c", "d"], ["q"])
    assert choose(task, "difficulty", 2, 0, losses=[3.0, 1.0, 2.0, 0.5]) == [[1, 3]]


def test_bad_strategy_arguments_raise():
    task = generation_task(["a", "b", "c"], ["q", "r"])
    for strategy, kw, words in [
        ("nearest", {}, "not one of"),
        ("random", {"k": 4}, "only 3 pool items"),
        ("random", {"k": -1}, "k is -1"),
        ("embedding", {}, "need embeddings"),
        ("mmr", {"embeddings": (np.ones((3, 4)), np.ones((2, 5)))}, "shapes"),
        ("embedding", {"embeddings": (np.ones((2, 4)), np.ones((2, 4)))}, "shapes"),
        ("difficulty", {}, "needs losses"),
        ("difficulty", {"losses": np.ones(2)}, "shape"),
        ("difficulty", {"losses": [1.0, np.nan, 2.0]}, "finite"),
    ]:
        with pytest.raises(ValueError, match=words):
            choose(task, strategy, kw.pop("k", 2), 0, **kw)
