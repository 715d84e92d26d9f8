"""Time and peak memory of `scalinglab prepare` on a generated JSONL corpus larger than 1 GB.

The corpus is built from installed data, no download: each document is 20 to 400 lines drawn at
random from the running Python's standard-library sources (real code and prose, shuffled). Then
`scalinglab prepare` runs in a subprocess, once with BPE (vocab_size 4096) and once with byte
tokens, each into an empty cache, and the script prints its wall time, peak RSS (the child's own
rusage, from os.wait4), MB/s of corpus file and the tokens it wrote.
Usage: python experiments/bench_prepare.py [--gb 1.0] [--dir TMP] [--keep]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import yaml

from scalinglab.data.sources import stdlib_files


def write_corpus(path: Path, size: int, seed: int = 0) -> int:
    """A JSONL file of at least `size` bytes; its number of documents."""
    lines = np.array([line for f in stdlib_files() for line in f.read_text(errors="replace").splitlines()], dtype=object)
    rng, written, docs = np.random.default_rng(seed), 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            rows = [json.dumps({"text": "\n".join(lines[rng.integers(0, len(lines), rng.integers(20, 400))])}) + "\n"
                    for _ in range(1000)]
            written += out.write("".join(rows))
            docs += len(rows)
    return docs


def prepare(sweep: Path, cache: Path) -> tuple[float, float, str]:
    """Runs `scalinglab prepare` in a child: (wall seconds, peak RSS in MiB, its output but the bars)."""
    env = {**os.environ, "SCALINGLAB_CACHE": str(cache)}
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "scalinglab.cli", "prepare", str(sweep)], env=env,
                             stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"scalinglab prepare failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024, "\n".join(line for line in out.splitlines() if "━" not in line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0, help="corpus size in GB (default 1.0)")
    p.add_argument("--dir", help="folder for the corpus and caches (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the folder")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=args.dir))
    try:
        corpus = root / "corpus.jsonl"
        t0 = time.perf_counter()
        docs = write_corpus(corpus, int(args.gb * 1e9))
        size = corpus.stat().st_size
        print(f"corpus: {size / 1e6:,.0f} MB, {docs:,} documents, written in {time.perf_counter() - t0:.0f} s ({corpus})")
        for tokenizer, extra in (("bpe", {"vocab_size": 4096}), ("byte", {})):
            sweep = root / f"{tokenizer}.yaml"
            data = {"source": "jsonl", "path": str(corpus), "tokenizer": tokenizer, **extra}
            sweep.write_text(yaml.safe_dump({"name": "bench", "grid": {"N": [1e5], "D": [1e6]}, "data": data}))
            seconds, rss, last = prepare(sweep, root / f"cache-{tokenizer}")
            print(f"{tokenizer:>4}: {seconds:6.1f} s  {size / 1e6 / seconds:6.1f} MB/s  peak RSS {rss:6.0f} MiB  "
                  f"({rss * 2**20 / size:.1%} of the corpus)")
            print(textwrap.indent(last, "      "))
    finally:
        if not args.keep:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
