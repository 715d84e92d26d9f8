"""Two training-step benchmarks in lockstep on the same cores: by default bench_throughput.py
(JAX) against bench_throughput_torch.py (PyTorch eager, from a separate environment). Each shape
is set up in both processes, then their steps alternate (A B, B A, A B, ...), so load from other
processes on the machine hits both alike and neither always goes first. Even so, the same JAX
benchmark on both sides (an A/A run) has given B/A 0.84 for one setup of a shape and 0.99 for the
next: one run's ratio is good to about 15%; compare medians over runs, with A and B swapped.
Between steps each side pauses (--pause): worker threads spin for a while after a step
(PyTorch's OpenMP, XLA's thread pool) and would otherwise take the cores from the other side's
next step. Reported are each side's median tokens/s and MFU (both over A's peak, scalinglab's
measured CPU peak) and the median of the per-round B/A step-time ratios.

B can instead be the JAX benchmark under other settings, e.g. an XLA flag:
    .venv/bin/python experiments/bench_throughput_compare.py \
        --b ".venv/bin/python experiments/bench_throughput.py" --b-env XLA_FLAGS=--xla_cpu_...

or the same benchmark at an earlier commit, the guard to run whenever the model or the step
changes: `--against REV` checks REV out into a git worktree and installs it into a virtual
environment of its own (both kept in $SCALINGLAB_CACHE/bench/<commit>, built once), and B runs
REV's own bench_throughput.py there (pip resolves REV's dependencies when the environment is
made: the same JAX as yours unless a newer one came out since). B/A above 1 means this working
tree is faster than REV; --swap puts REV on side A:
    .venv/bin/python experiments/bench_throughput_compare.py --against f3ef34f --shapes 4x128,4x256,8x512

Usage (from the repository root; PyTorch installed in /tmp/torchvenv, see bench_throughput_torch.py):
    .venv/bin/python experiments/bench_throughput_compare.py --steps 10 [--json] [--shapes 2x64,4x128]
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_harness import DEFAULT_SHAPES

from scalinglab.store.cache import build_once, cache_dir


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", default=f"{sys.executable} experiments/bench_throughput.py", help="command of side A")
    p.add_argument("--b", default="/tmp/torchvenv/bin/python experiments/bench_throughput_torch.py", help="command of side B")
    p.add_argument("--a-env", action="append", default=[], help="NAME=VALUE for side A (repeatable)")
    p.add_argument("--b-env", action="append", default=[], help="NAME=VALUE for side B (repeatable)")
    p.add_argument("--against", metavar="REV", help="B: bench_throughput.py at git commit REV, in its own worktree and environment")
    p.add_argument("--swap", action="store_true", help="swap sides A and B (medians over runs both ways)")
    p.add_argument("--json", action="store_true", help="one JSON object per shape and line")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per shape and side")
    p.add_argument("--pause", type=float, default=0.2, help="seconds between steps, for spinning threads to sleep")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="n_layers x d_model, comma separated")
    return p.parse_args(argv)


class Side:
    """A benchmark process in --serve mode."""

    def __init__(self, command: str, env: list[str], args: argparse.Namespace):
        extra = ["--serve", "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
        env = {**os.environ, **dict(e.split("=", 1) for e in env)}
        self.proc = subprocess.Popen(shlex.split(command) + extra, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"benchmark process {self.proc.args} ended; see its stderr above")
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def against(rev: str) -> str:
    """The command of REV's bench_throughput.py in REV's worktree and environment, each made once
    per commit: the worktree detached at REV, a virtual environment with it installed (editable,
    so REV's kernel sources are used as they are in the tree)."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    home = cache_dir() / "bench" / commit[:12]
    tree, checked_out = home / "tree", home / "tree.done"
    if not checked_out.exists():  # a checkout cut short is made again
        shutil.rmtree(tree, ignore_errors=True)
        git("worktree", "prune")
        git("worktree", "add", "--detach", str(tree), commit)
        checked_out.touch()
    script = tree / "experiments" / "bench_throughput.py"
    if not script.exists():
        raise SystemExit(f"--against {rev}: commit {commit[:12]} has no experiments/bench_throughput.py to run")

    def environment(tmp: Path) -> None:  # bin/python still works once build_once renames tmp
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
        subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(tree)], check=True)

    venv = build_once(home / "venv", environment)
    return f"{venv / 'bin' / 'python'} {script}"


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def compare(a: Side, b: Side, shape: str, steps: int, pause: float) -> dict:
    info_a, info_b = json.loads(a.ask(shape)), json.loads(b.ask(shape))
    times_a, times_b, loads = [], [], []
    for i in range(steps):
        for side, times in ((a, times_a), (b, times_b))[:: 1 if i % 2 == 0 else -1]:  # A B, B A, ...
            times.append(float(side.ask("step")))
            time.sleep(pause)
        loads.append(load_average())
    n_layers, d_model = map(int, shape.split("x"))
    row = {"n_layers": n_layers, "d_model": d_model}
    peak = info_a["peak"] or info_b["peak"]  # scalinglab's measured CPU peak, whichever side it is (--swap)
    for name, info, times in (("a", info_a, times_a), ("b", info_b, times_b)):
        tokens_per_s = info["tokens_per_step"] / statistics.median(times)
        row[f"{name}_tokens_per_s"] = round(tokens_per_s, 1)
        row[f"{name}_mfu"] = round(tokens_per_s * info["flops_per_token"] / peak, 4)
    row["b_over_a_step_time"] = round(statistics.median(tb / ta for ta, tb in zip(times_a, times_b)), 3)
    row["load_avg"] = round(statistics.median(loads), 2)
    return row


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.against:
        args.b = against(args.against)
    if args.swap:
        args.a, args.b, args.a_env, args.b_env = args.b, args.a, args.b_env, args.a_env
    a, b = Side(args.a, args.a_env, args), Side(args.b, args.b_env, args)
    if not args.json:
        print(f"A: {args.a} {' '.join(args.a_env)}\nB: {args.b} {' '.join(args.b_env)}")
        print(f"{'n_layers':>8} {'d_model':>7} {'A tok/s':>9} {'A mfu':>6} {'B tok/s':>9} {'B mfu':>6} {'B/A time':>8} {'load':>5}")
    try:
        for shape in args.shapes.split(","):
            row = compare(a, b, shape, args.steps, args.pause)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{row['n_layers']:>8} {row['d_model']:>7} {row['a_tokens_per_s']:>9,.0f} {row['a_mfu']:>6.3f} "
                    f"{row['b_tokens_per_s']:>9,.0f} {row['b_mfu']:>6.3f} {row['b_over_a_step_time']:>8.3f} {row['load_avg']:>5.2f}",
                    flush=True,
                )
    finally:
        a.close()
        b.close()


if __name__ == "__main__":
    main()
