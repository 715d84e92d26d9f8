"""Kept weights and the Hugging Face export: a finished run keeps its parameters; `scalinglab
export --format hf` writes a GPT-2 folder that transformers (with torch, on the CPU) loads with no
custom code, whose logits equal scalinglab's within 1e-4 for sp/muP and u-muP, byte and BPE; a
masked-LM run is refused with one line."""


import json
import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import tiny_runs
from flax import nnx
from safetensors.numpy import load_file, save_file
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
    assert "argument --temperature: -1: give a finite number at least 0" in capsys.readouterr().err


def _damage_spec(path, text: str) -> None:
    path.write_text(text)


def _edit_spec(path, key: str, value) -> None:
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {key: value}))


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _reshape(path) -> None:
    """Weights of another model: the same names, one of another shape (a wider position table)."""
    weights = load_file(str(path))
    save_file(weights | {"pos": np.zeros((weights["pos"].shape[0], 48), np.float32)}, str(path))


def _drop(path) -> None:
    weights = load_file(str(path))
    save_file({k: v for k, v in weights.items() if k != "ln_f.bias"}, str(path))


DAMAGE = {  # what is damaged, the file damaged, the words the line says
    "run.json not JSON": ("run.json", lambda p: _damage_spec(p, "{"), "run.json: damaged"),
    "run.json a list": ("run.json", lambda p: _damage_spec(p, "[]"), "run.json: damaged"),
    "run.json d_model a string": ("run.json", lambda p: _edit_spec(p, "d_model", "wide"), "run.json: damaged"),
    "run.json unknown parametrization": ("run.json", lambda p: _edit_spec(p, "parametrization", "nope"), "run.json: damaged"),
    "run.json a folder": ("run.json", lambda p: (p.unlink(), p.mkdir()), "run.json: damaged"),
    "weights truncated": ("weights.safetensors", _truncate, "weights.safetensors: damaged"),
    "weights empty": ("weights.safetensors", lambda p: p.write_bytes(b""), "weights.safetensors: damaged"),
    "weights of another shape": ("weights.safetensors", _reshape, "pos should be F32 (32, 32), found F32 (32, 48)"),
    "weights missing a tensor": ("weights.safetensors", _drop, "ln_f.bias should be F32 (32,), found nothing"),
    "weights a FIFO": ("weights.safetensors", lambda p: (p.unlink(), os.mkfifo(p)), "not a regular file"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_run_is_one_line_for_export_and_sample(trained, damage, tmp_path, capsys):
    name, apply, words = DAMAGE[damage]
    run_dir = shutil.copytree(trained["mup-byte"][1].path, tmp_path / "run")
    apply(run_dir / name)
    for argv in (["export", str(run_dir), "--out", str(tmp_path / "hf")], ["sample", str(run_dir), "--prompt", "x"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_export_onto_or_under_a_file_is_one_line_and_the_file_kept(trained, where, tmp_path, capsys):
    _, run_dir = trained["mup-byte"]
    (tmp_path / "f").write_text("mine")
    out = tmp_path / "f" if where == "a file" else tmp_path / "f" / "hf"
    assert main(["export", str(run_dir.path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}: {tmp_path / 'f'} is not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and (tmp_path / "f").read_text() == "mine"


def test_a_prompt_of_any_bytes_is_taken_as_bytes_and_refused_by_a_bpe(trained, capsysbinary):
    """A shell passes bytes: the byte run continues them as they are; a BPE reads text and says so."""
    prompt = os.fsdecode(b"caf\xe9 \xff")  # Latin-1, not UTF-8: as Python hands argv over
    assert main(["sample", str(trained["mup-byte"][1].path), "--prompt", prompt, "--max-new-tokens", "5"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"caf\xe9 \xff") and len(out) == len(b"caf\xe9 \xff") + 5 + 1
    assert main(["sample", str(trained["umup-bpe"][1].path), "--prompt", prompt]) == 2
    out, err = capsysbinary.readouterr()
    assert out == b"" and err == b"scalinglab: error: --prompt: byte 3 is not UTF-8 text, which this run's BPE tokenizer reads; give UTF-8 text\n"


def test_sample_streams_each_token_as_it_is_picked(trained):
    """The first bytes arrive while the rest are still being made: read them, then stop the command."""
    _, run_dir = trained["mup-byte"]
    cmd = [sys.executable, "-m", "scalinglab.cli", "sample", str(run_dir.path), "--prompt", "def ", "--max-new-tokens", "100000"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        first = proc.stdout.read(len("def ") + 3)
        proc.kill()
    assert first.startswith(b"def ") and len(first) == 7
