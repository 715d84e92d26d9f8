"""Kept weights and the Hugging Face export: a finished run keeps its parameters; `scalinglab
export --format hf` writes a GPT-2 folder that transformers (with torch, on the CPU) loads with no
custom code, whose logits equal scalinglab's within 1e-4 for sp/muP and u-muP, byte and BPE; a
masked-LM run is refused with one line."""


import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import tiny_runs
from flax import nnx
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

from scalinglab.cli import main
from scalinglab.data.codec import open_codec
from scalinglab.data.corpus import load_corpus, prepare
from scalinglab.model.transformer import build_model
from scalinglab.store import runs
from scalinglab.store.layout import RunDir
from scalinglab.training import weights
from scalinglab.training.loop import train

KINDS = {
    "mup-byte": {"model": {"parametrization": "mup"}},
    "umup-bpe": {"model": {"parametrization": "u-mup"}, "data": {"tokenizer": "bpe", "vocab_size": 320}},
    "masked": {"train": {"objective": "masked"}},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny run (2 layers, width 32) of each kind: its spec and folder."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for kind, sections in KINDS.items():
        run = tiny_runs(shapes=((2, 32, 2),), **sections)[0]
        run_dir = RunDir(root / kind)
        runs.write_spec(run_dir, run.record())
        assert train(run, run_dir, log=lambda *_: None)["status"] == "done"
        out[kind] = run, run_dir
    return out


def scalinglab_logits(run, run_dir, ids: list[int]) -> np.ndarray:
    graphdef, fresh = nnx.split(build_model(run.model, run.seed))
    params = weights.restore(run_dir.weights, fresh)
    return np.asarray(nnx.merge(graphdef, params)(jnp.array([ids]))[0])


def held_out_ids(run, n: int) -> list[int]:
    corpus = load_corpus(run.data)
    return [int(t) for t in corpus.val[1000:1000 + n]]


def test_a_finished_run_keeps_its_weights_and_not_its_checkpoint(trained):
    run, run_dir = trained["mup-byte"]
    saved = load_file(str(run_dir.weights))
    assert not run_dir.resume.exists()
    assert saved["blocks.qkv.kernel"].shape == (2, 32, 96) and saved["pos"].shape == (run.model.seq_len, 32)
    assert sum(v.size for v in saved.values()) * 4 <= run_dir.weights.stat().st_size <= sum(v.size for v in saved.values()) * 4 + 4096


@pytest.mark.parametrize("kind", ["mup-byte", "umup-bpe"])
def test_the_exported_model_gives_scalinglabs_logits(trained, kind, tmp_path):
    run, run_dir = trained[kind]
    assert main(["export", str(run_dir.path), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = held_out_ids(run, run.model.seq_len)
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    ours = scalinglab_logits(run, run_dir, ids)
    assert np.abs(theirs - ours).max() < 1e-4, np.abs(theirs - ours).max()
    text = open_codec(prepare(run.data), run.data.tokenizer).decode(np.array(ids[:40]))
    assert tokenizer(text)["input_ids"] == ids[:40] and tokenizer.decode(ids[:40]) == text
    generated = pipeline("text-generation", model=str(tmp_path / "hf"))("def ", max_new_tokens=5, do_sample=False)
    assert generated[0]["generated_text"].startswith("def ") and len(generated[0]["generated_text"]) > 4


def test_a_masked_lm_run_is_refused_with_one_line(trained, tmp_path, capsys):
    _, run_dir = trained["masked"]
    assert main(["export", str(run_dir.path), "--format", "hf", "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a masked LM" in err and not (tmp_path / "hf").exists()


def test_export_needs_kept_weights_and_an_empty_folder(trained, tmp_path, capsys):
    run, run_dir = trained["mup-byte"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert main(["export", str(run_dir.path), "--format", "hf", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "hf", "--out", str(tmp_path / "hf")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_sample_at_temperature_0_is_the_exported_models_greedy_generate(trained, tmp_path, capsys):
    run, run_dir = trained["mup-byte"]
    assert main(["export", str(run_dir.path), "--out", str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    prompt = "def main():\n    "
    assert main(["sample", str(run_dir.path), "--prompt", prompt, "--max-new-tokens", "12"]) == 0
    ours = capsys.readouterr().out
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tmp_path / "hf"), AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    theirs = model.generate(ids, max_new_tokens=12, do_sample=False, min_new_tokens=12, pad_token_id=0)
    assert ours == tokenizer.decode(theirs[0]) + "\n"


def test_sampling_follows_its_seed_and_refuses_bad_flags(trained, capsys):
    _, run_dir = trained["mup-byte"]
    texts = []
    for seed in (1, 1, 2):
        assert main(["sample", str(run_dir.path), "--prompt", "x = ", "--temperature", "1", "--top-k", "20", "--seed", str(seed),
                     "--max-new-tokens", "16"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2]
    assert main(["sample", str(run_dir.path), "--prompt", "x", "--temperature", "-1"]) == 2
    assert capsys.readouterr().err.startswith("scalinglab: error: --temperature -1: must be at least 0")
