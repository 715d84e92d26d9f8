"""A corpus as train/val token ids: a fixed held-out split cut from the byte stream before
tokenizing, byte-level or BPE tokens (trained on the training split with `tokenizers`), and an
on-disk cache of tokenized corpora keyed by the files' content. No JAX."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..store.cache import build_once, cache_dir
from . import sources

CACHE_FORMAT = 2  # bump when cached files would differ for the same inputs (2: keyed by content)
EOT = "<|endoftext|>"  # BPE separator between documents (NUL plays this part for bytes)


@dataclass(frozen=True, eq=False)
class Corpus:
    train: np.ndarray
    """Training token ids, 1-D (uint8 for bytes, uint16 for BPE up to 65,536 ids)."""
    val: np.ndarray
    """Held-out token ids, 1-D: every k-th block of the corpus, cut before tokenizing."""
    vocab_size: int
    val_bytes_per_token: float
    """UTF-8 bytes of held-out text per held-out token: bits/byte = nats/token / ln 2 / this."""


def tokenizer_vocab(tokenizer: str, vocab_size: int) -> int:
    """Number of token ids the tokenizer emits."""
    return 256 if tokenizer == "byte" else vocab_size


def load_corpus(data) -> Corpus:
    """The corpus of a run's data section (sweep.runspec.DataConfig) as train/val token ids.
    Everything but byte-level stdlib/text (fast to redo) is cached under the cache folder, keyed
    by the files' content; a corpus whose files changed since the sweep was planned is refused."""
    content = sources.fingerprint(data.source, data.path)
    if data.content is not None and content != data.content:
        raise SpecError(f"data.path: the files of {data.path} changed since the sweep was planned; "
                        "run the sweep again (its runs on the old files keep their results)")
    build = partial(_build, data)
    if data.tokenizer == "byte" and data.source in ("stdlib", "text"):
        return build(None)
    files = sources.corpus_files(data.source, data.path) if content is None else []
    stdlib = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]  # the built-in corpus: its files' stats
    key = json.dumps([CACHE_FORMAT, data.source, content or stdlib, data.text_field, data.vocab_size, data.val_fraction])
    return _cached(hashlib.sha256(key.encode()).hexdigest()[:20], build)


def _val_spans(stream: bytes, val_fraction: float, char_aligned: bool) -> list[tuple[int, int]]:
    """Every k-th block (k = 1/val_fraction) of the byte stream is held out: fixed, and spread over
    the whole corpus. char_aligned moves each cut past UTF-8 continuation bytes."""
    n = len(stream)
    block = int(np.clip(n // 400, 256, 65_536))
    k = max(2, round(1 / val_fraction))
    spans = [(s, min(s + block, n)) for s in range((k - 1) * block, n, k * block)]
    if char_aligned:
        spans = [(_char_start(stream, s), _char_start(stream, e)) for s, e in spans]
    return spans


def _char_start(stream: bytes, i: int) -> int:
    while i < len(stream) and stream[i] & 0xC0 == 0x80:
        i += 1
    return i


def _cut(stream: bytes, spans: list[tuple[int, int]]) -> tuple[list[bytes], list[bytes]]:
    """The stream's train pieces and held-out pieces, each in corpus order."""
    edges = [0, *chain.from_iterable(spans), len(stream)]
    pieces = [stream[a:b] for a, b in zip(edges, edges[1:])]
    return pieces[0::2], pieces[1::2]


def _build(data, out: Path | None) -> Corpus:
    """Reads, splits and tokenizes the corpus; a BPE tokenizer is saved to out/tokenizer.json."""
    stream = b"\0".join(sources.documents(data.source, data.path, data.text_field))
    if data.tokenizer == "byte":
        return _byte_split(stream, data.val_fraction)
    vocab_size = data.vocab_size
    train, val = _cut(stream, _val_spans(stream, data.val_fraction, char_aligned=True))
    val_bytes = sum(map(len, val))
    train, val = [p.decode() for p in train], [p.decode() for p in val]
    tok = _train_bpe((doc for piece in train for doc in piece.split("\0")), vocab_size)
    tok.save(str(out / "tokenizer.json"))
    dtype = np.uint16 if vocab_size <= 1 << 16 else np.uint32
    val_ids = _encode(tok, val, dtype)
    return Corpus(_encode(tok, train, dtype), val_ids, vocab_size, val_bytes / len(val_ids) if len(val_ids) else 1.0)


def _byte_split(stream: bytes, val_fraction: float) -> Corpus:
    train, val = _cut(stream, _val_spans(stream, val_fraction, char_aligned=False))
    return Corpus(np.frombuffer(b"".join(train), np.uint8), np.frombuffer(b"".join(val), np.uint8), 256, 1.0)


def _train_bpe(texts, vocab_size: int):
    """Byte-level BPE (GPT-2 pre-tokenization) over 256 byte symbols, <|endoftext|> and merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415

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


def _encode(tok, pieces: list[str], dtype) -> np.ndarray:
    """Token ids of the pieces, concatenated; NUL-separated documents are joined by <|endoftext|>."""
    eot, ids = [tok.token_to_id(EOT)], []
    for piece in pieces:
        for i, doc in enumerate(tok.encode_batch_fast(piece.split("\0"), add_special_tokens=False)):
            ids += eot * (i > 0) + doc.ids
    return np.array(ids, dtype)


def _cached(key: str, build: Callable[[Path], Corpus]) -> Corpus:
    """Loads cache_dir()/corpora/key, building it first if absent (build_once)."""

    def write(tmp: Path) -> None:
        tmp.mkdir()
        corpus = build(tmp)
        np.save(tmp / "train.npy", corpus.train)
        np.save(tmp / "val.npy", corpus.val)
        meta = {"vocab_size": corpus.vocab_size, "val_bytes_per_token": corpus.val_bytes_per_token}
        (tmp / "meta.json").write_text(json.dumps(meta))

    done = build_once(cache_dir() / "corpora" / key, write)
    meta = json.loads((done / "meta.json").read_text())
    return Corpus(np.load(done / "train.npy", mmap_mode="r"), np.load(done / "val.npy", mmap_mode="r"), **meta)
