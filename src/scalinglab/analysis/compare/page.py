"""The comparison page (`scalinglab compare --html FILE`): a CompareReport as one self-contained
HTML page, like report.html, that opens from disk with no server and no script: the convention,
each sweep's law and why it was chosen, per sweep against the baseline the table of compute-optimal
losses and multipliers with their intervals, the trend and the verdict, and the comparison figure
as PNG data. Every element is made by markup.tag: sweep and group names are the user's. No JAX."""

from __future__ import annotations

import datetime
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..markup import Markup, document, figure, interval, join, num, table, tag
from ..parts import Estimate, Skipped
from .multiplier import AtCompute, CompareReport, Comparison, SharedExponents, SweepLaw, SweepSummary
from .tasks import TaskComparison
from .text import WHERE

CAPTION = "Left: each sweep's runs and compute-optimal loss L*(C_6ND) with its band; right: k(C_6ND) against the baseline with its band."


def comparison_png(sweeps: Sequence[SweepLaw]) -> bytes:
    """The figure of `compare --figure`, drawn for the page alone: no file is left beside it."""
    from .plots import plot_comparison  # noqa: PLC0415  (matplotlib only when a page or figure is asked for)

    with tempfile.TemporaryDirectory() as tmp:
        return plot_comparison(sweeps, Path(tmp) / "compare.png").read_bytes()


def compare_page(report: CompareReport, png: bytes | None) -> str:
    """The page of a comparison, with the figure `png` (comparison_png) when there is one."""
    names = [c.sweep for c in report.comparisons]
    title = f"{', '.join(names)} against {report.sweeps[0].name}"
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return document(
        f"{title}: scalinglab compare",
        tag("h1", title),
        tag("p", f"Written {when} by ", tag("code", "scalinglab compare"), "."),
        tag("p", report.convention),
        tag("h2", "Laws"),
        *(_sweep(s, report.level) for s in report.sweeps),
        *(_comparison(c, report.level) for c in report.comparisons),
        _shared(report.shared, report.level) if report.shared else "",
        join(tag("h2", "Figure"), figure(png, "loss against compute per sweep, and k", CAPTION)) if png else "",
    )


def _end(x: float | None, fmt: str) -> str:
    """A value or an interval's end: infinite k is "inf", as compare prints it (num writes – for it)."""
    return "inf" if x == math.inf else num(x, fmt)


def _cell(e: Estimate, fmt: str) -> str:
    """A value and its interval in one cell, as compare's printed table has them."""
    return _end(e.value, fmt) + (f" [{_end(e.ci[0], fmt)}, {_end(e.ci[1], fmt)}]" if e.ci else "")


def _sweep(s: SweepSummary, level: float) -> Markup:
    """One sweep's law: its parameters with their intervals, and why this law was chosen."""
    rows = [[p, num(v), interval(s.law.ci.get(p))] for p, v in s.law.params.items()]
    return join(
        tag("h3", s.name),
        tag("p", f"{s.law.law.get('law')}: ", tag("code", s.law.form), f" over {s.n_runs} runs. Chosen: {s.why}."),
        table(["parameter", "value", f"{level:.0%} interval"], rows),
    )


def _row(p: AtCompute) -> list[str]:
    return [WHERE[p.where], num(p.C_6ND, ".3g"), _cell(p.L_A, ".4f"), _cell(p.L_B, ".4f"), _cell(p.dL, "+.4f"), _cell(p.k, ".3g")]


def _comparison(c: Comparison, level: float, label: str = "") -> Markup:
    """One sweep against the baseline: the table of compare's printout, the slope and the verdict."""
    intervals = f"{level:.0%} intervals over {c.n_bootstrap} resample pairs." if c.n_bootstrap else "No resamples: no intervals."
    header = ["C_6ND at", "C_6ND", f"L*_A ({c.baseline})", f"L*_B ({c.sweep})", "L*_B - L*_A", "k"]
    lo, hi = c.C_6ND_range
    trend = f"d ln k / d ln C_6ND over C_6ND {num(lo, '.3g')} to {num(hi, '.3g')}: {_cell(c.slope, '.3g')}."
    return join(
        tag("h2", f"{label}{c.sweep} against {c.baseline}"),
        tag("p", intervals),
        table(header, [_row(p) for p in c.points]),
        tag("p", trend),
        tag("p", tag("b", c.verdict)),
        *(_task(name, c, t, level) for name, t in c.tasks.items()),
    )


def _task(name: str, c: Comparison, t: TaskComparison | Skipped, level: float) -> Markup:
    """One task's accuracies at the comparison's computes and the line at the middle one, or why it
    is not compared."""
    if isinstance(t, Skipped):
        return tag("p", tag("b", name), f": not compared: {t.skipped}")
    intervals = f" {level:.0%} intervals over {t.n_bootstrap} resample pairs." if t.n_bootstrap else ""
    header = ["C_6ND at", "C_6ND", f"acc*_A ({c.baseline})", f"acc*_B ({c.sweep})", "B - A, points"]
    rows = [
        [WHERE[p.where], num(p.C_6ND, ".3g"), _cell(p.acc_A, ".3f"), _cell(p.acc_B, ".3f"), _cell(p.d_points, "+.2f")] for p in t.points
    ]
    return join(
        tag("h3", f"{name}: accuracy at equal compute"),
        tag("p", f"{t.shots} shots, {t.strategy}; each sweep's best accuracy at the compute (its task loss's optimal N and D).{intervals}"),
        table(header, rows),
        tag("p", tag("b", t.verdict)),
    )


def _shared(shared: SharedExponents, level: float) -> Markup:
    """--shared-exponents: the joint fit's exponents and each sweep's own parameters, then every
    comparison again on that fit."""
    intervals = f" {level:.0%} intervals over {shared.n_bootstrap} joint resamples." if shared.n_bootstrap else ""
    rows = [[s.name, s.n_runs, _cell(s.E, ".4g"), _cell(s.A, ".4g"), _cell(s.B, ".4g")] for s in shared.sweeps]
    return join(
        tag("h2", "Shared exponents"),
        tag(
            "p",
            "Every sweep fitted together, ",
            tag("code", shared.form),
            f": alpha = {_cell(shared.alpha, '.3g')}, ",
            f"beta = {_cell(shared.beta, '.3g')}.{intervals}",
        ),
        table(["sweep", "runs", "E", "A", "B"], rows),
        *(_comparison(c, level, "Shared exponents: ") for c in shared.comparisons),
    )
