"""The documentation: the site builds with `mkdocs build --strict` (no broken link or anchor, no
page outside the navigation), its generated references name every key of the sweep schema and
every command and flag of the parser, the README stays a short front door whose links resolve, and
every whole sweep shown in the docs is one the schema accepts."""

from __future__ import annotations

import argparse
import enum
import html
import importlib.util
import logging
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from scalinglab.cli import build_parser
from scalinglab.sweep.read import parse
from scalinglab.sweep.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _models(annotation) -> tuple[list[type[BaseModel]], bool]:
    """Pydantic models inside an annotation, and whether inside a list (independent of the hook)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    found, listed = [], typing.get_origin(annotation) is list
    for arg in typing.get_args(annotation):
        models, inner = _models(arg)
        found += models
        listed = listed or (inner and bool(models))
    return found, listed and bool(found)


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        models, listed = _models(field.annotation)
        for sub in models:
            out += _field_paths(sub, f"{path}{'[]' if listed else ''}.")
    return out


def test_the_site_builds_strict_and_the_yaml_reference_names_every_key(site):
    page = html.unescape((site / "reference" / "yaml" / "index.html").read_text())
    paths = _field_paths(SweepSpec)
    assert {"train.lr", "launch.slurm.nodes", "grid.points[].shape.d_model", "eval.tasks[].test"} <= set(paths)
    missing = [p for p in paths if f"<code>{p}</code>" not in page]
    assert not missing, f"reference/yaml.md lacks {missing}"
    rows = 0
    for path, choices in _choices(SweepSpec):  # every declared choice comes through, Literal or Enum
        row = re.search(rf"<code>{re.escape(path)}</code>.*?</tr>", page, re.S).group(0)
        assert all(f"<code>{c}</code>" in row for c in choices), (path, choices, row)
        rows += 1
    assert rows >= 10


def _choices(model: type[BaseModel], prefix: str = "") -> list[tuple[str, list[str]]]:
    """(path, choices) of every field whose type is a Literal or an Enum (or a list or optional of one)."""
    out = []
    for name, field in model.model_fields.items():
        found, stack = [], [field.annotation]
        while stack:
            t = stack.pop()
            if typing.get_origin(t) is typing.Literal:
                found += [str(v) for v in typing.get_args(t)]
            elif isinstance(t, type) and issubclass(t, enum.Enum):
                found += [str(e.value) for e in t]
            else:
                stack += list(typing.get_args(t))
        if found:
            out.append((f"{prefix}{name}", found))
        models, listed = _models(field.annotation)
        for sub in models:
            out += _choices(sub, f"{prefix}{name}{'[]' if listed else ''}.")
    return out


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_cli_reference_names_every_command_and_flag(site):
    page = html.unescape((site / "reference" / "cli" / "index.html").read_text())
    sections = {m.group(1): m.group(2) for m in re.finditer(r"<h2[^>]*>scalinglab (\S+?)<(.*?)(?=<h2|\Z)", page, re.S)}
    verbs = _verbs(build_parser())
    assert {"plan", "run", "fit", "suggest", "plot"} <= set(verbs)
    assert set(sections) == set(verbs)
    for verb, parser in verbs.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for name in action.option_strings or [action.dest]:
                assert f"<code>{name}</code>" in sections[verb], f"reference/cli.md: {verb} lacks {name}"


def _links(markdown: str) -> list[str]:
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S))


def _anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub and MkDocs make them (lower case, punctuation dropped, - for spaces)."""
    heads = re.findall(r"^#+ (.+?)\s*$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h.lower())).strip("-") for h in heads}


def test_the_readme_is_a_short_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    links = [u for u in _links(text) if not re.match(r"^[a-z]+:", u)]
    assert any(u.startswith("docs/") for u in links)
    for url in links:
        path, _, anchor = url.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), f"README.md links to {url}, which does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target.read_text()), f"README.md links to {url}: no such heading"


def _sweeps_shown() -> list[tuple[str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"^```yaml\n(.*?)^```", page.read_text(), re.M | re.S):
            if block.startswith("name:"):
                out.append((page.name, block))
    return out


def test_every_whole_sweep_shown_in_the_docs_is_valid():
    shown = _sweeps_shown()
    assert len(shown) >= 5
    for page, block in shown:
        spec = parse(yaml.safe_load(block), origin=page)
        committed = ROOT / "sweeps" / f"{spec.name}.yaml"
        if committed.exists():  # shown as a committed sweep: the same sweep
            assert spec == parse(yaml.safe_load(committed.read_text()), origin=str(committed)), page


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prose_check_catches_a_renamed_key_or_flag_or_a_changed_default(caplog):
    hook = _hook()
    keys = hook.all_keys(SweepSpec)
    sections = {p.split(".")[0].replace("[]", "") for p, _ in hook.field_paths(SweepSpec) if p}
    flags = {v: {s for a in p._actions for s in a.option_strings} for v, (p, _) in hook.verbs(build_parser()).items()}
    good = "Set `train.lr`, `launch.slurm.nodes`, `grid.shapes[1].n_heads`; see `fit.json`, `data.sources`.\n" \
           "`scalinglab fit --csv FILE --map N=x` and\n\n```\n.venv/bin/scalinglab run x.yaml --results r\n```\n"
    defaults = hook.all_defaults(SweepSpec)
    good += "| `train.lr` | `3e-3` | x |\n| `eval.strategies` | `[random]` | x |\n| `train.schedule` | `cosine` | x |\n"
    with caplog.at_level(logging.WARNING):
        hook.check_prose(good, "good.md", keys, sections, flags)
        hook.check_defaults(good, "good.md", defaults)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    bad = "Set `train.learning_rate`.\n\n```\nscalinglab fit results/x --bootstraps 3\nscalinglab fitt x\n```\n"
    bad += "| `train.lr` | `1e-3` | x |\n| `train.schedule` | `wsd` | x |\n"
    with caplog.at_level(logging.WARNING):
        hook.check_prose(bad, "bad.md", keys, sections, flags)
        hook.check_defaults(bad, "bad.md", defaults)
    messages = " ".join(r.getMessage() for r in caplog.records)
    for wrong in ("train.learning_rate", "--bootstraps", "scalinglab fitt", "`train.lr` defaults", "`train.schedule` defaults"):
        assert wrong in messages, (wrong, messages)
