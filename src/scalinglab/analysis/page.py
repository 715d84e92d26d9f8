"""report.html: one self-contained page of a sweep (`scalinglab report`) that opens from disk with
no server and no script: the figures embedded as PNG data, the fitted laws with their intervals,
the held-out checks, and the run table, each run linked to its own loss curve (inline SVG). Built
from fit.json, figures/ and the runs' files; no JAX."""

from __future__ import annotations

import base64
import datetime
from html import escape

import numpy as np
import pandas as pd

from ..errors import InputError
from ..store.frame import load
from ..store.layout import SweepDir
from .parts import CI, Skipped
from .sweepfit import Extrapolation, MainLaw, SweepFit
from .taskfit import TaskExtrapolation
from .uncertainty import LOOSE

STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:3px 9px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.done{color:#17803d}.failed,.diverged,.damaged{color:#b42318}section.run{display:inline-block;margin:0 1em 1em 0}
code{background:#f4f4f4;padding:0 3px}"""


def report_page(sweep: SweepDir) -> str:
    if not sweep.fit_json.exists():
        raise InputError(f"{sweep.path}: no {sweep.fit_json.name}; run `scalinglab plot {sweep.path}` first")
    fit = SweepFit.read(sweep.fit_json)
    runs, evals = load(sweep.path), load(sweep.path, per_eval=True)
    body = [
        f"<h1>{escape(sweep.name)}</h1>",
        _counts(runs),
        _law(fit),
        _law_table(fit),
        _held_out(fit),
        _tasks(fit),
        _figures(sweep),
        _run_table(runs),
        _curves(evals),
    ]
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(sweep.name)}: scalinglab report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"


def _num(x, fmt: str = ".4g") -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, fmt)


def _ci(ci: CI | None, fmt: str = ".4g") -> str:
    return f"[{_num(ci[0], fmt)}, {_num(ci[1], fmt)}]" if ci else ""


def _counts(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    states = ", ".join(f"<span class={escape(str(k))}>{v} {escape(str(k))}</span>" for k, v in counts.items())
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"<p>{len(runs)} runs: {states}. Written {when} by <code>scalinglab report</code>.</p>"


def _law(fit: SweepFit) -> str:
    law = fit.law
    if not isinstance(law, MainLaw):
        return f"<h2>Fitted law</h2><p>Not fitted: {escape(law.skipped)}</p>"
    loose = law.loose  # None without a bootstrap: no column
    rows = [
        [escape(p), _num(v), _ci(law.ci.get(p))] + (["not pinned" if p in loose else ""] if loose is not None else [])
        for p, v in law.params.items()
    ]
    laws = [[escape(p.form), escape(p.at), _num(p.params["a"]), _num(p.params["b"])] for p in fit.power_laws]
    level = f"{law.level:.0%}"
    return (
        f"<h2>Fitted law</h2><p>{escape(law.law['law'])}: <code>{escape(law.form)}</code> over {law.n_points} runs "
        f"({escape(law.method)}, {level} bootstrap intervals over {law.n_bootstrap} resamples)</p>"
        + _table(["parameter", "value", f"{level} interval"] + ([f"reaches 0 or spans > {LOOSE:g}x"] if loose is not None else []), rows)
        + (_table(["power law", "along", "a", "b"], laws) if laws else "")
    )


def _law_table(fit: SweepFit) -> str:
    """Every candidate law: its backtest error by origin, the mean, AICc and residual scale."""
    choice = fit.laws
    if choice is None:
        return ""
    rows = []
    for c in choice.candidates:
        name = f"<b>{escape(c.name)}</b>" if c.name == choice.chosen else escape(c.name)
        if isinstance(c.fit, Skipped):
            rows.append([name, escape(c.fit.skipped)] + [""] * (len(choice.origins) + 2))
            continue
        errors = ["–" if e is None else f"{100 * e:.2f}%" for e in c.errors]
        rows.append([name, "–" if c.score is None else f"{100 * c.score:.2f}%", *errors, _num(c.aicc, ".1f"), _num(c.noise, ".2%")])
    heads = [f"{choice.by} ≤ {o.at:.3g} ({o.n_held} held)" for o in choice.origins]
    return (
        f"<h2>Laws of the loss</h2><p>Backtested: each fitted on the runs up to an origin of {escape(choice.by)}, the rest "
        f"predicted (mean |relative error|). Chosen: {escape(choice.why)}.</p>" + _table(["law", "mean", *heads, "AICc", "scatter"], rows)
    )


def _held_out(fit: SweepFit) -> str:
    ex = fit.extrapolation
    if not isinstance(ex, Extrapolation):
        return "<h2>Held-out check</h2><p>None: " + escape(ex.skipped) + "</p>"
    rows = [
        [_num(h.N, ",.0f"), _num(h.D, ",.0f"), _num(h.L), _num(h.L_pred), _ci(h.L_pred_ci), _ci(h.L_pred_pi), f"{100 * h.rel_error:+.2f}%"]
        for h in ex.held_out
    ]
    return (
        f"<h2>Held-out check</h2><p>{escape(ex.law.law['law'])}, chosen and fitted on {ex.n_fit} runs; the largest by "
        f"{escape(ex.by)} predicted: mean |error| {100 * ex.mean_abs_rel_error:.2f}%, max {100 * ex.max_abs_rel_error:.2f}%.</p>"
        + _table(["N", "D", "L", "predicted", "law's interval", "a run's interval", "error"], rows)
    )


def _tasks(fit: SweepFit) -> str:
    if fit.tasks is None:
        return ""
    rows = [
        [
            escape(name),
            _num(h.N, ",.0f"),
            _num(h.D, ",.0f"),
            _num(h.acc, ".3f"),
            _num(h.acc_pred, ".3f"),
            _ci(h.acc_pred_ci, ".3f"),
            f"{h.error_points:+.1f}",
        ]
        for name, t in fit.tasks.tasks.items()
        if isinstance(t.extrapolation, TaskExtrapolation)
        for h in t.extrapolation.held_out
    ]
    if not rows:
        return ""
    setting = f"{fit.tasks.shots}-shot, {escape(fit.tasks.strategy)} demonstrations"
    return (
        f"<h2>Task accuracy, held out</h2><p>{setting}: the two-step law (task loss from N and D, then accuracy "
        "from task loss) fitted without these runs.</p>" + _table(["task", "N", "D", "acc", "predicted", "interval", "points"], rows)
    )


def _figures(sweep: SweepDir) -> str:
    images = []
    for png in sorted(sweep.figures.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        images.append(
            f"<figure><img alt='{escape(png.stem)}' src='data:image/png;base64,{data}'><figcaption>{escape(png.name)}</figcaption></figure>"
        )
    return "<h2>Figures</h2>" + ("".join(images) or "<p>None: run <code>scalinglab plot</code>.</p>")


def _run_table(runs: pd.DataFrame) -> str:
    rows = []
    for r in runs.sort_values(["N", "D"]).to_dict("records") if len(runs) else []:
        status = escape(str(r["status"]))
        rows.append(
            [
                f"<a href='#run-{escape(r['run_id'])}'>{escape(r['run_id'])}</a>",
                _num(r.get("N"), ",.0f"),
                _num(r.get("D"), ",.0f"),
                _num(r.get("C"), ".3g"),
                f"<span class={status}>{status}</span>",
                _num(r.get("L")),
                _num(r.get("bpb")),
                _num(r.get("tokens_per_s"), ",.0f"),
            ]
        )
    return "<h2>Runs</h2>" + _table(["run", "N", "D", "C", "status", "L", "bpb", "tokens/s"], rows)


def _curves(evals: pd.DataFrame) -> str:
    if evals.empty:
        return ""
    parts = ["<h2>Loss curves</h2>"]
    for key, e in evals.sort_values(["N", "D", "step"]).groupby("run_id", sort=False):
        run_id = str(key)
        parts.append(
            f"<section class=run id='run-{escape(run_id)}'><h3>{escape(run_id)}</h3>"
            f"<p>N {e['N'].iloc[0]:,.0f}, D {e['D'].iloc[0]:,.0f}</p>{_svg(e['tokens'], e['L'])}</section>"
        )
    return "".join(parts)


def _svg(tokens, L, width: int = 260, height: int = 150) -> str:
    """Validation loss against tokens (log x), with the first and last values written in."""
    x, y = np.log10(np.asarray(tokens, float)), np.asarray(L, float)
    span = lambda v: (v - v.min()) / (np.ptp(v) or 1.0)  # noqa: E731  (a one-line helper, named where it is read)
    px, py = 30 + span(x) * (width - 40), 10 + (1 - span(y)) * (height - 40)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width={width} height={height} role=img>"
        f"<title>validation loss against tokens</title><polyline fill=none stroke='#1f6feb' stroke-width=2 points='{points}'/>"
        f"<text x=30 y={height - 8} font-size=11>L {y[0]:.3f} → {y[-1]:.3f} (log tokens)</text></svg>"
    )
