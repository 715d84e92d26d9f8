"""A CompareReport as the lines `scalinglab compare` prints with rich: each sweep's law, per sweep
against the baseline a table of compute-optimal losses and multipliers, the trend and the verdict;
with --shared-exponents, then the joint fit and the same again on it, labelled.
Names (folders, a table's groups) escaped: rich would read "[x]" as markup. No JAX."""

from __future__ import annotations

from collections.abc import Iterator

from rich.markup import escape
from rich.table import Table

from ..parts import Estimate, Skipped
from .multiplier import AtCompute, CompareReport, Comparison, SharedExponents
from .tasks import TaskComparison

WHERE = {"runs_low": "runs' lowest", "runs_mid": "runs' middle", "runs_high": "runs' highest", "at": "--at"}


def _cell(e: Estimate, fmt: str) -> str:
    value = "inf" if e.value == float("inf") else f"{e.value:{fmt}}"
    return value + (f" [{e.ci[0]:{fmt}}, {e.ci[1]:{fmt}}]" if e.ci else "")


def _row(p: AtCompute) -> list[str]:
    return [WHERE[p.where], f"{p.C_6ND:.3g}", _cell(p.L_A, ".4f"), _cell(p.L_B, ".4f"), _cell(p.dL, "+.4f"), _cell(p.k, ".3g")]


def comparison_table(c: Comparison, level: float) -> Table:
    A, B = escape(c.baseline), escape(c.sweep)
    intervals = f", {level:.0%} intervals over {c.n_bootstrap} resample pairs" if c.n_bootstrap else ""
    t = Table(title=f"{B} against {A}{intervals}", title_justify="left")
    for name in ("C_6ND at", "C_6ND", f"L*_A ({A})", f"L*_B ({B})", "L*_B - L*_A", "k"):
        t.add_column(name, justify="left" if name == "C_6ND at" else "right")
    for p in c.points:
        t.add_row(*_row(p))
    return t


def task_table(task: str, c: Comparison, t: TaskComparison, level: float) -> Table:
    """One task's accuracies at the comparison's computes, each the best the sweep's two-step law
    offers there, and their difference in points."""
    A, B = escape(c.baseline), escape(c.sweep)
    intervals = f", {level:.0%} intervals over {t.n_bootstrap} resample pairs" if t.n_bootstrap else ""
    title = f"{escape(task)} ({t.shots} shots, {escape(t.strategy)}): accuracy at equal compute{intervals}"
    table = Table(title=title, title_justify="left")
    for name in ("C_6ND at", "C_6ND", f"acc*_A ({A})", f"acc*_B ({B})", "B - A, points"):
        table.add_column(name, justify="left" if name == "C_6ND at" else "right")
    for p in t.points:
        table.add_row(WHERE[p.where], f"{p.C_6ND:.3g}", _cell(p.acc_A, ".3f"), _cell(p.acc_B, ".3f"), _cell(p.d_points, "+.2f"))
    return table


def _task_lines(c: Comparison, level: float) -> Iterator[str | Table]:
    for task, t in c.tasks.items():
        if isinstance(t, Skipped):
            yield escape(f"{task}: not compared: {t.skipped}")
        else:
            yield task_table(task, c, t, level)
            yield escape(t.verdict)


def slope_line(c: Comparison) -> str:
    lo, hi = c.C_6ND_range
    ci = f" [{c.slope.ci[0]:.3g}, {c.slope.ci[1]:.3g}]" if c.slope.ci else ""
    return f"d ln k / d ln C_6ND over C_6ND {lo:.3g} to {hi:.3g}: {c.slope.value:.3g}{ci}"


def compare_lines(report: CompareReport) -> Iterator[str | Table]:
    yield escape(report.convention)
    for s in report.sweeps:
        yield escape(f"{s.name}: {s.law.law['law']} over {s.n_runs} runs ({s.why})")
    for c in report.comparisons:
        yield comparison_table(c, report.level)
        yield slope_line(c)
        yield escape(c.verdict)
        yield from _task_lines(c, report.level)
    if report.shared is not None:
        yield from shared_lines(report.shared, report.level)


def shared_lines(shared: SharedExponents, level: float) -> Iterator[str | Table]:
    """--shared-exponents' part after the separate fits': the joint fit's exponents, each sweep's
    own parameters, then the comparisons again, each table titled as the shared exponents'."""
    yield f"Shared exponents: every sweep fitted together, {escape(shared.form)}:"
    intervals = f" ({level:.0%} intervals over {shared.n_bootstrap} joint resamples)" if shared.n_bootstrap else ""
    yield f"  alpha = {_cell(shared.alpha, '.3g')}, beta = {_cell(shared.beta, '.3g')}{intervals}"
    for s in shared.sweeps:
        yield escape(f"  {s.name}: E = {_cell(s.E, '.4g')}, A = {_cell(s.A, '.4g')}, B = {_cell(s.B, '.4g')} over {s.n_runs} runs")
    for c in shared.comparisons:
        table = comparison_table(c, level)
        table.title = f"Shared exponents: {table.title}"
        yield table
        yield f"shared exponents: {slope_line(c)}"
        yield escape(c.verdict)
