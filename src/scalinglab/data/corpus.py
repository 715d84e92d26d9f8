"""A corpus as train/val token ids, memory-mapped from files in the cache: a fixed held-out split
cut from the byte stream before tokenizing, byte-level or BPE tokens (trained with `tokenizers` on
the training split, or on a seeded sample of it when it is large). Built once per corpus content,
streaming: memory holds a chunk of the corpus at a time, never all of it. No JAX.

The cache entry cache_dir()/corpora/<key>/ holds train.bin and val.bin (the token ids, flat, one
file a split), meta.json (dtype, vocab_size, val_bytes_per_token) and, for BPE, tokenizer.json."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from itertools import chain, pairwise
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..store.cache import build_once, cache_dir
from . import sources

CACHE_FORMAT = 3  # bump when cached files would differ for the same inputs (3: flat token files, every corpus)
EOT = "<|endoftext|>"  # BPE separator between documents (NUL plays this part for bytes)
CHUNK = 1 << 20  # bytes read, tokenized and written at a time: what bounds memory, at any corpus size
BPE_SAMPLE_BYTES = 256 << 20  # BPE learns from the whole training split up to this, else from a sample this big
BPE_SAMPLE_WINDOWS = 256  # the sample: this many windows of the training split, drawn at random
BPE_SAMPLE_SEED = 0

Ranges = list[tuple[int, int]]  # [start, end) byte ranges of the stream


class TokenizerKind(StrEnum):
    """data.tokenizer: byte, UTF-8 bytes as ids 0-255; bpe, byte-level BPE learnt from the corpus."""

    BYTE = "byte"
    BPE = "bpe"


@dataclass(frozen=True, eq=False)
class Corpus:
    train: np.ndarray
    """Training token ids, 1-D (uint8 for bytes, uint16 for BPE up to 65,536 ids), memory-mapped."""
    val: np.ndarray
    """Held-out token ids, 1-D: every k-th block of the corpus, cut before tokenizing."""
    vocab_size: int
    val_bytes_per_token: float
    """UTF-8 bytes of held-out text per held-out token: bits/byte = nats/token / ln 2 / this."""


class Meter:
    """How a build reports its progress, phase by phase. This one is silent (inside jobs);
    commands.prepare draws progress bars."""

    @contextlib.contextmanager
    def phase(self, description: str, total: int):
        """A phase of `total` bytes; yields advance(k), called as k more bytes are done."""
        yield lambda k: None


def tokenizer_vocab(tokenizer: TokenizerKind, vocab_size: int) -> int:
    """Number of token ids the tokenizer emits."""
    return 256 if tokenizer == TokenizerKind.BYTE else vocab_size


def load_corpus(data) -> Corpus:
    """The corpus of a run's data section (sweep.runspec.DataConfig), memory-mapped from the
    cache; prepared first (silently) if it is not there yet. Its training split is cut to the
    first data.U tokens where the run sets U (the cache entry is the same at every U)."""
    corpus = open_corpus(prepare(data))
    if data.U is None:
        return corpus
    check_cap("data.U", data.U, len(corpus.train))
    return dataclasses.replace(corpus, train=corpus.train[: data.U])


def check_cap(where: str, U: int, train_tokens: int) -> None:
    """Refuses (SpecError) a cap of U unique tokens beyond the training split's `train_tokens`;
    `where` names the YAML entry that gives it (data.U or grid.U[i])."""
    if train_tokens < U:
        raise SpecError(
            f"{where}: {U:,} tokens, more than the corpus's training split holds ({train_tokens:,}); "
            "give at most that, or null for the whole split"
        )


def corpus_dir(data) -> Path:
    """Where the corpus's token files are, or will be: keyed by the files' content (for the
    built-in corpus, its files' stats). A corpus whose files changed since the sweep was planned
    is refused."""
    content = sources.fingerprint(data.source, data.path)
    if data.content is not None and content != data.content:
        raise SpecError(
            f"data.path: the files of {data.path} changed since the sweep was planned; "
            "run the sweep again (its runs on the old files keep their results)"
        )
    files = sources.corpus_files(data.source, data.path) if content is None else []
    stdlib = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = json.dumps([CACHE_FORMAT, data.source, content or stdlib, data.text_field, data.tokenizer, data.vocab_size, data.val_fraction])
    return cache_dir() / "corpora" / hashlib.sha256(key.encode()).hexdigest()[:20]


def prepare(data, meter: Meter = Meter()) -> Path:
    """corpus_dir(data), tokenized first if absent: once, however many processes ask at once
    (build_once), and whole or not at all (bad data: SpecError, nothing written)."""
    return build_once(corpus_dir(data), partial(_build, data, meter))


def open_corpus(folder: Path) -> Corpus:
    meta = json.loads((folder / "meta.json").read_text())
    dtype = np.dtype(meta.pop("dtype"))
    return Corpus(_tokens(folder / "train.bin", dtype), _tokens(folder / "val.bin", dtype), **meta)


def _tokens(path: Path, dtype: np.dtype) -> np.ndarray:
    """A token file, memory-mapped (np.memmap cannot map an empty file)."""
    return np.memmap(path, dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)


def _build(data, meter: Meter, out: Path, sample_bytes: int = BPE_SAMPLE_BYTES) -> None:
    """Writes out/: first the documents joined by NUL as one byte stream (its length places the
    held-out blocks), then train.bin and val.bin, cut from it and tokenized; the stream goes."""
    out.mkdir()
    stream = out / "stream.bin"
    with meter.phase("read", sources.files_size(data.source, data.path)) as advance:
        n = _write_stream(sources.documents(data.source, data.path, data.text_field, advance), stream)
    with open(stream, "rb") as f:
        if data.tokenizer == TokenizerKind.BYTE:
            meta = _byte_tokens(f, n, data.val_fraction, out, meter)
        else:
            meta = _bpe_tokens(f, n, data, out, meter, sample_bytes)
    stream.unlink()
    (out / "meta.json").write_text(json.dumps(meta))


def _write_stream(docs: Iterator[bytes], path: Path) -> int:
    """Writes the documents joined by NUL; the stream's length."""
    with open(path, "wb", buffering=CHUNK) as f:
        for i, doc in enumerate(docs):
            if i:
                f.write(b"\0")
            f.write(doc)
        return f.tell()


def _val_spans(n: int, val_fraction: float) -> Ranges:
    """Every k-th block (k = 1/val_fraction) of a stream of n bytes is held out: fixed, and spread
    over the whole corpus."""
    block = int(np.clip(n // 400, 256, 65_536))
    k = max(2, round(1 / val_fraction))
    return [(s, min(s + block, n)) for s in range((k - 1) * block, n, k * block)]


def _char_start(f, i: int) -> int:
    """i moved past UTF-8 continuation bytes (at most 3): where the character at or after i starts."""
    f.seek(i)
    head = f.read(3)
    return i + next((j for j, b in enumerate(head) if b & 0xC0 != 0x80), len(head))


def _cut(spans: Ranges, n: int) -> tuple[Ranges, Ranges]:
    """The stream's training ranges and held-out ranges, each in corpus order."""
    edges = [0, *chain.from_iterable(spans), n]
    ranges = list(pairwise(edges))
    return ranges[0::2], ranges[1::2]


def _size(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def _read(f, a: int, b: int) -> Iterator[bytes]:
    """Bytes [a, b) of the stream, CHUNK at a time (the consumer may use f between chunks)."""
    while a < b:
        f.seek(a)
        chunk = f.read(min(CHUNK, b - a))
        a += len(chunk)
        yield chunk


def _doc_lists(f, a: int, b: int) -> Iterator[list[str]]:
    """The NUL-separated documents of bytes [a, b), about CHUNK bytes of them at a time; together
    the lists are stream[a:b].decode().split("\\0"). [a, b) must start and end between characters."""
    pending: list[bytes] = []  # a document begun in an earlier chunk
    for chunk in _read(f, a, b):
        head, nul, tail = chunk.rpartition(b"\0")
        if nul:
            yield b"".join([*pending, head]).decode().split("\0")
            pending = []
        pending.append(tail)
    yield b"".join(pending).decode().split("\0")


def _byte_tokens(f, n: int, val_fraction: float, out: Path, meter: Meter) -> dict:
    train, val = _cut(_val_spans(n, val_fraction), n)
    with meter.phase("split", n) as advance:
        for name, ranges in (("train", train), ("val", val)):
            with open(out / f"{name}.bin", "wb") as dst:
                for a, b in ranges:
                    for chunk in _read(f, a, b):
                        dst.write(chunk)
                        advance(len(chunk))
    return {"dtype": "uint8", "vocab_size": 256, "val_bytes_per_token": 1.0}


def _bpe_tokens(f, n: int, data, out: Path, meter: Meter, sample_bytes: int) -> dict:
    """BPE trained on (a sample of) the training ranges, then every range tokenized; the cuts
    between ranges are moved past UTF-8 continuation bytes."""
    train, val = _cut([(_char_start(f, s), _char_start(f, e)) for s, e in _val_spans(n, data.val_fraction)], n)
    sample = [(_char_start(f, a), _char_start(f, b)) for a, b in _sample(train, sample_bytes, BPE_SAMPLE_SEED)]
    with meter.phase("train BPE", _size(sample)) as advance:
        tok = _train_bpe(_documents(f, sample, advance), data.vocab_size)
    tok.save(str(out / "tokenizer.json"))
    dtype = np.dtype(np.uint16 if data.vocab_size <= 1 << 16 else np.uint32)
    with meter.phase("tokenize", n) as advance:
        _encode(tok, f, train, out / "train.bin", dtype, advance)
        n_val = _encode(tok, f, val, out / "val.bin", dtype, advance)
    return {"dtype": dtype.name, "vocab_size": data.vocab_size, "val_bytes_per_token": _size(val) / n_val if n_val else 1.0}


def _sample(train: Ranges, bound: int, seed: int) -> Ranges:
    """What BPE learns from: all the training ranges when they hold at most `bound` bytes; else
    BPE_SAMPLE_WINDOWS windows of bound / BPE_SAMPLE_WINDOWS bytes drawn at random (seeded), at
    most `bound` bytes in all, in corpus order."""
    if _size(train) <= bound:
        return train
    width = max(1, bound // BPE_SAMPLE_WINDOWS)
    windows = [(s, min(s + width, b)) for a, b in train for s in range(a, b, width)]
    order = np.random.default_rng(seed).permutation(len(windows))
    total = np.cumsum([windows[i][1] - windows[i][0] for i in order])
    return [windows[i] for i in sorted(order[: np.searchsorted(total, bound, side="right")])]


def _documents(f, ranges: Ranges, advance) -> Iterator[str]:
    for a, b in ranges:
        for docs in _doc_lists(f, a, b):
            yield from docs
        advance(b - a)


def _train_bpe(texts, vocab_size: int):
    """Byte-level BPE (GPT-2 pre-tokenization) over 256 byte symbols, <|endoftext|> and merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415  (tokenizers only when a BPE is trained)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.encode_special_tokens = True  # a literal "<|endoftext|>" inside a document is plain text
    return tok


def _encode(tok, f, ranges: Ranges, path: Path, dtype: np.dtype, advance) -> int:
    """Writes the token ids of the ranges to path, a chunk at a time; the documents of a range are
    joined by <|endoftext|> (not across a cut: a held-out block may start mid-document). The
    number of ids written."""
    eot, count = [tok.token_to_id(EOT)], 0
    with open(path, "wb") as dst:
        for a, b in ranges:
            for i, docs in enumerate(_doc_lists(f, a, b)):
                ids = []
                for j, doc in enumerate(tok.encode_batch_fast(docs, add_special_tokens=False)):
                    ids += eot * (i + j > 0) + doc.ids
                np.array(ids, dtype).tofile(dst)
                count += len(ids)
            advance(b - a)
    return count
