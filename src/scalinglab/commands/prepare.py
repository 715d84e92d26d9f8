"""`scalinglab prepare`: tokenize a sweep's corpus once into memory-mapped token files in the
cache, with progress bars; `run` does the same before its jobs, which then only open the files."""

from __future__ import annotations

from rich.console import Console

from ..data.corpus import TokenizerKind, corpus_dir
from ..launch.preflight import prepare_corpus
from ..sweep.planner import data_config
from ..sweep.read import load


def main(args, console: Console) -> int:
    data = data_config(load(args.sweep))
    corpus, cached = prepare_corpus(data, console)
    where = f"{data.source} {data.path}" if data.path else data.source
    tokens = "byte" if data.tokenizer == TokenizerKind.BYTE else f"BPE ({data.vocab_size:,} ids)"
    console.print(
        f"corpus {where}, {tokens} tokens: {len(corpus.train):,} training, {len(corpus.val):,} held out "
        f"({'cached' if cached else 'prepared'}: {corpus_dir(data)})"
    )
    return 0
