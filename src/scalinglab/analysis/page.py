"""report.html: one self-contained page of a sweep (`scalinglab report`) that opens from disk with
no server and no script: the figures embedded as PNG data, the fitted laws with their intervals,
the held-out checks, and the run table, each run linked to its own loss curve (inline SVG). Built
from fit.json, figures/ and the runs' files; no JAX.

Every element is made by markup.tag, which escapes every value it is given: names, run ids, paths
and numbers read from files are the user's, and a page opened in a browser must not run them. A
Content-Security-Policy forbids scripts besides."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from ..errors import InputError
from ..store.files import NotARegularFile, read_bytes, report_damage
from ..store.frame import load
from ..store.layout import SweepDir
from .markup import Markup, document, figure, interval, join, num, pct, table, tag
from .parts import Skipped
from .sweepfit import Extrapolation, MainLaw, SweepFit
from .taskfit import TaskExtrapolation
from .uncertainty import LOOSE

PNG = b"\x89PNG\r\n\x1a\n"  # the signature every PNG file starts with


def report_page(sweep: SweepDir) -> str:
    if not sweep.fit_json.exists():
        raise InputError(f"{sweep.path}: no {sweep.fit_json.name}; run `scalinglab plot {sweep.path}` first")
    fit = SweepFit.read(sweep.fit_json)
    return page(sweep.name, fit, load(sweep.path), load(sweep.path, per_eval=True), figures(sweep))


def figures(sweep: SweepDir) -> dict[str, bytes]:
    """The PNG images in figures/ by file name: regular files only, never through a symlink out of
    the sweep and never blocking on a FIFO (store.files.read_bytes). Any other is left out of the
    page, named in one warning."""
    out = {}
    for path in sorted(sweep.figures.glob("*.png")):
        try:
            data = read_bytes(path, sweep.path)
        except NotARegularFile as e:
            report_damage(path, f"{e}; left out of the report")
            continue
        if data is not None and not data.startswith(PNG):
            report_damage(path, "not a PNG image; left out of the report")
        elif data is not None:
            out[path.name] = data
    return out


def page(name: str, fit: SweepFit, runs: pd.DataFrame, evals: pd.DataFrame, images: dict[str, bytes]) -> str:
    """The page of a sweep called `name`: its fit, runs (store.frame.load), evaluations
    (per_eval=True) and PNG figures by file name."""
    return document(
        f"{name}: scalinglab report",
        tag("h1", name),
        _counts(runs),
        _law(fit),
        _law_table(fit),
        _held_out(fit),
        _tasks(fit),
        _figures(images),
        _run_table(runs),
        _curves(evals),
    )


def _counts(runs: pd.DataFrame) -> Markup:
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    states = [tag("span", f"{v} {k}", class_=k) for k, v in counts.items()]
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return tag("p", f"{len(runs)} runs: ", *_commas(states), f". Written {when} by ", tag("code", "scalinglab report"), ".")


def _commas(parts: list[Markup]) -> list[Markup]:
    return [join(", ", p) if i else p for i, p in enumerate(parts)]


def _law(fit: SweepFit) -> Markup:
    law = fit.law
    if not isinstance(law, MainLaw):
        return join(tag("h2", "Fitted law"), tag("p", f"Not fitted: {law.skipped}"))
    loose = law.loose  # None without a bootstrap: no column
    rows = [
        [p, num(v), interval(law.ci.get(p))] + (["not pinned" if p in loose else ""] if loose is not None else [])
        for p, v in law.params.items()
    ]
    laws = [[p.form, p.at, num(p.params.get("a")), num(p.params.get("b"))] for p in fit.power_laws]
    level = num(law.level, ".0%")
    about = f" over {law.n_points} runs ({law.method}, {level} bootstrap intervals over {law.n_bootstrap} resamples)"
    return join(
        tag("h2", "Fitted law"),
        tag("p", f"{law.law.get('law')}: ", tag("code", law.form), about),
        table(["parameter", "value", f"{level} interval"] + ([f"reaches 0 or spans > {LOOSE:g}x"] if loose is not None else []), rows),
        table(["power law", "along", "a", "b"], laws) if laws else "",
    )


def _law_table(fit: SweepFit) -> Markup:
    """Every candidate law: its backtest error by origin, the mean, AICc and residual scale."""
    choice = fit.laws
    if choice is None:
        return Markup()
    rows: list[list] = []
    for c in choice.candidates:
        name = tag("b", c.name) if c.name == choice.chosen else c.name
        if isinstance(c.fit, Skipped):
            rows.append([name, c.fit.skipped] + [""] * (len(choice.origins) + 2))
            continue
        errors = [pct(e) for e in c.errors]
        rows.append([name, pct(c.score), *errors, num(c.aicc, ".1f"), num(c.noise, ".2%")])
    heads = [f"{choice.by} ≤ {num(o.at, '.3g')} ({o.n_held} held)" for o in choice.origins]
    why = (
        f"Backtested: each fitted on the runs up to an origin of {choice.by}, the rest predicted (mean |relative error|). "
        f"Chosen: {choice.why}."
    )
    return join(tag("h2", "Laws of the loss"), tag("p", why), table(["law", "mean", *heads, "AICc", "scatter"], rows))


def _held_out(fit: SweepFit) -> Markup:
    ex = fit.extrapolation
    if not isinstance(ex, Extrapolation):
        return join(tag("h2", "Held-out check"), tag("p", f"None: {ex.skipped}"))
    rows = [
        [
            num(h.N, ",.0f"),
            num(h.D, ",.0f"),
            num(h.L),
            num(h.L_pred),
            interval(h.L_pred_ci),
            interval(h.L_pred_pi),
            pct(h.rel_error, "+.2f"),
        ]
        for h in ex.held_out
    ]
    about = (
        f"{ex.law.law.get('law')}, chosen and fitted on {ex.n_fit} runs; the largest by {ex.by} predicted: "
        f"mean |error| {pct(ex.mean_abs_rel_error)}, max {pct(ex.max_abs_rel_error)}."
    )
    return join(
        tag("h2", "Held-out check"),
        tag("p", about),
        table(["N", "D", "L", "predicted", "law's interval", "a run's interval", "error"], rows),
    )


def _tasks(fit: SweepFit) -> Markup:
    if fit.tasks is None:
        return Markup()
    rows = [
        [
            name,
            num(h.N, ",.0f"),
            num(h.D, ",.0f"),
            num(h.acc, ".3f"),
            num(h.acc_pred, ".3f"),
            interval(h.acc_pred_ci, ".3f"),
            num(h.error_points, "+.1f"),
        ]
        for name, t in fit.tasks.tasks.items()
        if isinstance(t.extrapolation, TaskExtrapolation)
        for h in t.extrapolation.held_out
    ]
    if not rows:
        return Markup()
    about = (
        f"{fit.tasks.shots}-shot, {fit.tasks.strategy} demonstrations: the two-step law (task loss from N and D, then "
        "accuracy from task loss) fitted without these runs."
    )
    return join(
        tag("h2", "Task accuracy, held out"), tag("p", about), table(["task", "N", "D", "acc", "predicted", "interval", "points"], rows)
    )


def _figures(images: dict[str, bytes]) -> Markup:
    shown = [figure(data, name.removesuffix(".png"), name) for name, data in images.items()]
    return (
        join(tag("h2", "Figures"), *shown)
        if shown
        else join(tag("h2", "Figures"), tag("p", "None: run ", tag("code", "scalinglab plot"), "."))
    )


def _run_table(runs: pd.DataFrame) -> Markup:
    records = runs.sort_values(["N", "D"]).to_dict("records") if len(runs) else []
    rows = [
        [
            tag("a", r["run_id"], href=f"#run-{r['run_id']}"),
            num(r.get("N"), ",.0f"),
            num(r.get("D"), ",.0f"),
            num(r.get("C"), ".3g"),
            tag("span", r["status"], class_=r["status"]),
            num(r.get("L")),
            num(r.get("bpb")),
            num(r.get("tokens_per_s"), ",.0f"),
        ]
        for r in records
    ]
    return join(tag("h2", "Runs"), table(["run", "N", "D", "C", "status", "L", "bpb", "tokens/s"], rows))


def _curves(evals: pd.DataFrame) -> Markup:
    if evals.empty:
        return Markup()
    sections = [
        tag(
            "section",
            tag("h3", key),
            tag("p", f"N {num(e['N'].iloc[0], ',.0f')}, D {num(e['D'].iloc[0], ',.0f')}"),
            _svg(e["tokens"], e["L"]),
            class_="run",
            id=f"run-{key}",
        )
        for key, e in evals.sort_values(["N", "D", "step"]).groupby("run_id", sort=False)
    ]
    return join(tag("h2", "Loss curves"), *sections)


def _svg(tokens, L, width: int = 260, height: int = 150) -> Markup:
    """Validation loss against tokens (log x), with the first and last values written in."""
    x, y = np.log10(np.asarray(tokens, float)), np.asarray(L, float)
    span = lambda v: (v - v.min()) / (np.ptp(v) or 1.0)  # noqa: E731  (a one-line helper, named where it is read)
    px, py = 30 + span(x) * (width - 40), 10 + (1 - span(y)) * (height - 40)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return tag(
        "svg",
        tag("title", "validation loss against tokens"),
        tag("polyline", fill="none", stroke="#1f6feb", stroke_width=2, points=points),
        tag("text", f"L {y[0]:.3f} → {y[-1]:.3f} (log tokens)", x=30, y=height - 8, font_size=11),
        xmlns="http://www.w3.org/2000/svg",
        width=width,
        height=height,
        role="img",
    )
