"""Where a corpus comes from: its files (the running Python's standard library, text, JSONL,
Parquet, a saved Hugging Face dataset), their documents as UTF-8 bytes, streamed, and a fingerprint
of their content. No JAX; pyarrow and datasets are imported only where needed because they are slow to import."""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

from ..errors import SpecError
from ..store.cache import build_once, cache_dir


class Source(StrEnum):
    """data.source: where the documents come from."""

    STDLIB = "stdlib"
    TEXT = "text"
    JSONL = "jsonl"
    PARQUET = "parquet"
    HF = "hf"


SUFFIXES = {Source.TEXT: (".txt", ".md", ".py", ".rst"), Source.JSONL: (".jsonl",), Source.PARQUET: (".parquet",)}
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idlelib"}
BATCH_ROWS = 1024  # Parquet and hf rows read at a time

Advance = Callable[[int], None]


def _ignore(n: int) -> None:
    pass


def stdlib_files() -> list[Path]:
    """The running Python's standard-library sources, without its test suite: ~11 MB, no download."""
    files = []
    for folder, subfolders, names in os.walk(sysconfig.get_paths()["stdlib"], followlinks=True):
        subfolders[:] = [d for d in subfolders if d not in _STDLIB_SKIP]  # pruned, not walked: fast
        files += [Path(folder, name) for name in names if name.endswith(".py")]
    return sorted(files)


def corpus_files(source: Source, path: str | None) -> list[Path]:
    """The files the corpus is read from, in reading order (for hf: every file of the saved dataset)."""
    if source == Source.STDLIB:
        return stdlib_files()
    assert path is not None  # rules.check: every source but stdlib needs data.path
    root = Path(path)
    if source == Source.HF:
        if not root.is_dir():
            raise SpecError(f"data.path: {root} is not a folder (give one written by datasets' save_to_disk)")
        return sorted(f for f in root.rglob("*") if f.is_file())
    if root.is_file():
        return [root]
    if not root.is_dir():
        what = "is not a regular file or a folder" if root.exists() else "does not exist"
        raise SpecError(f"data.path: {root} {what}")
    suffixes = SUFFIXES[source]
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in suffixes)
    if not files:
        raise SpecError(f"data.path: {root} holds no {source} files ({', '.join(suffixes)})")
    return files


def documents(source: Source, path: str | None, text_field: str, advance: Advance = _ignore) -> Iterator[bytes]:
    """Every document as UTF-8 bytes, in file then line/row order, one at a time: memory holds a
    document (or a batch of rows), never the corpus. advance(k) is called as k more bytes of the
    corpus files are read (roughly, for Parquet and hf: by rows), for a progress bar."""
    if source == Source.HF:
        assert path is not None  # rules.check: every source but stdlib needs data.path
        docs = _hf_documents(Path(path), text_field, advance)
    else:
        read = {Source.JSONL: _jsonl_documents, Source.PARQUET: _parquet_documents}.get(source, _file_document)
        docs = (doc for f in corpus_files(source, path) for doc in read(f, text_field, advance))
    rows = nonempty = 0
    for doc in docs:
        rows, nonempty = rows + 1, nonempty or len(doc) > 0
        yield doc
    if not rows:
        raise SpecError(f"data.path: {path} has no rows")
    if not nonempty:
        raise SpecError(f"data.path: {path or 'stdlib'} is empty")


def files_size(source: Source, path: str | None) -> int:
    """Bytes in the corpus files: what documents() reads, the total of its advance() calls."""
    return sum(f.stat().st_size for f in corpus_files(source, path))


def _check_utf8(raw: bytes, where: Path, line: int = 1, offset: int = 0) -> str:
    """raw decoded; raw starts at `line` and byte `offset` of the file, for the message."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line += raw.count(b"\n", 0, e.start)
        raise SpecError(
            f"data.path: {where} line {line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {offset + e.start}); convert or remove it"
        ) from None


def _file_document(f: Path, text_field: str, advance: Advance) -> Iterator[bytes]:
    raw = f.read_bytes()
    _check_utf8(raw, f)
    advance(len(raw))
    yield raw


def _jsonl_documents(f: Path, text_field: str, advance: Advance) -> Iterator[bytes]:
    offset = 0
    # Lines end at b"\n" only, not where splitlines() would: JSON strings may hold U+2028.
    with open(f, "rb") as lines:
        for n, raw in enumerate(lines, 1):
            line = _check_utf8(raw, f, n, offset)
            offset += len(raw)
            advance(len(raw))
            if line.strip():
                yield _jsonl_text(line, f, n, text_field)


def json_object(line: str, where: str) -> dict:
    """One line of a JSONL file, which must hold a JSON object; `where` names the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise SpecError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); give one JSON object a line") from None
    if not isinstance(row, dict):
        raise SpecError(f"{where}: expected a JSON object, got {json.dumps(row)[:40]}")
    return row


def _jsonl_text(line: str, f: Path, n: int, text_field: str) -> bytes:
    """The text of line n, a JSON object, as UTF-8."""
    row = json_object(line, f"data.path: {f} line {n}")
    if text_field not in row:
        raise SpecError(f"data.text_field: {text_field!r} not in {f} line {n} (keys: {', '.join(row)})")
    text = row[text_field]
    if not isinstance(text, str):
        raise SpecError(f"data.text_field: {text_field!r} in {f} line {n} is {json.dumps(text)[:40]}, not a string")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
        raise SpecError(f"data.text_field: {text_field!r} in {f} line {n} is not valid Unicode (lone surrogate)") from None


def _parquet_documents(f: Path, text_field: str, advance: Advance) -> Iterator[bytes]:
    import pyarrow as pa  # noqa: PLC0415  (pyarrow only for Parquet and JSONL corpora)
    import pyarrow.parquet as pq  # noqa: PLC0415  (pyarrow only for Parquet and JSONL corpora)

    try:
        table = pq.ParquetFile(f)
    except (pa.ArrowException, OSError) as e:
        raise SpecError(f"data.path: {f} is not a Parquet file ({e})") from None
    names = table.schema_arrow.names
    if text_field not in names:
        raise SpecError(f"data.text_field: {text_field!r} not in {f} (columns: {', '.join(names)})")
    batches = (b.column(0) for b in table.iter_batches(batch_size=BATCH_ROWS, columns=[text_field]))
    yield from _batched_documents(batches, f, text_field, table.metadata.num_rows, f.stat().st_size, advance)


def _hf_documents(path: Path, text_field: str, advance: Advance) -> Iterator[bytes]:
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # read from disk only, never the Hub
    import datasets  # noqa: PLC0415  (datasets only for saved HF corpora, after going offline)

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
    batches = (t[text_field] for t in ds.with_format("arrow").iter(batch_size=BATCH_ROWS))
    yield from _batched_documents(batches, path, text_field, ds.num_rows, files_size(Source.HF, str(path)), advance)


def _batched_documents(columns, where: Path, text_field: str, rows: int, size: int, advance: Advance) -> Iterator[bytes]:
    """The documents of consecutive batches of a column; advance() by each batch's share of size."""
    first = 0
    for column in columns:
        yield from _arrow_documents(column, where, text_field, first)
        first += len(column)
        advance(size * len(column) // max(rows, 1))


def _arrow_documents(column, where: Path, text_field: str, first: int) -> Iterator[bytes]:
    """A string (or binary) Arrow column, rows first, first + 1, ..., as UTF-8 documents."""
    import pyarrow as pa  # noqa: PLC0415  (pyarrow only for Parquet and JSONL corpora)

    if len(column) == 0:  # reported as "no rows", whatever type was inferred for no values
        return
    t = column.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        raise SpecError(f"data.text_field: {text_field!r} in {where} is {t}, not a string")
    docs = column.cast(pa.large_binary()).to_pylist()  # bytes: invalid UTF-8 is found below, by row
    for i, doc in enumerate(docs, first):
        if doc is None:
            raise SpecError(f"data.text_field: {text_field!r} in {where} row {i} is null, not a string")
        try:
            doc.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(
                f"data.text_field: {text_field!r} in {where} row {i} is not UTF-8 (byte 0x{doc[e.start]:02x} at offset {e.start})"
            ) from None
        yield doc


def _file_digest(f: Path) -> str:
    """sha256 of a file's bytes, cached by its path, size and mtime (corpora can be large)."""
    st = f.stat()
    stat_key = hashlib.sha256(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]

    def digest(tmp: Path) -> None:
        with open(f, "rb") as src:
            tmp.write_text(hashlib.file_digest(src, "sha256").hexdigest())

    return build_once(cache_dir() / "file_digests" / stat_key, digest).read_text()


def fingerprint(source: Source, path: str | None) -> str | None:
    """The content of the corpus files, as one hash of each file's name (relative to data.path)
    and bytes: the same wherever the corpus lies. None for the built-in corpus, which is named by
    its source alone (its files are the running Python's)."""
    if source == Source.STDLIB:
        return None
    assert path is not None  # rules.check: every source but stdlib needs data.path
    files = corpus_files(source, path)
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    entries = [(str(f.relative_to(root)), _file_digest(f)) for f in files]
    return hashlib.sha256(json.dumps([source, entries]).encode()).hexdigest()[:20]
