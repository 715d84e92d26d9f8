import json
import math

import jax
import numpy as np
import pytest
from conftest import data_config, model_config, tiny_runs
from flax import nnx

from scalinglab.data.corpus import load_corpus
from scalinglab.data.objectives import Causal, Masked
from scalinglab.model.transformer import TransformerLM
from scalinglab.training.loop import train


def test_masked_examples_follow_bert():
    windows = np.random.default_rng(0).integers(0, 256, (64, 129)).astype(np.int32)
    objective = Masked(mask_fraction=0.15)
    inputs, targets, weights = objective.examples(windows, 256, seed=3, step=7)
    assert inputs.shape == targets.shape == weights.shape == (64, 128)
    np.testing.assert_array_equal(targets, windows[:, :-1])  # predict the original tokens in place
    assert np.all(weights.sum(axis=1) == round(0.15 * 128))
    chosen = weights == 1
    assert np.all(inputs[~chosen] == targets[~chosen])  # unchosen positions are untouched
    masked = (inputs == 256)[chosen].mean()
    kept = (inputs == targets)[chosen].mean()
    assert 0.75 < masked < 0.85 and 0.06 < kept < 0.16  # 80% [MASK], 10% random (some equal by chance), 10% kept
    again = objective.examples(windows, 256, seed=3, step=7)
    assert all(np.array_equal(a, b) for a, b in zip((inputs, targets, weights), again))  # pure in (seed, step)
    other = objective.examples(windows, 256, seed=3, step=8)
    assert not np.array_equal(weights, other[2])


@pytest.mark.parametrize("objective", [Causal(), Masked(mask_fraction=0.15)], ids=["causal", "masked"])
def test_each_process_builds_its_rows_of_the_same_examples(objective):
    """A run over several processes: each builds only its devices' rows of a step's batch, and
    together they are the batch one process builds (masks, random tokens included)."""
    windows = np.random.default_rng(0).integers(0, 256, (8, 33)).astype(np.int32)
    whole = objective.examples(windows, 256, seed=3, step=7)
    for start, stop in [(0, 2), (2, 4), (3, 8), (6, 8)]:
        rows = slice(start, stop)
        part = objective.examples(windows[rows], 256, seed=3, step=7, rows=rows, batch_size=8)
        for a, b in zip(whole, part, strict=True):
            np.testing.assert_array_equal(a[rows], b)


def test_causal_examples_shift_by_one():
    windows = np.arange(10, dtype=np.int32)[None]
    inputs, targets, weights = Causal().examples(windows, 256, 0, 1)
    np.testing.assert_array_equal(inputs[0], np.arange(9))
    np.testing.assert_array_equal(targets[0], np.arange(1, 10))
    assert weights.sum() == 9


def test_the_masked_model_attends_both_ways():
    model = TransformerLM(model_config(2, 32, 4, 64, 16, 257, causal=False), rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 256)
    changed = tokens.at[:, 12].set((tokens[:, 12] + 7) % 256)
    assert not np.allclose(model(changed)[:, :12], model(tokens)[:, :12])  # earlier positions see later ones


def test_a_masked_lm_run_learns(tmp_path):
    run = tiny_runs(train={"objective": "masked"})[0]
    assert run.model.vocab_size == 257 and run.data.vocab_size == 256  # the [MASK] id
    summary = train(run, tmp_path, log=lambda _: None)
    assert summary["status"] == "done"
    assert summary["L"] < math.log(256) and summary["bpb"] == summary["L"] / math.log(2)
    assert summary["val_tokens_scored"] == round(0.15 * 32) * 64  # only the masked positions count


def test_a_bpe_run_reports_bits_per_byte_of_the_text(tmp_path):
    docs = [{"text": f"def f{i}(x):\n    return x * {i} + {i % 7}  # number {i}\n"} for i in range(3000)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    run = tiny_runs(data={"source": "jsonl", "path": str(corpus), "tokenizer": "bpe", "vocab_size": 400, "val_tokens": 1024})[0]
    assert run.model.vocab_size == run.data.vocab_size == 400
    summary = train(run, tmp_path / "run", log=lambda _: None)
    bytes_per_token = load_corpus(data_config("jsonl", corpus, "bpe", 400, run.data.val_fraction)).val_bytes_per_token
    assert bytes_per_token > 1.5  # BPE tokens span several bytes
    assert summary["bpb"] == pytest.approx(summary["L"] / math.log(2) / bytes_per_token)
    assert summary["L"] < math.log(400)
