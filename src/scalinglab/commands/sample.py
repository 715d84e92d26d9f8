"""`scalinglab sample RUN_DIR --prompt TEXT`: text from a trained run's kept weights, in JAX."""

from __future__ import annotations

from rich.console import Console

from ..data.codec import open_codec
from ..data.corpus import prepare
from ..errors import UsageError
from ..interop.finished import finished_run


def main(args, console: Console) -> int:
    for flag, value, least in (
        ("--max-new-tokens", args.max_new_tokens, 1),
        ("--temperature", args.temperature, 0),
        ("--top-k", args.top_k, 1),
    ):
        if value is not None and value < least:
            raise UsageError(f"{flag} {value:g}: must be at least {least}")
    run, run_dir = finished_run(args.run)
    codec = open_codec(prepare(run.data), run.data.tokenizer)
    prompt = codec.encode(args.prompt)
    if not prompt:
        raise UsageError("--prompt: empty; give the text to continue")
    from ..training.sampling import load_model, sample  # noqa: PLC0415  (JAX: only here)

    ids = sample(load_model(run, run_dir), run.model.seq_len, prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + codec.decode(ids))
    return 0
