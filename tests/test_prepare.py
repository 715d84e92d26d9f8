"""`scalinglab prepare`: streamed token files equal to the in-memory build they replace, the
seeded BPE sample, the command and its cache, and a corpus larger than the memory it may use."""

import json
import os
import resource
import shutil
import subprocess
import sys
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import data_config

from scalinglab.cli import main
from scalinglab.data import corpus as data
from scalinglab.data.sources import stdlib_files

WORDS = "the a cat dog sat ran on under mat tree café naïve 日本 über".split()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SCALINGLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def documents(n: int, seed: int = 0) -> list[str]:
    """Multi-byte characters, an empty document, and one holding a NUL (a document separator to BPE)."""
    rng = np.random.default_rng(seed)
    docs = ["\n".join(" ".join(rng.choice(WORDS, 12)) for _ in range(rng.integers(1, 6))) for _ in range(n)]
    return [*docs[:5], "", "before\0after", *docs[5:]]


def write_jsonl(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


def write_sweep(file: Path, **data_section) -> Path:
    file.write_text(yaml.safe_dump({"name": "s", "grid": {"N": [1e5], "D": [1e6]}, "data": data_section}))
    return file


# ---- the in-memory build of scalinglab 0.1 (CACHE_FORMAT 2), the reference -------------------------


def reference(docs: list[bytes], tokenizer: str, vocab_size: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and val token ids as the whole corpus in memory made them: the stream, every k-th block
    held out (cuts moved past UTF-8 continuation bytes for BPE), BPE trained on every training
    document, each piece's documents joined by <|endoftext|>."""
    stream = b"\0".join(docs)
    n = len(stream)
    block, k = int(np.clip(n // 400, 256, 65_536)), max(2, round(1 / val_fraction))
    spans = [(s, min(s + block, n)) for s in range((k - 1) * block, n, k * block)]
    if tokenizer == "bpe":
        spans = [(char_start(stream, s), char_start(stream, e)) for s, e in spans]
    edges = [0, *chain.from_iterable(spans), n]
    pieces = [stream[a:b] for a, b in zip(edges, edges[1:])]
    train, val = pieces[0::2], pieces[1::2]
    if tokenizer == "byte":
        return np.frombuffer(b"".join(train), np.uint8), np.frombuffer(b"".join(val), np.uint8)
    tok = data._train_bpe((doc for piece in train for doc in piece.decode().split("\0")), vocab_size)
    eot = [tok.token_to_id(data.EOT)]

    def encode(pieces):
        ids = []
        for piece in pieces:
            for i, doc in enumerate(tok.encode_batch_fast(piece.decode().split("\0"), add_special_tokens=False)):
                ids += eot * (i > 0) + doc.ids
        return np.array(ids, np.uint16)

    return encode(train), encode(val)


def char_start(stream: bytes, i: int) -> int:
    while i < len(stream) and stream[i] & 0xC0 == 0x80:
        i += 1
    return i


@pytest.mark.parametrize("tokenizer,val_fraction", [("byte", 0.1), ("byte", 0.3), ("bpe", 0.1), ("bpe", 0.25)])
def test_streamed_tokens_equal_the_in_memory_build(tmp_path, monkeypatch, tokenizer, val_fraction):
    docs = documents(300)
    monkeypatch.setattr(data, "CHUNK", 37)  # documents and pieces span many chunks
    corpus = data.load_corpus(data_config("jsonl", write_jsonl(tmp_path / "c.jsonl", docs), tokenizer, 300, val_fraction))
    train, val = reference([d.encode() for d in docs], tokenizer, 300, val_fraction)
    assert len(val) > 0 and np.array_equal(corpus.train, train) and np.array_equal(corpus.val, val)
    assert isinstance(corpus.train, np.memmap) and corpus.train.dtype == train.dtype


def test_the_built_in_corpus_bytes_are_unchanged():
    """The committed studies trained on these: byte tokens of the stdlib corpus, 5% held out."""
    corpus = data.load_corpus(data_config())
    train, val = reference([f.read_bytes() for f in stdlib_files()], "byte", 256, 0.05)
    assert np.array_equal(corpus.train, train) and np.array_equal(corpus.val, val)


# ---- the BPE sample --------------------------------------------------------------------------------


def test_the_bpe_sample_is_seeded_and_bounded():
    train = [(i * 10_000, i * 10_000 + 9_000) for i in range(100)]  # 900 kB in 100 ranges
    assert data._sample(train, 900_000, 0) == train  # it all fits: all of it, as before
    sample = data._sample(train, 64_000, 0)
    width = 64_000 // data.BPE_SAMPLE_WINDOWS
    assert 64_000 - width < data._size(sample) <= 64_000
    assert sample == sorted(sample) and all(any(a <= s < e <= b for a, b in train) for s, e in sample)
    assert sample == data._sample(train, 64_000, 0) != data._sample(train, 64_000, 1)


def test_bpe_learns_from_the_same_sample_every_time(tmp_path):
    config = data_config("jsonl", write_jsonl(tmp_path / "c.jsonl", documents(2000)), "bpe", 300, 0.1)
    built = {}
    for name, bound in (("a", 20_000), ("b", 20_000), ("all", data.BPE_SAMPLE_BYTES)):
        data._build(config, data.Meter(), tmp_path / name, sample_bytes=bound)
        built[name] = data.open_corpus(tmp_path / name)
    tokenizers = {name: (tmp_path / name / "tokenizer.json").read_text() for name in built}
    assert tokenizers["a"] == tokenizers["b"] != tokenizers["all"]
    assert np.array_equal(built["a"].train, built["b"].train)
    assert not (tmp_path / "a" / "stream.bin").exists()


# ---- the command ----------------------------------------------------------------------------------


def test_prepare_builds_once_then_reads_the_cache(tmp_path, cache, capsys):
    corpus = write_jsonl(tmp_path / "c.jsonl", documents(300))
    sweep = write_sweep(tmp_path / "s.yaml", source="jsonl", path=str(corpus), tokenizer="bpe", vocab_size=300)
    assert main(["prepare", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "tokenize" in out and "MB/s" in out  # the progress bars
    assert f"corpus jsonl {corpus}, BPE (300 ids) tokens: " in " ".join(out.split()) and "prepared" in out
    files = {p.name for p in (cache / "corpora").rglob("*") if p.is_file()}
    assert files >= {"train.bin", "val.bin", "meta.json", "tokenizer.json"}
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*")}
    assert main(["prepare", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "cached" in out and "MB/s" not in out  # no phase of tokenizing began (how long: experiments/bench_preflight.py)
    # Nothing in the cache written or replaced (a rebuilt entry is a new file): not the token files,
    # not the corpus files' digests, no lock.
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*")} == before


def test_bad_data_exits_2_with_one_line_and_writes_nothing(tmp_path, cache, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "cut\n')
    assert main(["prepare", str(write_sweep(tmp_path / "s.yaml", source="jsonl", path=str(corpus)))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scalinglab: error: data.path: {corpus} line 2: not valid JSON") and err.count("\n") == 1
    assert [p.name for p in (cache / "corpora").iterdir() if p.suffix != ".lock"] == []


# ---- a corpus larger than the memory `prepare` may use ---------------------------------------------

CORPUS_BYTES = 320_000_000
MEMORY_LIMIT = 256 << 20  # RLIMIT_DATA: heap and private mappings (imports take ~150 MB of it)


def write_big_corpus(folder: Path, size: int) -> tuple[Path, Path]:
    """A JSONL corpus of random words (1-64 kB documents), and the byte stream it must give."""
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz    ", np.uint8)
    with open(folder / "big.jsonl", "wb") as jsonl, open(folder / "expected.bin", "wb") as stream:
        written, nul = 0, b""
        while written < size:
            text = letters[rng.integers(0, len(letters), 16 << 20)].tobytes()
            cuts = np.cumsum(rng.integers(1 << 10, 1 << 16, 1024))
            for a, b in zip([0, *cuts], cuts[cuts < len(text)]):
                jsonl.write(b'{"text": "' + text[a:b] + b'"}\n')
                written += stream.write(nul + text[a:b])
                nul = b"\0"
    return folder / "big.jsonl", folder / "expected.bin"


@pytest.fixture
def big_corpus(tmp_path):
    """write_big_corpus's files, removed afterwards with the cache and its tokens (pytest keeps tmp_path)."""
    yield write_big_corpus(tmp_path, CORPUS_BYTES)
    shutil.rmtree(tmp_path)


def test_prepare_streams_a_corpus_larger_than_its_memory_limit(tmp_path, big_corpus):
    corpus, expected = big_corpus
    assert corpus.stat().st_size > MEMORY_LIMIT
    sweep = write_sweep(tmp_path / "s.yaml", source="jsonl", path=str(corpus))

    def limit():
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    out = subprocess.run([sys.executable, "-m", "scalinglab.cli", "prepare", str(sweep)], preexec_fn=limit, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    stream = np.memmap(expected, np.uint8, mode="r")
    got = data.load_corpus(data_config("jsonl", corpus))
    assert len(got.train) + len(got.val) == len(stream)
    train, val = data._cut(data._val_spans(len(stream), 0.05), len(stream))
    for tokens, ranges in ((got.train, train), (got.val, val)):
        starts = np.cumsum([0, *(b - a for a, b in ranges)])
        for (a, b), s in zip(ranges, starts):
            assert np.array_equal(tokens[s : s + b - a], stream[a:b])
