"""Corpora (stdlib, text, JSONL, Parquet, Hugging Face datasets) as byte or BPE tokens, a fixed
held-out split, an on-disk cache of tokenized corpora, and deterministic training batches.

Imports no JAX (analysis code imports this module); pyarrow, datasets and tokenizers are imported
only where needed because they are slow to import.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np

from .spec import SpecError

CACHE_FORMAT = 1  # bump when cached files would differ for the same inputs
EOT = "<|endoftext|>"  # BPE separator between documents (NUL plays this part for bytes)
SUFFIXES = {"text": (".txt", ".md", ".py", ".rst"), "jsonl": (".jsonl",), "parquet": (".parquet",)}
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idlelib"}


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


def cache_dir() -> Path:
    return Path(os.environ.get("SCALINGLAB_CACHE") or Path.home() / ".cache" / "scalinglab")


def build_once(done: Path, build: Callable[[Path], None]) -> Path:
    """`done`, a file or folder in the cache, built first if absent: build(tmp) writes tmp, then tmp
    is renamed to done, so the entry is complete or absent. Concurrent callers (parallel jobs) take a
    file lock: one builds, the rest wait and then use its result."""
    if not done.exists():
        done.parent.mkdir(parents=True, exist_ok=True)
        with open(done.with_name(f"{done.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            if not done.exists():
                tmp = done.with_name(f"{done.name}.tmp")
                if tmp.is_dir():  # left by a builder that died
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink(missing_ok=True)
                build(tmp)
                tmp.rename(done)
    return done


def load_corpus(
    source: str, path: str | None, text_field: str, tokenizer: str, vocab_size: int, val_fraction: float
) -> Corpus:
    """The corpus as train/val token ids. Everything but byte-level stdlib/text (fast to redo) is
    cached under cache_dir(), keyed by the inputs and each file's size and mtime."""
    files = corpus_files(source, path)
    build = partial(_build, source, path, files, text_field, tokenizer, vocab_size, val_fraction)
    if tokenizer == "byte" and source in ("stdlib", "text"):
        return build(None)
    key = _cache_key(source, path, files, text_field, tokenizer_vocab(tokenizer, vocab_size), val_fraction)
    return _cached(key, build)


# ---- files and documents ----------------------------------------------------------------------


def stdlib_files() -> list[Path]:
    """The running Python's standard-library sources, without its test suite: ~11 MB, no download."""
    files = []
    for folder, subfolders, names in os.walk(sysconfig.get_paths()["stdlib"], followlinks=True):
        subfolders[:] = [d for d in subfolders if d not in _STDLIB_SKIP]  # pruned, not walked: fast
        files += [Path(folder, name) for name in names if name.endswith(".py")]
    return sorted(files)


def corpus_files(source: str, path: str | None) -> list[Path]:
    """The files the corpus is read from, in reading order (for hf: every file of the saved dataset)."""
    if source == "stdlib":
        return stdlib_files()
    root = Path(path)
    if source == "hf":
        if not root.is_dir():
            raise SpecError(f"data.path: {root} is not a folder (give one written by datasets' save_to_disk)")
        return sorted(f for f in root.rglob("*") if f.is_file())
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SpecError(f"data.path: {root} does not exist")
    suffixes = SUFFIXES[source]
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in suffixes)
    if not files:
        raise SpecError(f"data.path: {root} holds no {source} files ({', '.join(suffixes)})")
    return files


def _documents(source: str, path: str | None, files: list[Path], text_field: str) -> list[bytes]:
    """Every document as UTF-8 bytes, in file then line/row order."""
    if source == "hf":
        docs = _hf_documents(Path(path), text_field)
    else:
        read = {"jsonl": _jsonl_documents, "parquet": _parquet_documents}.get(source, _file_document)
        docs = [doc for f in files for doc in read(f, text_field)]
    if not docs:
        raise SpecError(f"data.path: {path} has no rows")
    if not any(docs):
        raise SpecError(f"data.path: {path or 'stdlib'} is empty")
    return docs


def _check_utf8(raw: bytes, where: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise SpecError(
            f"data.path: {where} line {line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); convert or remove it"
        ) from None


def _file_document(f: Path, text_field: str) -> list[bytes]:
    raw = f.read_bytes()
    _check_utf8(raw, f)
    return [raw]


def _jsonl_documents(f: Path, text_field: str) -> list[bytes]:
    docs = []
    # Not splitlines(): JSON strings may hold U+2028 and other characters it splits on.
    for n, line in enumerate(_check_utf8(f.read_bytes(), f).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpecError(f"data.path: {f} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise SpecError(f"data.path: {f} line {n}: expected a JSON object, got {json.dumps(row)[:40]}")
        if text_field not in row:
            raise SpecError(f"data.text_field: {text_field!r} not in {f} line {n} (keys: {', '.join(row)})")
        text = row[text_field]
        if not isinstance(text, str):
            raise SpecError(f"data.text_field: {text_field!r} in {f} line {n} is {json.dumps(text)[:40]}, not a string")
        try:
            docs.append(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            raise SpecError(f"data.text_field: {text_field!r} in {f} line {n} is not valid Unicode (lone surrogate)") from None
    return docs


def _parquet_documents(f: Path, text_field: str) -> list[bytes]:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        table = pq.ParquetFile(f)
    except (pa.ArrowException, OSError) as e:
        raise SpecError(f"data.path: {f} is not a Parquet file ({e})") from None
    names = table.schema_arrow.names
    if text_field not in names:
        raise SpecError(f"data.text_field: {text_field!r} not in {f} (columns: {', '.join(names)})")
    return _arrow_documents(table.read(columns=[text_field]).column(0), f, text_field)


def _hf_documents(path: Path, text_field: str) -> list[bytes]:
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # read from disk only, never the Hub
    import datasets  # noqa: PLC0415

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise SpecError(f"data.path: {path} is not a dataset written by save_to_disk ({e})") from None
    except Exception as e:  # a damaged dataset folder: whatever datasets raises, name the folder
        raise SpecError(f"data.path: {path}: datasets.load_from_disk failed ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise SpecError(f"data.path: {path} is a DatasetDict without a 'train' split (splits: {', '.join(ds)})")
        ds = ds["train"]
    if text_field not in ds.column_names:
        raise SpecError(f"data.text_field: {text_field!r} not in {path} (columns: {', '.join(ds.column_names)})")
    return _arrow_documents(ds.with_format("arrow")[text_field], path, text_field)


def _arrow_documents(column, where: Path, text_field: str) -> list[bytes]:
    """A string (or binary) Arrow column as UTF-8 documents; rows are numbered from 0."""
    import pyarrow as pa  # noqa: PLC0415

    if len(column) == 0:  # reported as "no rows", whatever type was inferred for no values
        return []
    t = column.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        raise SpecError(f"data.text_field: {text_field!r} in {where} is {t}, not a string")
    docs = column.cast(pa.large_binary()).to_pylist()  # bytes: invalid UTF-8 is found below, by row
    for i, doc in enumerate(docs):
        if doc is None:
            raise SpecError(f"data.text_field: {text_field!r} in {where} row {i} is null, not a string")
        try:
            doc.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(
                f"data.text_field: {text_field!r} in {where} row {i} is not UTF-8 (byte 0x{doc[e.start]:02x} at offset {e.start})"
            ) from None
    return docs


# ---- held-out split and tokenizing ----------------------------------------------------------


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


def _build(source, path, files, text_field, tokenizer, vocab_size, val_fraction, out: Path | None) -> Corpus:
    stream = b"\0".join(_documents(source, path, files, text_field))
    if tokenizer == "byte":
        return _byte_split(stream, val_fraction)
    train, val = _cut(stream, _val_spans(stream, val_fraction, char_aligned=True))
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


# ---- cache ---------------------------------------------------------------------------------------


def _cache_key(source, path, files, text_field, vocab_size, val_fraction) -> str:
    stats = [(str(f.resolve()), st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]]
    root = str(Path(path).resolve()) if path else None
    blob = json.dumps([CACHE_FORMAT, source, root, stats, text_field, vocab_size, val_fraction])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


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


# ---- windows and batches -------------------------------------------------------------------------


def val_windows(val: np.ndarray, seq_len: int, val_tokens: int) -> np.ndarray:
    """The first val_tokens held-out tokens as (n, seq_len + 1) windows: inputs and shifted targets."""
    n = max(1, val_tokens // seq_len)
    if len(val) < n * seq_len + 1:
        raise SpecError(
            f"data.val_tokens: {val_tokens} needs {n * seq_len + 1} held-out tokens but the corpus holds out "
            f"{len(val)}; lower data.val_tokens or raise data.val_fraction"
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    return np.asarray(val[idx], dtype=np.int32)


def batch(train: np.ndarray, seq_len: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Random windows (batch_size, seq_len + 1) for one step; a pure function of (seed, step)."""
    if len(train) <= seq_len + 1:
        raise SpecError(f"data: {len(train)} training tokens are too few for model.seq_len {seq_len}")
    starts = np.random.default_rng([seed, step]).integers(0, len(train) - seq_len - 1, batch_size)
    return np.asarray(train[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)
