"""A SweepFit as the lines `scalinglab fit`, `plot` and `run` print with rich: escaped, as a task
name or a reason read from results may hold what rich reads as a tag ("[/]" fails to print). No JAX."""

from __future__ import annotations

from collections.abc import Iterator

from rich.markup import escape

from .lawtable import LawChoice
from .parts import CI, Estimate, LawFit, Skipped
from .sweepfit import CurvePointsFit, Frontier, Hyperparameters, SweepFit
from .taskfit import Spread, TaskFit, TaskReport
from .uncertainty import LOOSE

HELD_OUT_SHOWN = 20  # more held-out runs than this: the worst predicted this many, and the count


def _ci(ci: CI | None, fmt: str = ".4g") -> str:
    return f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else ""


def _estimate(name: str, e: Estimate, fmt: str = ".4g") -> str:
    return f"{name} = {e.value:{fmt}}{_ci(e.ci, fmt)}"


def law_lines(fit: SweepFit) -> Iterator[str]:
    law = fit.law
    if isinstance(law, Skipped):
        yield f"no law of the loss fitted: {law.skipped}"
        return
    level = f", {law.level:.0%} bootstrap intervals over {law.n_bootstrap} resamples" if law.ci else ""
    yield f"{law.law['law']}: {law.form} over {law.n_points} runs ({law.method}{level}):"
    for k, v in law.params.items():
        yield f"  {k:<5} = {v:.4g}{_ci(law.ci.get(k))}"
    if isinstance(fit.frontier, Frontier):
        a, b = fit.frontier.a, fit.frontier.b
        yield f"  compute-optimal (C_6ND = 6ND): N_opt ~ C_6ND^{a.value:.3f}{_ci(a.ci)}, D_opt ~ C_6ND^{b.value:.3f}{_ci(b.ci)}"
    if law.loose:
        yield (
            f"  not pinned: {', '.join(law.loose)} (interval reaching 0 or wider than {LOOSE:g}x); these runs leave the "
            "law open there and predictions beyond them loose: wider spans of N and D narrow it"
        )
    if law.noise is not None:
        yield f"  runs' scatter about the law: {law.noise:.2%} of L (robust; prediction intervals of a run's loss include it)"


def table_lines(choice: LawChoice) -> Iterator[str]:
    """Every candidate law with its backtest errors by origin, the mean, AICc, and the choice."""
    yield (
        f"laws of the loss, backtested (fitted on the runs up to each origin of {choice.by}, the rest predicted; "
        "mean |relative error| of their loss):"
    )
    heads = "".join(f"{f'<={o.at:.3g} ({o.n_held})':>18}" for o in choice.origins)
    yield f"  {'law':<18}{heads}{'mean':>9}{'AICc':>9}"
    for c in choice.candidates:
        mark = "*" if c.name == choice.chosen else " "
        if isinstance(c.fit, Skipped):
            yield f"  {c.name:<16}{mark}  not fitted: {c.fit.skipped}"
            continue
        errors = "".join(f"{'-' if e is None else f'{e:.2%}':>18}" for e in c.errors)
        mean = "-" if c.score is None else f"{c.score:.2%}"
        aicc = "-" if c.aicc is None else f"{c.aicc:.1f}"
        yield f"  {c.name:<16}{mark} {errors}{mean:>9}{aicc:>9}"
    yield f"  chosen: {choice.why}"


def curve_points_line(points: CurvePointsFit | Skipped) -> str:
    """Whether the law of the loss was fitted with curve-law points, how many, and (auto) both backtest errors."""
    if isinstance(points, Skipped):
        return f"curve points: none; {points.skipped}"
    used = "used" if points.used else "not used"
    both = ", ".join(
        f"{what} {'-' if err is None else f'{err:.2%}'} ({law or 'no law fitted'})"
        for what, err, law in (("with", points.error_with, points.chosen_with), ("without", points.error_without, points.chosen_without))
        if law is not None or err is not None
    )
    left = f"; no points for {'; '.join(points.left_out)}" if points.left_out else ""
    return (
        f"curve points ({points.setting}): {points.n_points} from {points.sizes} sizes' {points.curve_law} laws, {used}; "
        f"chosen law's backtest error {both}{left}"
    )


def _power_law(law: LawFit, at: str) -> str:
    v = law.params
    e = f"E = {v['E']:.4g}  " if "E" in v else ""
    return f"{law.form:<18} {e}a = {v['a']:.4g}  b = {v['b']:.4f}  ({at}, {law.n_points} runs)"


def approach_lines(fit: SweepFit) -> Iterator[str]:
    yield from (_power_law(p, p.at) for p in fit.power_laws)
    if not isinstance(fit.isoflop, Skipped):
        iso = fit.isoflop
        yield (
            f"IsoFLOP (Approach 2, {len(iso.budgets)} budgets, runs' C): N_opt ~ C^{iso.N_opt.params['b']:.3f}, "
            f"D_opt ~ C^{iso.D_opt.params['b']:.3f}"
        )
    if fit.envelope is not None and not isinstance(fit.envelope, Skipped):
        yield f"envelope (Approach 1, runs' C): N_opt ~ C^{fit.envelope.N_opt_law.params['b']:.3f}"


def check_lines(fit: SweepFit) -> Iterator[str]:
    ext = fit.extrapolation
    if isinstance(ext, Skipped):
        return
    yield (
        f"extrapolation check: {ext.law.law['law']} (chosen on the {ext.n_fit} runs in the fit) predicted the "
        f"{len(ext.held_out)} largest by {ext.by}: mean |error| {ext.mean_abs_rel_error:.2%}, max {ext.max_abs_rel_error:.2%}"
    )
    shown = ext.held_out
    if len(shown) > HELD_OUT_SHOWN:  # thousands of lines nobody reads (20,000: ~18 s of printing)
        shown = sorted(shown, key=lambda h: -abs(h.rel_error))[:HELD_OUT_SHOWN]
        yield f"  the {HELD_OUT_SHOWN} worst predicted of the {len(ext.held_out):,} held-out runs (every one in --json):"
    for h in shown:
        run = f"; a run's loss: {_ci(h.L_pred_pi, '.4f').strip()}" if h.L_pred_pi else ""
        pred = f"{h.L_pred:.4f}{_ci(h.L_pred_ci, '.4f')}"
        yield f"  N = {h.N:,.0f}, D = {h.D:,.0f}: L = {h.L:.4f}, predicted {pred} ({h.rel_error:+.2%}){run}"


def prediction_lines(fit: SweepFit) -> Iterator[str]:
    for p in fit.predictions:
        at = (
            f"C_6ND = {p.C_6ND:.3g}"
            if p.C_6ND is not None
            else f"N = {p.N:.3g}, D = {p.D:.3g}" + ("" if p.U is None else f", U = {p.U:.3g}")
        )
        parts = [
            _estimate(k, e)
            for k, e in (("N_opt", p.N_opt), ("D_opt", p.D_opt), ("tokens_per_param", p.tokens_per_param), ("L", p.L))
            if e is not None
        ]
        run = f"; a run's loss: {_ci(p.L_pi).strip()}" if p.L_pi else ""
        yield f"predict at {at} ({p.law}): " + ", ".join(parts) + run


def hyper_lines(hyper: Hyperparameters) -> Iterator[str]:
    edge = sum(not c.lr_interior for c in hyper.cells)
    yield (
        f"tuned {', '.join(hyper.axes)}: {len(hyper.cells)} cells (N, D), each fitted at its best"
        + (f"; {edge} with lr* at the edge of grid.lr (widen it there)" if edge else "")
    )
    for name, law in hyper.laws.items():
        if isinstance(law, Skipped):
            yield f"  {name}: skipped, {law.skipped}"
            continue
        parts = [f"{k} = {v:.3f}{_ci(law.ci.get(k), '.3f')}" for k, v in law.params.items() if k.startswith("b")]
        yield f"  {law.form}: a = {law.params['a']:.3g}, " + ", ".join(parts) + f" ({law.n_points} cells)"


def _task_lines(name: str, t: TaskFit) -> Iterator[str]:
    ext = t.extrapolation
    if isinstance(ext, Skipped):
        why = t.two_step.skipped if isinstance(t.two_step, Skipped) else ext.skipped
        yield f"  {name}: two-step law not fitted: {why}"
    else:
        single = "" if ext.single_step_mean_abs_error_points is None else f", {ext.single_step_mean_abs_error_points:.1f} (single-step)"
        yield f"  {name}: held-out runs' acc off by {ext.mean_abs_error_points:.1f} points on average (two-step){single}"
        for h in ext.held_out:
            yield f"    N = {h.N:,.0f}, D = {h.D:,.0f}: acc {h.acc:.3f}, predicted {h.acc_pred:.3f}{_ci(h.acc_pred_ci, '.3f')}"
    if not isinstance(t.emergence, Skipped):
        yield f"    emergence: {t.emergence.verdict}"


def task_lines(tasks: TaskReport) -> Iterator[str]:
    yield (f"tasks ({tasks.shots}-shot, {tasks.strategy} demonstrations; {len(tasks.held_out)} run(s) held out of the task laws):")
    for name, t in tasks.tasks.items():
        yield from _task_lines(name, t)
    for name, s in tasks.strategy_vs_scale.items():
        yield from (f"  {name}, {sp.shots}-shot: {sp.finding}" for sp in s.spread if isinstance(sp, Spread))


def lines(fit: SweepFit) -> Iterator[str]:
    """Everything in the fit, as printed."""
    return map(escape, _lines(fit))


def _lines(fit: SweepFit) -> Iterator[str]:
    if fit.hyperparameters is not None:
        yield from hyper_lines(fit.hyperparameters)
    yield from law_lines(fit)
    if fit.laws is not None:
        yield from table_lines(fit.laws)
    if fit.curve_points is not None:
        yield curve_points_line(fit.curve_points)
    yield from approach_lines(fit)
    yield from check_lines(fit)
    yield from prediction_lines(fit)
    if fit.tasks is not None:
        yield from task_lines(fit.tasks)
