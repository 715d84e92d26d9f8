"""A finished causal run as a Hugging Face `transformers` GPT-2 folder: config.json,
model.safetensors and tokenizer files that AutoModelForCausalLM / AutoTokenizer load with no custom
code. No JAX and no torch: the run's weights.safetensors is rewritten with numpy.

The architectures are the same (pre-LN blocks, learned positions, tanh GELU, tied embeddings); what
differs is folded into the weights:
- each block matrix's forward multiplier (u-mup's 1/sqrt(fan_in)) and the GELU's output multiplier;
- attention's scale: GPT-2 divides scores by sqrt(d_head), muP by d_head: q is scaled by the ratio;
- the embedding multiplier into wte and wpe; the readout multiplier over it into ln_f (GPT-2's
  lm_head is wte itself);
- u-mup's unit-scaled residual adds, x_{k+1} = (sqrt(k+1) x_k + f(x_k)) / sqrt(k+2): with
  y_k = sqrt(k+1) x_k this is y_{k+1} = y_k + f(y_k / sqrt(k+1)), and f and the readout begin with a
  LayerNorm, which ignores the scale: GPT-2's plain adds on y compute the same (up to LayerNorm's
  epsilon, relative to the stream's variance).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..data.codec import byte_unicode
from ..data.corpus import EOT, TokenizerKind, prepare
from ..errors import InputError
from ..store.files import replacing
from ..store.targets import folder
from ..sweep.runspec import RunSpec
from .finished import finished_run

EPS = 1e-6  # the model's LayerNorm epsilon (flax's default)


def export_hf(path: str | Path, out: Path) -> Path:
    """Writes the GPT-2 folder of the run at path into out (created; must be new or empty): the
    whole folder or nothing."""
    run, run_dir = finished_run(path)
    if not run.model.objective.causal:
        raise InputError(
            f"{run_dir.path}: trained with train.objective {run.model.objective.name} (a masked LM); no "
            "transformers class matches its architecture exactly (BERT's blocks are post-LN): only causal runs export"
        )
    if folder(out, f"--out {out}").is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out}: not empty; give a new folder")
    tensors = gpt2_tensors(run, load_file(str(run_dir.weights)))
    with replacing(out) as tmp:  # written whole or not at all (a rename onto the empty folder)
        tmp.mkdir()
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        eos_id = write_tokenizer(run, tmp)
        (tmp / "config.json").write_text(json.dumps(gpt2_config(run, eos_id), indent=1) + "\n")
    return out


def gpt2_config(run: RunSpec, eos: int) -> dict:
    """eos: the id of the token between documents (NUL for bytes, <|endoftext|> for BPE)."""
    m = run.model
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": m.vocab_size,
        "n_positions": m.seq_len,
        "n_embd": m.d_model,
        "n_layer": m.n_layers,
        "n_head": m.n_heads,
        "n_inner": m.d_ff,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": EPS,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": True,
        "scale_attn_weights": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
        "scalinglab": {"run_id": run.run_id, "N": run.N, "D": run.D, "parametrization": m.parametrization.name},
    }


def gpt2_tensors(run: RunSpec, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The run's named parameters (training/weights.py) as GPT2LMHeadModel's state dict."""
    m = run.model
    r = m.parametrization.rules(m.d_model, m.d_ff, m.n_layers, m.d_head)
    mult = r.hidden_mult
    out = {
        "transformer.wte.weight": r.embed_mult * w["embed.embedding"],
        "transformer.wpe.weight": r.embed_mult * w["pos"],
        "transformer.ln_f.weight": r.readout_mult / r.embed_mult * w["ln_f.scale"],
        "transformer.ln_f.bias": r.readout_mult / r.embed_mult * w["ln_f.bias"],
    }
    q_scale = r.attn_scale * math.sqrt(m.d_head)  # GPT-2 divides by sqrt(d_head) itself
    for i in range(m.n_layers):
        p, qkv = f"transformer.h.{i}.", mult["qkv"] * w["blocks.qkv.kernel"][i]
        qkv[:, : m.d_model] *= q_scale
        out |= {
            p + "ln_1.weight": w["blocks.ln1.scale"][i],
            p + "ln_1.bias": w["blocks.ln1.bias"][i],
            p + "attn.c_attn.weight": qkv,
            p + "attn.c_proj.weight": mult["out"] * w["blocks.out.kernel"][i],
            p + "ln_2.weight": w["blocks.ln2.scale"][i],
            p + "ln_2.bias": w["blocks.ln2.bias"][i],
            p + "mlp.c_fc.weight": mult["up"] * w["blocks.up.kernel"][i],
            p + "mlp.c_proj.weight": mult["down"] * r.gelu_mult * w["blocks.down.kernel"][i],
        }
        for name, width in (("attn.c_attn", 3 * m.d_model), ("attn.c_proj", m.d_model), ("mlp.c_fc", m.d_ff), ("mlp.c_proj", m.d_model)):
            out[p + name + ".bias"] = np.zeros(width, np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def write_tokenizer(run: RunSpec, out: Path) -> int:
    """tokenizer.json and its config for PreTrainedTokenizerFast: the corpus's own BPE, or bytes
    as ids 0-255 (a byte-level BPE without merges; NUL separates documents, as in training).
    Returns the id of the token between documents."""
    if run.data.tokenizer == TokenizerKind.BYTE:
        byte_tokenizer().save(str(out / "tokenizer.json"))
        eos, eos_id = "\x00", 0
    else:
        shutil.copyfile(prepare(run.data) / "tokenizer.json", out / "tokenizer.json")
        vocab = json.loads((out / "tokenizer.json").read_text())
        eos, eos_id = EOT, next(t["id"] for t in vocab["added_tokens"] if t["content"] == EOT)
    settings = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": run.model.seq_len,
        "bos_token": eos,
        "eos_token": eos,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=1) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": eos, "eos_token": eos}) + "\n")
    return eos_id


def byte_tokenizer():
    """A tokenizers.Tokenizer whose ids are the text's UTF-8 bytes, as the byte corpus's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415  (tokenizers only when a model is exported)

    tok = Tokenizer(models.BPE(vocab={c: b for b, c in enumerate(byte_unicode())}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok
