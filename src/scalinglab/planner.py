"""SweepSpec -> list[RunSpec]: shapes, parameter and FLOP counts, the N x D grid. Pure functions.

Counts follow the model in model.py exactly (tested against the real Flax parameter tree):
- N, non-embedding parameters: per layer two LayerNorms (scale + bias), the fused q/k/v and
  output projections (no biases), the MLP (no biases); plus the final LayerNorm.
- N_total adds the token embedding (tied with the output layer) and the learned positions.
- FLOPs per token, PaLM convention (Chowdhery et al. 2022, App. B): 6 per matmul weight per
  token (N plus the d_model x vocab_size unembedding) plus 12 * n_layers * seq_len * d_model
  for the attention scores and values (the full seq_len x seq_len matrix). C = that * D.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from . import data, objective
from .spec import ModelSpec, RunSpec, SpecError, SweepSpec

# Effective training rate of one single-threaded CPU job, in FLOP/s of the convention above. It
# rises with the model's FLOPs per token f, as fixed costs per step matter less:
# CPU_JOB_FLOPS * f / (f + CPU_HALF_RATE_FLOPS_PER_TOKEN), fitted to the runs of results/cpu-study
# (12k to 1.5M parameters, within 10%) on a 2-core AVX2 machine. JOB_OVERHEAD_S: a job's fixed
# cost (interpreter, JAX import, compilation, data load). Only used for the wall-time estimate.
CPU_JOB_FLOPS = 30e9
CPU_HALF_RATE_FLOPS_PER_TOKEN = 2.7e5
JOB_OVERHEAD_S = 10.0


@dataclass(frozen=True)
class ShapeChoice:
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int


def count_N(n_layers: int, d_model: int, d_ff: int) -> int:
    per_layer = 4 * d_model * d_model + 2 * d_model * d_ff + 4 * d_model
    return n_layers * per_layer + 2 * d_model


def count_N_total(N: int, d_model: int, seq_len: int, vocab_size: int) -> int:
    return N + vocab_size * d_model + seq_len * d_model


def flops_per_token(N: int, n_layers: int, d_model: int, seq_len: int, vocab_size: int) -> int:
    return 6 * (N + d_model * vocab_size) + 12 * n_layers * seq_len * d_model


def shape_for(N_target: float, model: ModelSpec) -> ShapeChoice:
    """Target non-embedding N -> a shape with d_model ~ aspect_ratio * n_layers.

    Depth comes from the rule N ~ (4 + 2 mlp_ratio) n_layers d_model^2 with d_model =
    aspect_ratio * n_layers; the width is then the multiple of d_head whose N is nearest the
    target in log space, so N lands within a few percent of the target.
    """
    k = 4 + 2 * model.mlp_ratio
    n_layers = max(1, round((N_target / (k * model.aspect_ratio**2)) ** (1 / 3)))
    ideal = (N_target / (k * n_layers)) ** 0.5
    lo = max(1, int(ideal // model.d_head))
    best = min(
        (lo, lo + 1),
        key=lambda h: abs(math.log(count_N(n_layers, h * model.d_head, round(model.mlp_ratio * h * model.d_head)) / N_target)),
    )
    d_model = best * model.d_head
    return ShapeChoice(n_layers, d_model, best, round(model.mlp_ratio * d_model))


def shapes(spec: SweepSpec) -> list[ShapeChoice]:
    g, m = spec.grid, spec.model
    if g.shapes is not None:
        out = [ShapeChoice(s.n_layers, s.d_model, s.n_heads, s.d_ff or round(m.mlp_ratio * s.d_model)) for s in g.shapes]
        where = "grid.shapes"
    else:
        out = [shape_for(n, m) for n in g.N]
        where = "grid.N"
    seen: dict[ShapeChoice, int] = {}
    for i, s in enumerate(out):
        if s in seen:
            raise SpecError(
                f"{where}[{i}]: gives the same shape as {where}[{seen[s]}] "
                f"(n_layers={s.n_layers}, d_model={s.d_model}); space the sizes further apart"
            )
        seen[s] = i
    return out


def _eval_steps(first: int, last: int, n: int) -> tuple[int, ...]:
    """n evaluations evenly spaced over steps (first, last], the last at `last`."""
    return tuple(sorted({max(first + 1, first + round((last - first) * (i + 1) / n)) for i in range(n)}))


def plan(spec: SweepSpec) -> list[RunSpec]:
    """Every (shape, data size, seed) of the sweep, smallest model first; with cooldown branches,
    each (shape, seed)'s trunk comes before its branches."""
    t, m, g, d = spec.train, spec.model, spec.grid, spec.data
    tokens_per_step = t.batch_size * m.seq_len
    tokenizer_vocab = data.tokenizer_vocab(d.tokenizer, d.vocab_size)
    vocab = objective.model_vocab(t.objective, tokenizer_vocab)
    runs = []
    for s in sorted(shapes(spec), key=lambda s: count_N(s.n_layers, s.d_model, s.d_ff)):
        N = count_N(s.n_layers, s.d_model, s.d_ff)
        fpt = flops_per_token(N, s.n_layers, s.d_model, m.seq_len, vocab)
        if g.D is not None:
            D_targets = g.D
        elif g.tokens_per_param is not None:
            D_targets = [tpp * N for tpp in g.tokens_per_param]
        else:  # IsoFLOP: each size gets the tokens that spend the budget
            D_targets = [C / fpt for C in g.C]
        all_steps = sorted({max(1, round(D / tokens_per_step)) for D in D_targets})

        def run_spec(steps: int, seed: int, warmup: int, **fields) -> RunSpec:
            defaults = {
                "decay_start": {"wsd": steps - round(t.cooldown_fraction * steps), "constant": steps}.get(t.schedule, warmup),
                "eval_steps": _eval_steps(0, steps, t.n_evals),
                "role": "run",
                "trunk_id": None,
                "branch_steps": (),
            }
            return RunSpec(
                n_layers=s.n_layers,
                d_model=s.d_model,
                n_heads=s.n_heads,
                d_ff=s.d_ff,
                seq_len=m.seq_len,
                vocab_size=vocab,
                parametrization=m.parametrization,
                base_width=m.base_width,
                objective=t.objective,
                mask_fraction=t.mask_fraction,
                batch_size=t.batch_size,
                steps=steps,
                lr=t.lr,
                schedule=t.schedule,
                warmup_steps=warmup,
                cooldown_shape=t.cooldown_shape,
                min_lr_ratio=t.min_lr_ratio,
                weight_decay=t.weight_decay,
                grad_clip=t.grad_clip,
                b1=t.b1,
                b2=t.b2,
                precision=t.precision,
                data_source=d.source,
                data_path=str(os.path.abspath(d.path)) if d.path else None,
                text_field=d.text_field,
                tokenizer=d.tokenizer,
                tokenizer_vocab=tokenizer_vocab,
                val_fraction=d.val_fraction,
                val_tokens=d.val_tokens,
                seed=seed,
                checkpoint_interval_s=t.checkpoint_interval_s,
                N=N,
                N_total=count_N_total(N, s.d_model, m.seq_len, vocab),
                D=steps * tokens_per_step,
                flops_per_token=fpt,
                C=float(fpt * steps * tokens_per_step),
                **{**defaults, **fields},
            )

        def warmup_for(steps: int) -> int:
            return t.warmup_steps if t.warmup_steps is not None else round(t.warmup_fraction * steps)

        for seed in spec.seeds:
            if not t.cooldown_branches:
                runs += [run_spec(steps, seed, warmup_for(steps)) for steps in all_steps]
                continue
            # One stable-phase trunk to the last branch point; each data size cools down from its own.
            warmup = warmup_for(all_steps[0])  # the same warmup for every branch of the trunk
            starts = {steps: steps - round(t.cooldown_fraction * steps) for steps in all_steps}
            branched = [steps for steps in all_steps if starts[steps] > warmup]
            runs += [run_spec(steps, seed, warmup) for steps in all_steps if steps not in branched]
            if not branched:
                continue
            points = tuple(sorted({starts[steps] for steps in branched}))
            trunk = run_spec(
                points[-1],
                seed,
                warmup,
                role="trunk",
                decay_start=points[-1],
                branch_steps=points,
                eval_steps=tuple(sorted(set(_eval_steps(0, points[-1], t.n_evals)) | set(points))),
            )
            runs.append(trunk)
            for steps in branched:
                runs.append(
                    run_spec(
                        steps,
                        seed,
                        warmup,
                        decay_start=starts[steps],
                        trunk_id=trunk.run_id,
                        eval_steps=tuple(e for e in trunk.eval_steps if e <= starts[steps])
                        + _eval_steps(starts[steps], steps, t.n_evals),
                    )
                )
    return runs


def grid_points(runs: list[RunSpec]) -> list[RunSpec]:
    """The runs that are points of the N x D grid (not cooldown trunks)."""
    return [r for r in runs if r.role == "run"]


def estimate_seconds(runs: list[RunSpec], parallel: int) -> float:
    """Rough wall time of the runs on this kind of CPU machine with `parallel` jobs at once."""
    def rate(r: RunSpec) -> float:
        return CPU_JOB_FLOPS * r.flops_per_token / (r.flops_per_token + CPU_HALF_RATE_FLOPS_PER_TOKEN)

    work = sum(r.job_flops / rate(r) + JOB_OVERHEAD_S for r in runs)
    return work / max(1, min(parallel, len(runs)))
