"""The printed curve fits (`scalinglab fit --curves`): per size a table of its law, parameters and
runs (R^2, the largest relative error, the final loss measured and fitted), and the loss
predicted along --schedule. Every string read from results or a table is escaped for rich."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .curves.sizes import CurveReport, SchedulePoint, SizeCurves
from .laws.bootstrap import LEVEL


def size_name(N: float | None) -> str:
    return "all runs (no N mapped)" if N is None else f"N = {N:,.0f}"


def _params(size: SizeCurves) -> str:
    def one(name: str, value: float) -> str:
        ci = size.params_ci.get(name) if size.params_ci else None
        return f"{name} = {value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")

    return ", ".join(one(k, v) for k, v in size.params.items())


def size_table(size: SizeCurves, loss: str) -> Table:
    table = Table(
        title=f"{size_name(size.N)}: {size.law}, {len(size.runs)} runs fitted jointly ({escape(loss)} loss)",
        caption=escape(f"L = {size.form}; {_params(size)}"),
        caption_justify="left",
    )
    for col in ("run", "schedule", "points", "R²", "max rel. error", "final step", "final loss", "fitted", "error"):
        table.add_column(col, justify="left" if col in ("run", "schedule") else "right")
    for r in size.runs:
        error = r.final_fitted / r.final_loss - 1
        table.add_row(escape(r.run), escape(r.schedule), f"{r.points}", f"{r.r2:.4f}", f"{r.max_rel_error:.2%}", f"{r.final_step:,}",
                      f"{r.final_loss:.4f}", f"{r.final_fitted:.4f}", f"{error:+.2%}")  # fmt: skip
    return table


def prediction_table(points: list[SchedulePoint], schedule: str) -> Table:
    table = Table(title=escape(f"loss predicted along {schedule}"))
    intervals = any(p.loss_low is not None for p in points)
    for col in ("N", "step", "lr", "loss", *([f"{LEVEL:.0%} interval"] if intervals else [])):
        table.add_column(col, justify="right")
    for p in points:
        ci = [f"[{p.loss_low:.4f}, {p.loss_high:.4f}]" if p.loss_low is not None and p.loss_high is not None else ""]
        table.add_row("all" if p.N is None else f"{p.N:,.0f}", f"{p.step:,}", f"{p.lr:.4g}", f"{p.loss:.4f}", *(ci if intervals else []))
    return table


def report_tables(report: CurveReport) -> list[Table | str]:
    """What `fit --curves` prints: a table per size, a line per size skipped."""
    out: list[Table | str] = [size_table(size, report.loss) for size in report.sizes]
    out += [f"[yellow]skipped[/] {size_name(s.N)}: {escape(s.skipped)}" for s in report.skipped]
    return out
