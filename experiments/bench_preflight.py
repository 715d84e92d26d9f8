"""Wall time of the checks that answer before anything trains: `scalinglab plan` refusing a model of
N 1e15 (tests/data/bad_sweeps/N_too_big_for_memory.yaml: by arithmetic, nothing allocated), and
`scalinglab prepare` on a corpus already in the cache (a cache hit: nothing tokenized again).

Each is timed in a fresh process (what a user waits for, imports included) and in this process
after a first call (the command alone), median of --repeats. The corpus is a generated JSONL file
of --mb megabytes, byte tokens, prepared once into a temporary cache first (not timed).
Usage: python experiments/bench_preflight.py [--mb 20] [--repeats 5]
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scalinglab.cli import main as cli

BAD_SWEEP = Path(__file__).parents[1] / "tests" / "data" / "bad_sweeps" / "N_too_big_for_memory.yaml"


def in_process(args: list[str], code: int) -> float:
    """Seconds of one call of the command line in this process; its output swallowed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        got = cli(args)
        seconds = time.perf_counter() - t0
    if got != code:
        sys.exit(f"scalinglab {' '.join(args)}: exit code {got}, expected {code}")
    return seconds


def fresh_process(args: list[str], code: int) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "scalinglab.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != code:
        sys.exit(f"scalinglab {' '.join(args)}: exit code {done.returncode}, expected {code}\n{done.stderr}")
    return seconds


def timings(name: str, args: list[str], code: int, repeats: int) -> None:
    in_process(args, code)  # imports, and the caches a first call fills
    here = statistics.median(in_process(args, code) for _ in range(repeats))
    fresh = statistics.median(fresh_process(args, code) for _ in range(repeats))
    print(f"{name:<34} {here * 1e3:8.1f} ms in process   {fresh:6.2f} s in a fresh process")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=20, help="corpus size in MB (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each (default 5)")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_preflight_"))
    os.environ["SCALINGLAB_CACHE"] = str(root / "cache")  # children inherit it
    try:
        corpus, line = root / "corpus.jsonl", json.dumps({"text": "the quick brown fox jumps over the lazy dog " * 20}) + "\n"
        corpus.write_text(line * int(args.mb * 1e6 / len(line)))
        sweep = root / "s.yaml"
        sweep.write_text(yaml.safe_dump({"name": "bench", "grid": {"N": [1e5], "D": [1e6]},
                                         "data": {"source": "jsonl", "path": str(corpus)}}))
        t0 = time.perf_counter()
        in_process(["prepare", str(sweep)], 0)
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB of JSONL, prepared once in {time.perf_counter() - t0:.1f} s")
        timings("plan refuses N 1e15 (exit 2)", ["plan", str(BAD_SWEEP)], 2, args.repeats)
        timings("prepare, the corpus cached", ["prepare", str(sweep)], 0, args.repeats)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
