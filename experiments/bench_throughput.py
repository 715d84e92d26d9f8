"""Training throughput of the step real runs use (training.steps.make_train_step) for a few model
shapes: tokens/s and MFU (run.flops_per_token, model.counts.flops_per_token's convention, over
training.throughput.cpu_peak(), measured on the cores this process may use).

Each shape is an sp, fp32, causal run on the byte vocabulary (256) with mlp_ratio 4 and
d_head 64 (n_heads = d_model / 64). The step time is the median over --steps timed steps after
compilation and two warm-up steps; the process is set up like a sweep job (launch.setup_job).

Usage (from the repository root):
    .venv/bin/python experiments/bench_throughput.py                 # a table, all cores
    .venv/bin/python experiments/bench_throughput.py --json --shapes 2x64,4x128 --steps 20
    taskset -c 0 .venv/bin/python experiments/bench_throughput.py    # one core
"""

import sys
import time

from bench_harness import D_HEAD, parse_args, report, serve, warmed_up

from scalinglab.launch.job import setup_job


def run_spec(n_layers: int, d_model: int, batch_size: int, seq_len: int, steps: int):
    from scalinglab.sweep import planner, read  # noqa: PLC0415  (after setup_job)

    doc = {
        "name": "bench",
        "model": {"seq_len": seq_len, "mlp_ratio": 4, "d_head": D_HEAD},
        "grid": {"shapes": [{"n_layers": n_layers, "d_model": d_model, "n_heads": d_model // D_HEAD}], "D": [steps * batch_size * seq_len]},
        "train": {"batch_size": batch_size, "precision": "fp32", "objective": "causal"},
    }
    return planner.plan(read.parse(doc))[0]


def make_stepper(run):
    """A function that trains one step of `run` on random bytes and returns its wall time."""
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    from scalinglab.model.transformer import build_model  # noqa: PLC0415
    from scalinglab.training.steps import make_loss_fn, make_train_step  # noqa: PLC0415
    from scalinglab.training.optimizer import build_optimizer  # noqa: PLC0415

    model = build_model(run.model, run.seed)
    graphdef, params = nnx.split(model)
    tx = build_optimizer(run.optim, params, model.r)
    state = [(params, tx.init(params))]
    step = make_train_step(make_loss_fn(run.precision, graphdef), tx)
    L = run.model.seq_len
    windows = np.random.default_rng(0).integers(0, run.model.vocab_size, (run.batch_size, L + 1), dtype=np.int32)
    batch = tuple(jax.device_put(a) for a in (windows[:, :-1], windows[:, 1:], np.ones((run.batch_size, L), np.float32)))

    def one_step() -> float:
        t0 = time.perf_counter()
        state[0], loss = step(state[0], *batch)
        loss.block_until_ready()
        return time.perf_counter() - t0

    return warmed_up(one_step)


def setup(n_layers: int, d_model: int, args):
    run = run_spec(n_layers, d_model, args.batch_size, args.seq_len, args.steps)
    return make_stepper(run), run.flops_per_token


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    setup_job(cores=None)
    from scalinglab.training import throughput  # noqa: PLC0415

    peak = throughput.cpu_peak()
    if args.serve:
        return serve(setup, args, peak)
    if not args.json:
        print(f"peak {peak / 1e9:.1f} GFLOP/s (fp32 matmul, cached per CPU and core count)", file=sys.stderr)
    report(setup, args, peak)


if __name__ == "__main__":
    main()
