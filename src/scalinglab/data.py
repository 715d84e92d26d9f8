"""Corpora as byte-level tokens, a fixed held-out split, and deterministic training batches."""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import SpecError

TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst")
_STDLIB_SKIP = {"site-packages", "dist-packages", "test", "tests", "idlelib"}


def stdlib_files() -> list[Path]:
    """The running Python's standard-library sources, without its test suite: ~11 MB, no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(f for f in root.rglob("*.py") if not _STDLIB_SKIP & set(f.relative_to(root).parts))


def text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SpecError(f"data.path: {path} does not exist")
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES)
    if not files:
        raise SpecError(f"data.path: {path} holds no text files ({', '.join(TEXT_SUFFIXES)})")
    return files


def corpus_bytes(source: str, path: str | None) -> np.ndarray:
    """All documents, in sorted path order, as one uint8 token stream (documents joined by NUL)."""
    files = stdlib_files() if source == "stdlib" else text_files(Path(path))
    docs = []
    for f in files:
        raw = f.read_bytes()
        if source == "text":
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SpecError(f"data.path: {f} is not UTF-8 text (byte {e.start}); convert or remove it") from None
        docs.append(raw)
    stream = b"\0".join(docs)
    if not stream.strip(b"\0"):
        raise SpecError(f"data.path: {path} is empty")
    return np.frombuffer(stream, dtype=np.uint8)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray


def split(tokens: np.ndarray, val_fraction: float) -> Split:
    """Every k-th block (k = 1/val_fraction) is held out: fixed, and spread over the whole corpus."""
    block = int(np.clip(len(tokens) // 400, 256, 65_536))
    k = max(2, round(1 / val_fraction))
    n_blocks = -(-len(tokens) // block)
    is_val = (np.arange(n_blocks) % k) == k - 1
    blocks = [tokens[i * block : (i + 1) * block] for i in range(n_blocks)]
    val = [b for b, v in zip(blocks, is_val) if v]
    train = [b for b, v in zip(blocks, is_val) if not v]
    return Split(np.concatenate(train), np.concatenate(val) if val else np.zeros(0, np.uint8))


def val_windows(val: np.ndarray, seq_len: int, val_tokens: int) -> np.ndarray:
    """The first val_tokens held-out tokens as (n, seq_len + 1) windows: inputs and shifted targets."""
    n = max(1, val_tokens // seq_len)
    if len(val) < n * seq_len + 1:
        raise SpecError(
            f"data.val_tokens: {val_tokens} needs {n * seq_len + 1} held-out tokens but the corpus holds out "
            f"{len(val)}; lower data.val_tokens or raise data.val_fraction"
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    return val[idx].astype(np.int32)


def batch(train: np.ndarray, seq_len: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Random windows (batch_size, seq_len + 1) for one step; a pure function of (seed, step)."""
    if len(train) <= seq_len + 1:
        raise SpecError(f"data: {len(train)} training tokens are too few for model.seq_len {seq_len}")
    starts = np.random.default_rng([seed, step]).integers(0, len(train) - seq_len - 1, batch_size)
    return train[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)
