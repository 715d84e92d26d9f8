"""`scalinglab plan`: each run of a sweep, what it costs, its memory per device, its epochs over its
unique training tokens (D/U), and the estimated wall time. A sweep with a run that cannot fit its
device, or a U beyond the training split, is refused (exit 2), here and by `run` (launch/preflight.py)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis.say import warner
from ..launch.preflight import check_caps, check_memory, job_devices, training_tokens
from ..launch.resources import max_parallel, tpu_device_files
from ..store.files import write_text
from ..store.runs import Role
from ..store.targets import new_file
from ..sweep import memory, planner
from ..sweep.memory import GIB
from ..sweep.read import load, with_launch
from ..sweep.rules import caps
from ..sweep.runspec import RunSpec
from ..sweep.spec import SweepSpec


def role(r: RunSpec) -> str:
    if r.role == Role.TRUNK:
        return Role.TRUNK
    return f"branch@{r.start_step}" if r.trunk_id else Role.RUN


def unique_tokens(r: RunSpec, split: int | None) -> int | None:
    """U, the unique training tokens the run draws from: its cap, else the training split's
    `split` tokens (None: not known, a BPE corpus not yet prepared)."""
    return r.data.U if r.data.U is not None else split


def epochs(r: RunSpec, split: int | None) -> float | None:
    """D/U: how many times the run sees its unique training tokens, on average."""
    U = unique_tokens(r, split)
    return None if U is None else r.D / U


def plan_table(runs: list[RunSpec], memories: list[memory.Memory], split: int | None, platform: str) -> pd.DataFrame:
    """One row a run; U and epochs (D/U), None where the training split's size is not known;
    layers: scanned or unrolled on the jobs' platform; memory: GiB per device at its peak,
    memory_<part>: each part's (sweep/memory.py)."""
    return pd.DataFrame(
        [
            {
                "run_id": r.run_id,
                "n_layers": r.model.n_layers,
                "d_model": r.model.d_model,
                "n_heads": r.model.n_heads,
                "N": r.N,
                "N_total": r.N_total,
                "D": r.D,
                "tokens_per_param": r.D / r.N,
                "U": unique_tokens(r, split),
                "epochs": epochs(r, split),
                "steps": r.steps,
                "seed": r.seed,
                "lr": r.optim.lr,
                "batch_size": r.batch_size,
                "schedule": r.optim.schedule.label(),
                "role": role(r),
                "flops_per_token": r.flops_per_token,
                "C": r.C,
                "job_flops": r.job_flops,
                "layers": memory.job_layers(r, platform),
                **memory.as_gib(m),
            }
            for r, m in zip(runs, memories)
        ]
    )


def print_plan(
    sweep: SweepSpec, runs: list[RunSpec], memories: list[memory.Memory], device: str, split: int | None, console: Console
) -> None:
    """device: check_memory's line naming the devices the runs' memory was held to; split: the
    training split's tokens (training_tokens)."""
    table = Table(title=f"sweep {sweep.name}: {len(runs)} runs")
    tuned = [k for k in ("lr", "batch_size", "schedules") if getattr(sweep.grid, k) is not None]  # columns only where they vary
    capped = ["U"] if caps(sweep) else []
    axes = [k.removesuffix("s") for k in tuned]  # grid.schedules: a run's schedule
    for col in ("run_id", "n_layers", "d_model", "n_heads", "N", "N_total", "D", "D/N", *capped, "D/U", "steps", *axes, "seed", "role",
                "C", "memory"):  # fmt: skip
        table.add_column(col, justify="right")
    for r, mem in zip(runs, memories):
        m, e = r.model, epochs(r, split)
        hyper = {"lr": f"{r.optim.lr:.3g}", "batch_size": str(r.batch_size), "schedules": r.optim.schedule.label()}
        table.add_row(
            r.run_id, str(m.n_layers), str(m.d_model), str(m.n_heads), f"{r.N:,}", f"{r.N_total:,}",
            f"{r.D:,}", f"{r.D / r.N:.1f}", *([f"{r.data.U:,}"] if capped else []), "?" if e is None else f"{e:.3g}",
            f"{r.steps:,}", *(hyper[k] for k in tuned), str(r.seed), role(r), f"{r.C:.3g}", f"{mem.total / GIB:.3g}",
        )  # fmt: skip
    console.print(table)
    parallel = max_parallel(sweep.launch, len(runs))
    est = planner.estimate_seconds(runs, parallel)
    spent = sum(r.job_flops for r in runs)
    independent = sum(r.C for r in planner.grid_points(runs))
    shared = (
        f" (independent runs: {independent:.3g}, {1 - spent / independent:.0%} saved by cooldown branches)" if spent < independent else ""
    )
    console.print(
        f"runs {len(planner.grid_points(runs))} · total C {spent:.3g} FLOPs{shared} · "
        f"estimated wall time here {est / 60:.1f} min ({parallel} job(s) at once, {sweep.launch.executor})"
    )
    console.print("C = FLOPs per token x D; FLOPs per token = 6(N + d_model*vocab) + 12*n_layers*seq_len*d_model")
    console.print(f"memory: GiB per device at the step's or evaluation's peak, {device}")
    print_epochs(runs, split, bool(caps(sweep)), console)


def print_epochs(runs: list[RunSpec], split: int | None, capped: bool, console: Console) -> None:
    """What D/U counts, and a warning where runs repeat their training data (D/U > 1)."""
    counted = "the first U of the training split" if capped else "the training split"
    if split is None:
        unknown = "" if capped else " (? in the table)"
        console.print(
            f"D/U: epochs over a run's U unique training tokens, {counted}, whose size is not known yet{unknown}: its BPE "
            "tokens are not in the cache (`scalinglab prepare` tokenizes them once; `run` does too)"
        )
    else:
        console.print(f"D/U: epochs over a run's U unique training tokens, {counted}'s {split:,}")
    repeats = [e for e in (epochs(r, split) for r in runs) if e is not None and e > 1]
    if repeats:
        console.print(
            f"[yellow]warning[/]: {len(repeats)} of {len(runs)} runs repeat their training data, up to {max(repeats):.3g} "
            "epochs (D/U > 1): their losses are not those of D unique tokens"
        )


def main(args, console: Console) -> int:
    tables = {flag: new_file(path, f"{flag} {path}", args.force) for flag, path in (("--csv", args.csv), ("--json", args.json)) if path}
    sweep = with_launch(load(args.sweep), executor=args.executor)
    runs = planner.plan(sweep, tpu=bool(tpu_device_files()))
    if (warning := planner.precision_warning(sweep)) is not None:
        warner(console)(warning)
    memories, device = check_memory(sweep, runs)
    split = training_tokens(runs[0].data, console)
    if split is not None:
        check_caps(sweep, split)
    print_plan(sweep, runs, memories, device, split, console)
    table = plan_table(runs, memories, split, job_devices(sweep.launch)[0])
    for flag, path in tables.items():
        write_text(path, table.to_csv(index=False) if flag == "--csv" else table.to_json(orient="records", indent=1))
        console.print(escape(f"wrote {path}"))
    return 0
