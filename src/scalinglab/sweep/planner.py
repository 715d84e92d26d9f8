"""SweepSpec -> list[RunSpec]: the N x D grid (or IsoFLOP budgets, or listed (N, D) points), its lr,
batch size and U axes, seeds and cooldown branches.
A pure function of the sweep (and of the corpus files' content, which names a corpus in run ids;
and of whether this is a TPU VM where train.precision is unset)."""

from __future__ import annotations

import dataclasses
import itertools
import os

from ..choices import pick
from ..data.corpus import tokenizer_vocab
from ..data.objectives import OBJECTIVES
from ..data.sources import fingerprint
from ..errors import SpecError
from ..model.counts import count_N_total, flops_per_token
from ..model.kernels import Precision
from ..model.parametrization import PARAMETRIZATIONS
from ..store.runs import Role
from ..training.schedules import SCHEDULES
from .counts import Shape, point_shape, shapes
from .evalspec import run_fields
from .runspec import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunSpec
from .spec import SweepSpec
from .types import MAX_COUNT

MIN_STEPS = 10  # a grid point with fewer optimizer steps says nothing about its (N, D)

# Effective training rate of one single-threaded CPU job, in FLOP/s of the convention above. It
# rises with the model's FLOPs per token f, as fixed costs per step matter less:
# CPU_JOB_FLOPS * f / (f + CPU_HALF_RATE_FLOPS_PER_TOKEN), fitted to the runs of results/cpu-study
# (12k to 1.5M parameters, within 10%) on a 2-core AVX2 machine. JOB_OVERHEAD_S: a job's fixed
# cost (interpreter, JAX import, compilation, data load). Only used for the wall-time estimate.
CPU_JOB_FLOPS = 30e9
CPU_HALF_RATE_FLOPS_PER_TOKEN = 2.7e5
JOB_OVERHEAD_S = 10.0


def data_config(spec: SweepSpec) -> DataConfig:
    d = spec.data
    path = os.path.abspath(d.path) if d.path else None
    return pick(DataConfig, d, path=path, content=fingerprint(d.source, path), vocab_size=tokenizer_vocab(d.tokenizer, d.vocab_size))


def _warmup(spec: SweepSpec, steps: int) -> int:
    t = spec.train
    return t.warmup_steps if t.warmup_steps is not None else round(t.warmup_fraction * steps)


def _eval_steps(first: int, last: int, n: int) -> tuple[int, ...]:
    """n evaluations evenly spaced over steps (first, last], the last at `last`; every step when
    n is more than the steps (so the loop is no longer than the run)."""
    n = min(n, max(1, last - first))
    return tuple(sorted({max(first + 1, first + round((last - first) * (i + 1) / n)) for i in range(n)}))


def _run(spec: SweepSpec, shape: Shape, data: DataConfig, steps: int, seed: int, warmup: int, **fields) -> RunSpec:
    """The run of one shape trained `steps` steps; `fields` override the plain grid point's
    (role, trunk_id, branch_steps, eval_steps, decay_start, trunk_task_steps for cooldown branches)."""
    t, m = spec.train, spec.model
    objective = pick(OBJECTIVES[t.objective], t)
    vocab = objective.model_vocab(data.vocab_size)
    parametrization = pick(PARAMETRIZATIONS[m.parametrization], m)
    model = pick(ModelConfig, shape, m, vocab_size=vocab, parametrization=parametrization, objective=objective)
    decay_start = fields.pop("decay_start", steps - round(t.cooldown_fraction * steps))
    schedule = pick(SCHEDULES[t.schedule], t, steps=steps, warmup_steps=warmup, decay_start=decay_start)
    eval_steps = fields.pop("eval_steps", _eval_steps(0, steps, t.n_evals))
    tasks = run_fields(spec.eval, eval_steps, fields.pop("trunk_task_steps", None))
    evals = pick(EvalConfig, spec.data, spec.eval, steps=eval_steps, **tasks)
    fpt = flops_per_token(shape.N, shape.n_layers, shape.d_model, m.seq_len, vocab)
    D = steps * t.batch_size * m.seq_len
    return pick(
        RunSpec, t, model=model, optim=pick(OptimConfig, t, schedule=schedule), data=data, eval=evals, seed=seed,
        N=shape.N, N_total=count_N_total(shape.N, shape.d_model, m.seq_len, vocab), D=D, flops_per_token=fpt,
        C=float(fpt * D), tracking=spec.launch.tracking, **{"role": Role.RUN, "trunk_id": None, "branch_steps": (), **fields},
    )  # fmt: skip


def _steps(spec: SweepSpec, shape: Shape, fpt: int) -> list[int]:
    """Optimizer steps of each data size of one shape; a point with fewer than MIN_STEPS (or less
    than one batch) is refused, naming the grid entry that asked for it."""
    g, t = spec.grid, spec.train
    tps = t.batch_size * spec.model.seq_len
    batch = f"batches of {tps:,} tokens (train.batch_size {t.batch_size} x model.seq_len {spec.model.seq_len})"
    if g.points is not None:
        asked = [(f"grid.points[{i}].D: {p.D:,.0f} tokens", p.D) for i, p in enumerate(g.points) if point_shape(p, spec.model) == shape]
    elif g.D is not None:
        asked = [(f"grid.D[{i}]: {D:,.0f} tokens", D) for i, D in enumerate(g.D)]
    elif g.tokens_per_param is not None:
        asked = [(f"grid.tokens_per_param[{i}]: {k:g} x N {shape.N:,}", k * shape.N) for i, k in enumerate(g.tokens_per_param)]
    else:  # IsoFLOP: each size gets the tokens that spend the budget
        assert g.C is not None  # rules.check: without points, exactly one of D, tokens_per_param and C
        asked = [(f"grid.C[{i}]: budget {C:.3g} at N {shape.N:,} ({fpt:,} FLOPs per token)", C / fpt) for i, C in enumerate(g.C)]
    out: dict[int, str] = {}
    for what, D in asked:
        if not D <= MAX_COUNT:  # its tokens, FLOPs and steps would overflow the plan's int64 columns (or be inf)
            raise SpecError(f"{what.split(':')[0]}: {D:.3g} tokens, more than a count can hold ({MAX_COUNT:,}); lower it")
        steps = round(D / tps)
        if steps < MIN_STEPS:
            raise SpecError(
                f"{what} = {D / tps:.3g} {batch}; a run needs at least {MIN_STEPS} steps "
                f"({MIN_STEPS * tps:,} tokens): raise it, or lower train.batch_size"
            )
        if g.points is not None and steps in out:  # listed pairs: the same run twice is a mistake, not a merge
            raise SpecError(
                f"{what}: the same run as {out[steps].split(':')[0]} (n_layers {shape.n_layers}, d_model "
                f"{shape.d_model}, {steps:,} steps of {batch}); remove one of them"
            )
        out.setdefault(steps, what)
    return sorted(out)


def _branched(spec: SweepSpec, shape: Shape, data: DataConfig, all_steps: list[int], seed: int) -> list[RunSpec]:
    """One stable-phase trunk to the last branch point; each data size cools down from its own.
    Data sizes whose cooldown would start within the warmup are trained on their own."""
    t = spec.train
    warmup = _warmup(spec, all_steps[0])  # one warmup for every branch of the trunk
    starts = {steps: steps - round(t.cooldown_fraction * steps) for steps in all_steps}
    branched = [steps for steps in all_steps if starts[steps] > warmup]
    runs = [_run(spec, shape, data, steps, seed, warmup) for steps in all_steps if steps not in branched]
    if not branched:
        return runs
    points = tuple(sorted({starts[steps] for steps in branched}))
    trunk = _run(
        spec,
        shape,
        data,
        points[-1],
        seed,
        warmup,
        role=Role.TRUNK,
        decay_start=points[-1],
        branch_steps=points,
        eval_steps=tuple(sorted(set(_eval_steps(0, points[-1], t.n_evals)) | set(points))),
    )
    runs.append(trunk)
    for steps in branched:
        evals = tuple(e for e in trunk.eval.steps if e <= starts[steps]) + _eval_steps(starts[steps], steps, t.n_evals)
        copied = tuple(s for s in trunk.eval.task_steps if s <= starts[steps])
        runs.append(
            _run(
                spec,
                shape,
                data,
                steps,
                seed,
                warmup,
                decay_start=starts[steps],
                trunk_id=trunk.run_id,
                eval_steps=evals,
                trunk_task_steps=copied,
            )
        )
    return runs


def tuned(spec: SweepSpec) -> list[SweepSpec]:
    """The sweep once per (lr, batch_size, schedule) of grid.lr x grid.batch_size x grid.schedules
    (or per (lr, batch_size) of grid.points that give their own), each with that setting as its
    train settings; the sweep itself when none is given."""
    specs = _tuned(spec)
    if spec.grid.schedules is None:
        return specs
    return [s.model_copy(update={"train": s.train.model_copy(update=e.overrides())}) for s in specs for e in spec.grid.schedules]


def _tuned(spec: SweepSpec) -> list[SweepSpec]:
    """The sweep once per (lr, batch_size) of grid.lr x grid.batch_size (or of grid.points)."""
    g, t = spec.grid, spec.train
    if g.points is not None and any(p.lr or p.batch_size for p in g.points):  # each point's own, grouped

        def setting(p):
            return p.lr or t.lr, p.batch_size or t.batch_size

        return [
            spec.model_copy(
                update={
                    "grid": g.model_copy(update={"points": [p for p in g.points if setting(p) == k]}),
                    "train": t.model_copy(update={"lr": k[0], "batch_size": k[1]}),
                }
            )
            for k in dict.fromkeys(map(setting, g.points))
        ]
    settings = [{"lr": lr, "batch_size": b} for lr in g.lr or [t.lr] for b in g.batch_size or [t.batch_size]]
    if g.lr is None and g.batch_size is None:
        return [spec]
    return [spec.model_copy(update={"train": t.model_copy(update=s)}) for s in settings]


def run_precision(spec: SweepSpec, tpu: bool = False) -> Precision:
    """train.precision, or where unset bf16 for jobs on accelerators (launch.gpus_per_job > 0;
    tpu: this is a TPU VM, whose jobs use its chips) and fp32 for CPU jobs. Resolved here, so a
    CPU sweep's runs (and run ids) are what they were when fp32 was the default."""
    if spec.train.precision is not None:
        return spec.train.precision
    return Precision.BF16 if spec.launch.gpus_per_job or tpu else Precision.FP32


def precision_warning(spec: SweepSpec) -> str | None:
    """One line for plan and run when a GPU sweep asks for fp32, whose cost on a GPU is easy to miss."""
    if spec.train.precision != Precision.FP32 or not spec.launch.gpus_per_job:
        return None
    return (
        "train.precision fp32 on GPUs means TF32 matmuls and XLA's attention with its full score matrix "
        "(cuDNN's fused kernel is 16-bit); remove train.precision for bf16, the default on accelerators"
    )


def plan(spec: SweepSpec, tpu: bool = False) -> list[RunSpec]:
    """Every (shape, data size, lr, batch size, U, seed) of the sweep, smallest model first; with
    cooldown branches, each (shape, lr, batch size, seed)'s trunk comes before its branches.
    tpu: this is a TPU VM (run_precision)."""
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"precision": run_precision(spec, tpu)})})
    data = data_config(spec)
    vocab = pick(OBJECTIVES[spec.train.objective], spec.train).model_vocab(data.vocab_size)
    caps = [dataclasses.replace(data, U=U) for U in spec.grid.U] if spec.grid.U else [data]
    runs = []
    for shape in sorted(shapes(spec), key=lambda s: s.N):
        fpt = flops_per_token(shape.N, shape.n_layers, shape.d_model, spec.model.seq_len, vocab)
        for setting in tuned(spec):
            all_steps = _steps(setting, shape, fpt)
            for capped, seed in itertools.product(caps, spec.seeds if all_steps else ()):  # no seeds: points of another setting only
                if setting.train.cooldown_branches:
                    runs += _branched(setting, shape, capped, all_steps, seed)
                else:
                    runs += [_run(setting, shape, capped, steps, seed, _warmup(setting, steps)) for steps in all_steps]
    return runs


def grid_points(runs: list[RunSpec]) -> list[RunSpec]:
    """The runs that are points of the N x D grid (not cooldown trunks)."""
    return [r for r in runs if r.role == Role.RUN]


def estimate_seconds(runs: list[RunSpec], parallel: int) -> float:
    """Rough wall time of the runs on this kind of CPU machine with `parallel` jobs at once."""

    def rate(r: RunSpec) -> float:
        return CPU_JOB_FLOPS * r.flops_per_token / (r.flops_per_token + CPU_HALF_RATE_FLOPS_PER_TOKEN)

    work = sum(r.job_flops / rate(r) + JOB_OVERHEAD_S for r in runs)
    return work / max(1, min(parallel, len(runs)))
