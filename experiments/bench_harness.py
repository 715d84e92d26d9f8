"""What bench_throughput.py (JAX) and bench_throughput_torch.py (PyTorch) share: their command
line, the table or JSON lines they print, and the lockstep mode bench_throughput_compare.py
drives. Standard library only: the PyTorch side runs from an environment without scalinglab.

Each side gives setup(n_layers, d_model, args) -> (one_step, flops_per_token), where one_step()
trains one step on random bytes (already warmed up) and returns its wall time in seconds.
"""

import argparse
import json
import statistics
import sys

DEFAULT_SHAPES = "2x64,4x128,4x256,6x384,8x512"
D_HEAD = 64  # n_heads = d_model / D_HEAD
WARMUP_STEPS = 2  # untimed steps after set-up; the first compiles


def parse_args(description: str, argv=None, peak_flag: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="one JSON object per shape and line")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per shape")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="n_layers x d_model, comma separated")
    if peak_flag:
        p.add_argument("--peak", type=float, help="FLOP/s for MFU; default: scalinglab's cached CPU peak")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # see serve()
    return p.parse_args(argv)


def warmed_up(one_step):
    for _ in range(WARMUP_STEPS):
        one_step()
    return one_step


def serve(setup, args, peak: float | None) -> None:
    """Lockstep mode: a line 'NxD' sets up that shape and answers its tokens and FLOPs per step;
    a line 'step' trains one step and answers its seconds."""
    one_step = None
    for line in sys.stdin:
        if line.strip() == "step":
            print(one_step(), flush=True)
            continue
        n_layers, d_model = map(int, line.split("x"))
        one_step, flops_per_token = setup(n_layers, d_model, args)
        print(json.dumps({"tokens_per_step": args.batch_size * args.seq_len, "flops_per_token": flops_per_token, "peak": peak}), flush=True)


def report(setup, args, peak: float | None) -> None:
    """Per shape: the median step time over args.steps, tokens/s and MFU, as a table or JSON lines."""
    if not args.json:
        print(f"{'n_layers':>8} {'d_model':>7} {'step_s':>7} {'tokens/s':>9} {'mfu':>5}")
    for shape in args.shapes.split(","):
        n_layers, d_model = map(int, shape.split("x"))
        one_step, flops_per_token = setup(n_layers, d_model, args)
        median = statistics.median([one_step() for _ in range(args.steps)])
        tokens_per_s = args.batch_size * args.seq_len / median
        mfu = round(tokens_per_s * flops_per_token / peak, 4) if peak else None
        row = {
            "n_layers": n_layers,
            "d_model": d_model,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "tokens_per_s": round(tokens_per_s, 1),
            "mfu": mfu,
        }
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{n_layers:>8} {d_model:>7} {median:>7.3f} {tokens_per_s:>9,.0f} {mfu or 0:>5.2f}", flush=True)
