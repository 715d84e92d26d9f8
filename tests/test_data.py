"""Corpora: every format, byte and BPE tokens, the held-out split, the cache, and bad data."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import data_config

from scalinglab.data import batches, corpus as data
from scalinglab.errors import SpecError
from scalinglab.sweep.read import parse

WORDS = "the a cat dog sat ran on under mat tree café naïve 日本 über".split()
BPE_VOCAB = 300


def documents(n: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    docs = ["\n".join(" ".join(rng.choice(WORDS, 12)) for _ in range(rng.integers(1, 6))) for _ in range(n)]
    return [*docs[:5], "", *docs[5:]]  # an empty document is still a document


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SCALINGLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- writers: the same documents in every format ------------------------------------------------


def write_text(folder: Path, docs: list[str]) -> Path:
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    return folder


def write_jsonl(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)), encoding="utf-8")
    return path


def write_parquet(path: Path, docs, **columns) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": docs, **columns}), path)
    return path


def write_hf(path: Path, columns: dict, splits: tuple[str, ...] = ()) -> Path:
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_dict(columns)
    # One shard: datasets cannot load an empty dataset saved without one.
    if splits:
        datasets.DatasetDict({s: ds for s in splits}).save_to_disk(str(path), num_shards={s: 1 for s in splits})
    else:
        ds.save_to_disk(str(path), num_shards=1)
    return path


def every_format(tmp_path: Path, docs: list[str]) -> dict[str, Path]:
    return {
        "text": write_text(tmp_path / "docs", docs),
        "jsonl": write_jsonl(tmp_path / "corpus.jsonl", docs),
        "parquet": write_parquet(tmp_path / "corpus.parquet", docs, id=list(range(len(docs)))),
        "hf": write_hf(tmp_path / "hf", {"text": docs, "id": list(range(len(docs)))}),
    }


def load(source, path, tokenizer="bpe", val_fraction=0.1, text_field="text") -> data.Corpus:
    return data.load_corpus(data_config(source, path, tokenizer, BPE_VOCAB, val_fraction, text_field))


def bpe_tokenizer(cache: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(next(cache.rglob("tokenizer.json"))))


# ---- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_every_format_gives_the_same_tokens(tmp_path, tokenizer):
    docs = documents()
    corpora = {source: load(source, path, tokenizer) for source, path in every_format(tmp_path, docs).items()}
    first = corpora["text"]
    for c in corpora.values():
        assert np.array_equal(c.train, first.train) and np.array_equal(c.val, first.val)
        assert (c.vocab_size, c.val_bytes_per_token) == (first.vocab_size, first.val_bytes_per_token)
    stream = np.frombuffer("\0".join(docs).encode(), np.uint8)
    if tokenizer == "byte":  # every 10th block of 256 bytes is held out, documents joined by NUL
        assert first.train.dtype == np.uint8 and first.vocab_size == 256
        assert len(first.train) + len(first.val) == len(stream)
        assert np.array_equal(first.val[:256], stream[9 * 256 : 10 * 256])
    else:
        assert first.train.dtype == np.uint16 and first.vocab_size == BPE_VOCAB
        assert max(first.train.max(), first.val.max()) < BPE_VOCAB
        eot = bpe_tokenizer(tmp_path / "cache").token_to_id(data.EOT)
        assert np.sum(first.train == eot) + np.sum(first.val == eot) == len(docs) - 1


def test_bpe_is_trained_on_the_training_split_only(tmp_path, cache):
    # val_fraction 0.25 on 2,048 bytes: blocks 3 and 7 (of 256 bytes) are held out.
    train_text, val_text = (" the cat sat on the mat" * 12)[:256], (" zebrafish" * 26)[:256]
    blocks = [val_text if i % 4 == 3 else train_text for i in range(8)]
    corpus = load("text", write_text(tmp_path / "docs", ["".join(blocks)]), val_fraction=0.25)
    tok = bpe_tokenizer(cache)
    assert len(tok.encode(" cat").ids) == 1  # training words are merged...
    assert len(tok.encode(" zebrafish").ids) > 2  # ...a word seen only in held-out text is not
    assert corpus.val_bytes_per_token < 1.6


def test_bpe_cuts_between_characters(tmp_path, cache):
    text = "日本語のテキスト" * 300  # 3-byte characters: 256-byte blocks end inside characters
    corpus = load("text", write_text(tmp_path / "docs", [text]), val_fraction=0.25)
    tok = bpe_tokenizer(cache)
    train, val = tok.decode(corpus.train.tolist()), tok.decode(corpus.val.tolist())
    assert "\ufffd" not in train + val
    assert len(train.encode()) + len(val.encode()) == len(text.encode())
    assert corpus.val_bytes_per_token * len(corpus.val) == pytest.approx(len(val.encode()))


def test_val_bytes_per_token(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [d.encode("ascii", "ignore").decode() for d in documents()])
    byte, bpe = load("jsonl", path, "byte"), load("jsonl", path, "bpe")
    assert byte.val_bytes_per_token == 1.0
    assert bpe.val_bytes_per_token > 1.5  # BPE compresses the repetitive text
    # ASCII text is cut at the same bytes either way: same held-out bytes, fewer tokens.
    assert bpe.val_bytes_per_token * len(bpe.val) == pytest.approx(len(byte.val))


def test_stdlib_bytes_and_tokenizer_vocab():
    corpus = data.load_corpus(data_config())
    assert corpus.train.dtype == np.uint8 and len(corpus.train) > 5_000_000 and len(corpus.val) > 250_000
    assert (data.tokenizer_vocab("byte", 4096), data.tokenizer_vocab("bpe", 4096)) == (256, 4096)


def test_U_keeps_the_first_U_training_tokens_and_draws_every_window_from_them():
    whole = data.load_corpus(data_config())
    U, seq_len = 5_000, 32
    capped = data.load_corpus(dataclasses.replace(data_config(), U=U))
    assert np.array_equal(capped.train, whole.train[:U]) and np.array_equal(capped.val, whole.val)  # same held-out tokens
    first = whole.train[:U].tobytes()

    def windows(train):
        return [w.astype(np.uint8).tobytes() for s in range(40) for w in batches.batch(train, seq_len, 16, seed=0, step=s)]

    assert all(w in first for w in windows(capped.train))  # 640 windows, every one from the first U tokens
    assert not all(w in first for w in windows(whole.train))  # uncapped, the same draws reach past them
    with pytest.raises(SpecError, match=rf"^data.U: 99,999,999 tokens, more than the corpus's training split holds \({len(whole.train):,}\)"):
        data.load_corpus(dataclasses.replace(data_config(), U=99_999_999))


# ---- cache ---------------------------------------------------------------------------------------


def test_second_load_reads_the_cache_and_a_changed_file_rebuilds(tmp_path, cache):
    path = write_jsonl(tmp_path / "c.jsonl", documents())
    first = load("jsonl", path)
    files = sorted(p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock")
    mtimes = [p.stat().st_mtime_ns for p in files]
    again = load("jsonl", path)
    assert [p.stat().st_mtime_ns for p in files] == mtimes  # nothing trained or written again
    assert np.array_equal(first.train, again.train) and np.array_equal(first.val, again.val)
    write_jsonl(path, documents(seed=1))
    changed = load("jsonl", path)
    assert len(list(cache.rglob("tokenizer.json"))) == 2
    assert not np.array_equal(changed.train[:100], first.train[:100])


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from scalinglab.data import corpus as data
    from scalinglab.sweep.runspec import DataConfig

    train_bpe = data._train_bpe
    def counted(*args):  # the real training, reported
        print("trained", flush=True)
        return train_bpe(*args)
    data._train_bpe = counted
    folder, corpus = Path(sys.argv[1]), sys.argv[2]
    (folder / f"ready-{sys.argv[3]}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    c = data.load_corpus(DataConfig(source="jsonl", path=corpus, text_field="text", tokenizer="bpe", vocab_size=300, val_fraction=0.1))
    print(c.train.tobytes().hex()[:64], len(c.train), len(c.val))
""")


def test_two_processes_loading_at_once_train_once(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", documents(400))
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(path), str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in procs)
        time.sleep(0.005)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=60)[0].splitlines() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(out.count("trained") for out in outs) == 1
    assert outs[0][-1] == outs[1][-1]


# ---- batches -------------------------------------------------------------------------------------


def test_batches_are_a_pure_function_of_seed_and_step(tmp_path):
    corpus = load("jsonl", write_jsonl(tmp_path / "c.jsonl", documents()))
    b = batches.batch(corpus.train, 16, 4, seed=3, step=7)
    assert b.dtype == np.int32 and b.shape == (4, 17)
    assert np.array_equal(b, batches.batch(corpus.train, 16, 4, seed=3, step=7))
    assert not np.array_equal(b, batches.batch(corpus.train, 16, 4, seed=3, step=8))
    assert not np.array_equal(b, batches.batch(corpus.train, 16, 4, seed=4, step=7))
    for rows in (slice(0, 2), slice(1, 3), slice(3, 4)):  # a process's own rows of the same batch
        assert np.array_equal(batches.batch(corpus.train, 16, 4, seed=3, step=7, rows=rows), b[rows])
    w = batches.val_windows(corpus.val, 16, 64)
    assert w.dtype == np.int32 and np.array_equal(w[0], corpus.val[:17])


# ---- bad data: one SpecError naming the file, the line or row, and the problem --------------------


def _jsonl(lines: list[bytes]):
    def write(tmp):
        (tmp / "corpus.jsonl").write_bytes(b"\n".join(lines))
        return tmp / "corpus.jsonl"

    return write


def _file(name: str, raw: bytes):
    def write(tmp):
        (tmp / "docs").mkdir()
        (tmp / "docs" / name).write_bytes(raw)
        return tmp / "docs"

    return write


OK = b'{"text": "fine", "id": 0}'
BAD_DATA = [
    ("jsonl", _jsonl([OK, OK, b'{"text": "cut']), r"^data.path: \S*corpus.jsonl line 3: not valid JSON \(Unterminated string"),
    ("jsonl", _jsonl([OK, b"[1, 2]"]), r"^data.path: \S*corpus.jsonl line 2: expected a JSON object, got \[1, 2\]$"),
    ("jsonl", _jsonl([OK, OK]), r"^data.text_field: 'body' not in \S*corpus.jsonl line 1 \(keys: text, id\)$"),
    ("jsonl", _jsonl([OK, b'{"text": 42}']), r"^data.text_field: 'text' in \S*corpus.jsonl line 2 is 42, not a string$"),
    ("jsonl", _jsonl([OK, b'{"text": "caf\xe9"}']), r"^data.path: \S*corpus.jsonl line 2: not UTF-8 \(byte 0xe9 at offset 39\)"),
    ("jsonl", _jsonl([b"", b"  "]), r"^data.path: \S*corpus.jsonl has no rows$"),
    ("jsonl", _jsonl([b'{"text": ""}']), r"^data.path: \S*corpus.jsonl is empty$"),
    ("text", _file("a.txt", b"ok\nbad \xff\n"), r"^data.path: \S*a.txt line 2: not UTF-8 \(byte 0xff at offset 7\)"),
    ("text", _file("a.txt", b""), r"^data.path: \S*docs is empty$"),
    ("text", _file("a.bin", b"x"), r"^data.path: \S*docs holds no text files \(.txt, .md, .py, .rst\)$"),
    ("jsonl", lambda tmp: tmp / "gone.jsonl", r"^data.path: \S*gone.jsonl does not exist$"),
    ("parquet", lambda tmp: write_parquet(tmp / "x.parquet", pa_strings([])), r"^data.path: \S*x.parquet has no rows$"),
    ("parquet", lambda tmp: write_parquet(tmp / "x.parquet", ["a"], id=[0]),
     r"^data.text_field: 'body' not in \S*x.parquet \(columns: text, id\)$"),
    ("parquet", lambda tmp: write_parquet(tmp / "x.parquet", [1, 2]), r"^data.text_field: 'text' in \S*x.parquet is int64, not a string$"),
    ("parquet", lambda tmp: write_parquet(tmp / "x.parquet", ["a", None]), r"^data.text_field: 'text' in \S*x.parquet row 1 is null"),
    ("parquet", lambda tmp: write_parquet(tmp / "x.parquet", pa_strings([b"a", b"b\xffc"])),
     r"^data.text_field: 'text' in \S*x.parquet row 1 is not UTF-8 \(byte 0xff at offset 1\)$"),
    ("parquet", _file("x.parquet", b"not parquet"), r"^data.path: \S*x.parquet is not a Parquet file \("),
    ("hf", lambda tmp: write_hf(tmp / "hf", {"body": ["a"]}), r"^data.text_field: 'text' not in \S*hf \(columns: body\)$"),
    ("hf", lambda tmp: write_hf(tmp / "hf", {"text": []}), r"^data.path: \S*hf has no rows$"),
    ("hf", lambda tmp: write_hf(tmp / "hf", {"text": ["a"]}, ("test",)),
     r"^data.path: \S*hf is a DatasetDict without a 'train' split \(splits: test\)$"),
    ("hf", _file("x.txt", b"x"), r"^data.path: \S*docs is not a dataset written by save_to_disk"),
    ("hf", lambda tmp: tmp / "gone", r"^data.path: \S*gone is not a folder"),
    ("hf", lambda tmp: damaged_hf(tmp / "hf"), r"^data.path: \S*hf: datasets.load_from_disk failed \(KeyError: "),
]


def damaged_hf(path: Path) -> Path:
    write_hf(path, {"text": ["a"]})
    (path / "state.json").write_text("{}")
    return path


def pa_strings(values: list[bytes]):
    """A string column that holds exactly these bytes, even when they are not UTF-8."""
    import pyarrow as pa

    return pa.array(values, pa.binary()).view(pa.string())


@pytest.mark.parametrize("source,write,message", BAD_DATA)
def test_bad_data_names_file_and_problem(tmp_path, source, write, message):
    text_field = "body" if "'body'" in message else "text"
    with pytest.raises(SpecError, match=message):
        load(source, write(tmp_path), "byte", text_field=text_field)


BASE = {"name": "s", "grid": {"N": [1e5], "D": [1e6]}}
BAD_SPECS = [
    ({"source": "jsonl"}, r"^data.path: required when data.source is 'jsonl'; give a file or folder$"),
    ({"path": "x.txt"}, r"^data.path: not used with data.source 'stdlib'"),
    ({"source": "csv"}, r"^data.source: Input should be 'stdlib', 'text', 'jsonl', 'parquet' or 'hf'"),
    ({"tokenizer": "wordpiece"}, r"^data.tokenizer: Input should be 'byte' or 'bpe'"),
    ({"text_field": "body"}, r"^data.text_field: not used with data.source 'stdlib', only with 'jsonl', 'parquet' or 'hf'; remove it"),
    ({"vocab_size": 1000}, r"^data.vocab_size: not used with data.tokenizer 'byte', only with 'bpe'; remove it or change data.tokenizer$"),
    ({"tokenizer": "bpe", "vocab_size": 257}, r"^data.vocab_size: 257 is too small; BPE needs at least 258"),
    ({"tokenizer": "bpe", "vocab_sise": 512}, r"^data.vocab_sise: unknown key; did you mean 'vocab_size'\?$"),
]


@pytest.mark.parametrize("section,message", BAD_SPECS)
def test_bad_data_section(section, message):
    with pytest.raises(SpecError, match=message):
        parse({**BASE, "data": section})


def test_data_section_round_trips(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", ["a"])
    for section in ({}, {"source": "jsonl", "path": str(path), "text_field": "body", "tokenizer": "bpe", "vocab_size": 512}):
        spec = parse({**BASE, "data": section})
        assert parse({**BASE, "data": spec.data.model_dump()}).data == spec.data
