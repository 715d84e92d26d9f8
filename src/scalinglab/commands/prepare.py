"""`scalinglab prepare`: tokenize a sweep's corpus once into memory-mapped token files in the
cache, with progress bars; `run` does the same before its jobs, which then only open the files."""

from __future__ import annotations

import contextlib
from functools import partial

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..data.corpus import Corpus, Meter, TokenizerKind, corpus_dir, open_corpus, prepare
from ..sweep.planner import data_config
from ..sweep.read import load


class Bars(Meter):
    """A progress bar a phase: bytes done, MB/s and the time left."""

    def __init__(self, progress: Progress):
        self.progress = progress

    @contextlib.contextmanager
    def phase(self, description: str, total: int):
        task = self.progress.add_task(description, total=total)
        yield partial(self.progress.advance, task)
        self.progress.update(task, completed=total)


def prepare_corpus(data, console: Console) -> tuple[Corpus, bool]:
    """The corpus of a data section (sweep.runspec.DataConfig), tokenized into the cache first
    if it is not there, with progress bars on the console; and whether it was there."""
    folder = corpus_dir(data)
    if folder.exists():  # published whole (build_once): nothing to draw
        return open_corpus(folder), True
    columns = (TextColumn("{task.description:>9}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        prepare(data, Bars(progress))
    return open_corpus(folder), False


def main(args, console: Console) -> int:
    data = data_config(load(args.sweep))
    corpus, cached = prepare_corpus(data, console)
    where = f"{data.source} {data.path}" if data.path else data.source
    tokens = "byte" if data.tokenizer == TokenizerKind.BYTE else f"BPE ({data.vocab_size:,} ids)"
    console.print(f"corpus {where}, {tokens} tokens: {len(corpus.train):,} training, {len(corpus.val):,} held out "
                  f"({'cached' if cached else 'prepared'}: {corpus_dir(data)})")
    return 0
