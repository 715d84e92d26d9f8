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

from .spec import ModelSpec, RunSpec, SpecError, SweepSpec

VOCAB_SIZE = 256  # byte-level tokens

# Effective training rate of one single-threaded CPU job, in FLOP/s of the convention above,
# and a job's fixed cost (interpreter, JAX import, compilation, data load), both measured with
# sweeps/quickstart.yaml on a 2-core AVX2 machine. Only used for the wall-time estimate.
CPU_FLOPS_PER_JOB = 16e9
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


def count_N_total(N: int, d_model: int, seq_len: int, vocab_size: int = VOCAB_SIZE) -> int:
    return N + vocab_size * d_model + seq_len * d_model


def flops_per_token(N: int, n_layers: int, d_model: int, seq_len: int, vocab_size: int = VOCAB_SIZE) -> int:
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


def plan(spec: SweepSpec) -> list[RunSpec]:
    """Every (shape, data size, seed) of the sweep, smallest model first."""
    t, m, g = spec.train, spec.model, spec.grid
    tokens_per_step = t.batch_size * m.seq_len
    runs = []
    for s in sorted(shapes(spec), key=lambda s: count_N(s.n_layers, s.d_model, s.d_ff)):
        N = count_N(s.n_layers, s.d_model, s.d_ff)
        fpt = flops_per_token(N, s.n_layers, s.d_model, m.seq_len)
        if g.D is not None:
            D_targets = g.D
        elif g.tokens_per_param is not None:
            D_targets = [tpp * N for tpp in g.tokens_per_param]
        else:  # IsoFLOP: each size gets the tokens that spend the budget
            D_targets = [C / fpt for C in g.C]
        for D_target in D_targets:
            steps = max(1, round(D_target / tokens_per_step))
            for seed in spec.seeds:
                runs.append(
                    RunSpec(
                        n_layers=s.n_layers,
                        d_model=s.d_model,
                        n_heads=s.n_heads,
                        d_ff=s.d_ff,
                        seq_len=m.seq_len,
                        vocab_size=VOCAB_SIZE,
                        batch_size=t.batch_size,
                        steps=steps,
                        lr=t.lr,
                        warmup_steps=round(t.warmup_fraction * steps),
                        min_lr_ratio=t.min_lr_ratio,
                        weight_decay=t.weight_decay,
                        grad_clip=t.grad_clip,
                        b1=t.b1,
                        b2=t.b2,
                        eval_steps=tuple(sorted({max(1, round(steps * (i + 1) / t.n_evals)) for i in range(t.n_evals)})),
                        data_source=spec.data.source,
                        data_path=str(os.path.abspath(spec.data.path)) if spec.data.path else None,
                        val_fraction=spec.data.val_fraction,
                        val_tokens=spec.data.val_tokens,
                        seed=seed,
                        N=N,
                        N_total=count_N_total(N, s.d_model, m.seq_len),
                        D=steps * tokens_per_step,
                        flops_per_token=fpt,
                        C=float(fpt * steps * tokens_per_step),
                    )
                )
    return runs


def estimate_seconds(runs: list[RunSpec], parallel: int) -> float:
    """Rough wall time of the runs on this kind of CPU machine with `parallel` jobs at once."""
    work = sum(r.C / CPU_FLOPS_PER_JOB + JOB_OVERHEAD_S for r in runs)
    return work / max(1, min(parallel, len(runs)))
