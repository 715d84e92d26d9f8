"""Task scoring inside runs: the scores equal the model's own log-likelihoods and greedy decoding,
a run writes one record per (evaluation, task, shots, strategy) at its task steps, and
scalinglab.results.load(tasks=True) reads them back."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import tiny_runs
from flax import nnx

from scalinglab import results
from scalinglab.cli import main
from scalinglab.data.codec import Codec
from scalinglab.data.task_rows import Rows, Scored, item_scores
from scalinglab.model.transformer import build_model
from scalinglab.sweep import planner
from scalinglab.sweep.read import parse
from scalinglab.training.task_scoring import make_forward

SEQ_LEN = 24


@pytest.fixture(scope="module")
def model_and_forward():
    run = tiny_runs(shapes=((2, 32, 2),), model={"seq_len": SEQ_LEN})[0]
    graphdef, params = nnx.split(build_model(run.model, seed=3))
    logits = jax.jit(lambda p, tokens: nnx.merge(graphdef, p)(tokens)[0])
    return (lambda tokens: logits(params, jnp.array([tokens + [0] * (SEQ_LEN - len(tokens))]))), params, make_forward(graphdef, "fp32", None)


def _greedy(logits, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding, one token at a time, the way a generation task's answer is produced (the
    padding after the sequence is unseen: the model is causal)."""
    out = list(prompt)
    for _ in range(n):
        window = out[-SEQ_LEN:]
        out.append(int(jnp.argmax(logits(window)[len(window) - 1])))
    return out[len(prompt):]


def test_scores_are_the_models_log_likelihoods_and_exact_match_is_greedy_decoding(model_and_forward):
    logits, params, forward = model_and_forward
    rng = np.random.default_rng(0)
    prompts = [bytes(rng.integers(97, 123, int(n))).decode() for n in rng.integers(3, 30, 12)]
    # Half the targets are the model's own greedy continuation (exact match), half are not.
    targets = []
    for i, p in enumerate(prompts):
        greedy = _greedy(logits, list(p.encode()), 3)
        targets.append(bytes(greedy if i % 2 == 0 else [(t + 1) % 256 for t in greedy]).decode("latin-1"))
    rows = Rows(Codec(), SEQ_LEN)
    ids = [rows.add(p, t) for p, t in zip(prompts, targets)]
    out = Scored(*(np.asarray(o) for o in forward(params, *rows.arrays(16))))
    for i, (p, t) in enumerate(zip(prompts, targets)):
        seq = (list(p.encode()) + list(t.encode("latin-1")))[-(SEQ_LEN + 1):]
        n = len(seq) - 1
        logp = jax.nn.log_softmax(logits(seq[:-1])[:n], -1)[jnp.arange(n), jnp.array(seq[1:])]
        np.testing.assert_allclose(out.logp[ids[i]], float(logp[-3:].sum()), rtol=1e-5)
        scores = item_scores("generation", 0, [t], [ids[i]], out)
        assert scores["exact_match"] == (i % 2 == 0)  # teacher-forced argmaxes all hit <=> greedy gives the target
        assert scores["task_loss"] == pytest.approx(-float(logp[-3:].sum()) / 3, rel=1e-5)


def test_rows_grouped_by_width_score_as_at_full_width(model_and_forward):
    """Task scoring pads each row to the width of its length group, not to seq_len: the scores and
    features must not change (the model is causal, and the context mask stops at the prompt)."""
    _, params, forward = model_and_forward
    rng = np.random.default_rng(1)
    rows = Rows(Codec(), SEQ_LEN)
    for n in rng.integers(2, 40, 20):  # some longer than the context: cut from the left
        text = bytes(rng.integers(97, 123, int(n), dtype=np.uint8)).decode()
        rows.add(text[:-3], text[-3:])
    full = Scored(*(np.asarray(o) for o in forward(params, *rows.arrays(32))))
    groups = rows.by_width(4)
    assert set(groups) <= {6, 12, 18, 24} and len(groups) > 1 and sorted(sum(groups.values(), [])) == list(range(len(rows)))
    for width, ids in groups.items():
        part = [np.asarray(o)[:len(ids)] for o in forward(params, *rows.arrays(len(ids) + 1, width, ids))]
        for got, want in zip(part, (full.logp, full.n_tokens, full.n_correct, full.embedding)):
            np.testing.assert_allclose(got, want[ids], rtol=1e-5, atol=1e-6)


def test_multiple_choice_scores_rank_the_choices():
    out = Scored(logp=np.log(np.array([0.1, 0.6, 0.3, 0.2])), n_tokens=np.array([2, 2, 4, 1]),
                 n_correct=np.zeros(4), embedding=np.zeros((4, 1)))
    s = item_scores("multiple_choice", 2, [" ab", " cd", " efgh", " i"], [0, 1, 2, 3], out)
    assert s["acc"] == 0.0  # choice 1 is the likeliest
    assert s["acc_norm"] == 0.0  # per byte too: log(0.6)/3 = -0.17 beats log(0.3)/5 = -0.24
    assert s["p_gold"] == pytest.approx(0.3 / 1.2)
    assert s["task_loss"] == pytest.approx(-math.log(0.3) / 4)
    assert s["task_bpb"] == pytest.approx(-math.log(0.3) / math.log(2) / 5)


def _task_file(path):
    """A user multiple-choice task: which digit comes next; gold given as the choice's text."""
    lines = [{"question": f"{i} {i + 1} {i + 2}", "options": [str((i + 3) % 10), str((i + 5) % 10)], "answer": str((i + 3) % 10)}
             for i in range(12)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_a_run_scores_its_tasks_at_its_task_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = {
        "name": "abilities", "data": {"val_tokens": 1024}, "model": {"seq_len": 64},
        "grid": {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": [4 * 64 * 60]},
        "train": {"batch_size": 4, "lr": 1e-2, "n_evals": 3}, "fit": {"bootstrap": 0}, "launch": {"executor": "debug"},
        "eval": {"tasks": ["recall", "cloze", {"name": "digits", "test": str(_task_file(tmp_path / "digits.jsonl")),
                                                "doc_to_text": "question", "doc_to_choice": "options", "doc_to_target": "answer"}],
                 "num_fewshot": [0, 2], "strategies": ["random", "embedding", "difficulty"], "test_items": 10,
                 "pool_items": 8, "every": 2},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    assert main(["run", "s.yaml"]) == 0
    df = results.load("results/abilities", tasks=True)
    assert sorted(df["step"].unique()) == [20, 60]  # every 2nd evaluation, counted back from the last
    assert len(df) == 2 * 3 * 2 * 3  # steps x tasks x shots x strategies
    assert {"run_id", "N", "D", "step", "task", "shots", "strategy", "acc", "acc_norm", "task_loss", "task_bpb",
            "p_gold", "exact_match", "token_acc", "chance", "n_items", "acc_se"} <= set(df.columns)
    assert set(df["task"]) == {"recall", "cloze", "digits"} and (df["n_items"] == 10).all()
    digits = df[df["task"] == "digits"]
    assert (digits["chance"] == 0.5).all() and digits["p_gold"].between(0, 1).all()
    assert df[df["task"] == "recall"]["p_gold"].isna().all()
    items = results.load("results/abilities", tasks=True, items=True)
    shots2 = items[(items["task"] == "digits") & (items["shots"] == 2)]
    assert all(len(d) == 2 and item not in d for item, d in zip(shots2["item"], shots2["demos"]))  # never its own
    summary = json.loads(next((tmp_path / "results/abilities/runs").glob("*/summary.json")).read_text())
    assert 0 < summary["task_s"] < summary["wall_s"]


def test_tasks_enter_the_run_id_only_when_there_are_tasks(tmp_path):
    base = {"name": "t", "grid": {"N": [1e5], "D": [1e6]}}
    plain = planner.plan(parse(base))[0]
    assert "eval_tasks" in plain.record() and plain.run_id == planner.plan(parse({**base, "eval": {"num_fewshot": [3]}}))[0].run_id
    with_tasks = planner.plan(parse({**base, "eval": {"tasks": ["cloze"]}}))[0]
    assert with_tasks.run_id != plain.run_id
    # A user task is known by its files' content: moved, the same run; changed, another.
    ids = []
    same, other = '{"context": "x", "choices": ["1", "2"], "gold": 0}\n', '{"context": "y", "choices": ["1", "2"], "gold": 1}\n'
    for folder, text in (("a", same), ("b", same), ("c", other)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.jsonl").write_text(text)
        ids.append(planner.plan(parse({**base, "eval": {"tasks": [{"name": "u", "test": str(tmp_path / folder / "t.jsonl")}], "pool_items": 1}}))[0].run_id)
    assert ids[0] == ids[1] != ids[2]


def test_a_cooldown_branch_scores_its_final_evaluation_and_has_its_trunks_before():
    doc = {"name": "t", "grid": {"shapes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}], "D": [64 * 4 * 100, 64 * 4 * 400]},
           "model": {"seq_len": 64}, "train": {"batch_size": 4, "schedule": "wsd", "cooldown_branches": True, "n_evals": 4},
           "eval": {"tasks": ["cloze"], "every": 2}}
    trunk, *branches = sorted(planner.plan(parse(doc)), key=lambda r: (r.role != "trunk", r.D))
    assert trunk.eval.steps == (80, 160, 240, 320) and trunk.eval.task_steps == (160, 320)
    short, long = branches
    assert short.eval.steps[-1] == 100 and short.eval.task_steps == (100,)  # branched at 80: nothing to copy
    assert long.eval.steps[-1] == 400 and long.eval.task_steps == (160, 320, 400)


def test_a_bad_line_in_a_user_task_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.jsonl").write_text('{"context": "a", "choices": ["x", "y"], "gold": 0}\n{"context": "b", "choices": ["x"], "gold": 5}\n')
    doc = {"name": "bad", "grid": {"N": [1e5], "D": [1e6]}, "eval": {"tasks": [{"name": "mine", "test": "t.jsonl"}]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    assert main(["run", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scalinglab: error: eval.tasks[0] (mine): t.jsonl:2: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "t.jsonl"]
