"""`scalinglab sample RUN_DIR --prompt TEXT`: text from a trained run's kept weights, in JAX. The
prompt is taken as the bytes the shell gave (any bytes, for the byte tokenizer) and the output is
written as bytes, each token as it is picked. The flags are bounded where they are parsed (cli.py)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from ..data.codec import Codec, open_codec
from ..data.corpus import prepare
from ..errors import UsageError
from ..interop.finished import finished_run


def prompt_ids(prompt: str, codec: Codec) -> list[int]:
    """argv's bytes (os.fsencode undoes Python's surrogate escapes): as they are for bytes, as
    UTF-8 text for a BPE."""
    raw = os.fsencode(prompt)
    if codec.tokenizer is None:
        ids = list(raw)
    else:
        try:
            ids = codec.encode(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise UsageError(f"--prompt: byte {e.start} is not UTF-8 text, which this run's BPE tokenizer reads; give UTF-8 text") from None
    if not ids:
        raise UsageError("--prompt: empty; give the text to continue")
    return ids


def main(args, console: Console) -> int:
    run, run_dir = finished_run(args.run)
    codec = open_codec(prepare(run.data), run.data.tokenizer)
    prompt = prompt_ids(args.prompt, codec)
    from ..training.sampling import load_model, sample  # noqa: PLC0415  (JAX: only here)

    model = load_model(run, run_dir)
    out = sys.stdout.buffer
    out.write(os.fsencode(args.prompt))
    out.flush()
    for i in sample(model, run.model.seq_len, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed):
        out.write(codec.token_bytes(i))
        out.flush()
    out.write(b"\n")
    out.flush()
    return 0
