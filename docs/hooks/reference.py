"""MkDocs hook (mkdocs.yml `hooks:`): the reference pages, written at build time from the code
itself so that they cannot drift, and two checks on the hand-written pages.

- reference/yaml.md: every field of the sweep schema (scalinglab.sweep.spec.SweepSpec and the
  sections under it, found by walking the models' fields, not from a list of names): its type,
  default, allowed values (from pydantic's JSON schema: Literal and Enum choices, bounds,
  patterns) and description (the field's docstring; Section sets use_attribute_docstrings).
- reference/cli.md: every verb of scalinglab.cli.build_parser(), its usage, arguments, choices,
  defaults and help, read from the parser's actions.
Both exist only in memory (File.generated): nothing generated is committed.

- A relative link from a page to a file outside docs/ (`../results/cpu-study/figures/x.png`,
  `../sweeps/slurm-example.yaml`), which GitHub shows as it stands, is served from `repo/` in the
  site, so figures are never copied into docs/.
- An inline code span naming a sweep key (`train.lr`, `launch.slurm.nodes`) must name a field of
  the schema, one naming a command (`scalinglab fit --csv FILE`) a verb and its flags, and a table
  row of a key and its default in code (| `train.lr` | `3e-3` |) the schema's default: a renamed key
  or flag, or a changed default, left in the prose is a warning, which `mkdocs build --strict`
  fails on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import posixpath
import re
import sys
import typing
from pathlib import Path

import yaml
from mkdocs.structure.files import File
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
REPO_PREFIX = "repo"  # where files outside docs/ that pages link to are served in the site
log = logging.getLogger("mkdocs.hooks.reference")


# ---------------------------------------------------------------- loading the code


def _fresh_scalinglab():
    """The checkout's own scalinglab, imported anew on every build (mkdocs serve rebuilds in one
    process: a changed schema or parser shows on the next build)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    for name in [m for m in sys.modules if m == "scalinglab" or m.startswith("scalinglab.")]:
        del sys.modules[name]
    spec = importlib.import_module("scalinglab.sweep.spec")
    cli = importlib.import_module("scalinglab.cli")
    return spec.SweepSpec, cli.build_parser()


# ---------------------------------------------------------------- the schema's fields


def submodels(annotation) -> tuple[list[type[BaseModel]], bool]:
    """The pydantic models inside a field's annotation (X, X | None, list[X], list[str | X], ...),
    and whether they sit inside a list (their path then reads `field[]`)."""
    found, in_list = [], False

    def walk(t, listed):
        nonlocal in_list
        if isinstance(t, type) and issubclass(t, BaseModel):
            found.append(t)
            in_list = in_list or listed
            return
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if origin is typing.Annotated:
            walk(args[0], listed)
            return
        for a in args:
            walk(a, listed or origin in (list, tuple, set, frozenset))

    walk(annotation, False)
    return found, in_list


def field_paths(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """(path, model) of every section, depth first: ("", SweepSpec), ("data", DataSpec), ...,
    ("grid.points[]", Point), ("grid.points[].shape", Shape)."""
    out = [(prefix, model)]
    for name, field in model.model_fields.items():
        models, listed = submodels(field.annotation)
        for sub in models:
            out += field_paths(sub, f"{prefix}{'.' if prefix else ''}{name}{'[]' if listed else ''}")
    return out


def all_keys(model: type[BaseModel]) -> set[str]:
    """Every field path, indices dropped (`grid.points.shape.d_model`), for the prose check."""
    keys = set()
    for path, section in field_paths(model):
        for name in section.model_fields:
            keys.add(f"{path}.{name}".lstrip(".").replace("[]", ""))
    return keys


# ---------------------------------------------------------------- markdown helpers


def cell(text: str) -> str:
    """Text for a table cell: one line; outside code spans `<`, `*` and `|` escaped."""
    parts = " ".join(str(text).split()).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace("*", r"\*").replace("|", r"\|")
    return "`".join(parts)


def code(value: str) -> str:
    """A code span (a `|` inside one does not split a table cell)."""
    value = str(value)
    fence = "``" if "`" in value else "`"
    return f"{fence}{value}{fence}"


def anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "top"


def yaml_value(value) -> str:
    """A default as it would be written in the YAML."""
    value = to_jsonable_python(value.model_dump(mode="json") if isinstance(value, BaseModel) else value)
    if isinstance(value, str) and value.strip() == value and value and yaml.safe_load(value) == value:
        return value  # plain: as written in YAML, unquoted
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, ensure_ascii=False)  # JSON is YAML too; quotes and escapes what needs them


# ---------------------------------------------------------------- types and allowed values


def _resolve(prop: dict, defs: dict) -> dict:
    ref = prop.get("$ref")
    return defs.get(ref.rsplit("/", 1)[-1], prop) if ref else prop


def type_name(prop: dict, defs: dict) -> str:
    """A JSON-schema property as a short Python-like type."""
    if "$ref" in prop:
        target = _resolve(prop, defs)
        return "str" if "enum" in target and all(isinstance(v, str) for v in target["enum"]) else (
            prop["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " | ".join(type_name(p, defs) for p in prop[key])
    if "enum" in prop or "const" in prop:
        values = prop.get("enum", [prop.get("const")])
        return "str" if all(isinstance(v, str) for v in values) else "value"
    kind = prop.get("type")
    if kind == "array":
        return f"list[{type_name(prop.get('items', {}), defs)}]"
    if kind == "object":
        extra = prop.get("additionalProperties")
        return f"dict[str, {type_name(extra, defs)}]" if isinstance(extra, dict) else "mapping"
    return {"number": "float", "integer": "int", "string": "str", "boolean": "bool", "null": "null"}.get(kind, "any")


_BOUNDS = (("minimum", "≥"), ("ge", "≥"), ("exclusiveMinimum", ">"), ("gt", ">"),
           ("maximum", "≤"), ("le", "≤"), ("exclusiveMaximum", "<"), ("lt", "<"))


def allowed(prop: dict, defs: dict, each: str = "") -> list[str]:
    """Choices and bounds of a property, through unions and list items."""
    prop = _resolve(prop, defs)
    out = []
    if "enum" in prop:
        out.append(each + "one of " + ", ".join(code(v) for v in prop["enum"]))
    if "const" in prop:
        out.append(each + code(prop["const"]))
    bounds = [f"{sign} {prop[key]:g}" for key, sign in _BOUNDS if isinstance(prop.get(key), (int, float))]
    if bounds:
        out.append(each + ", ".join(bounds))
    if "pattern" in prop:
        out.append(each + "matches " + code(prop["pattern"]))
    for key, word in (("minLength", "at least {} characters"), ("maxLength", "at most {} characters"),
                      ("minItems", "at least {} item(s)"), ("maxItems", "at most {} item(s)")):
        if key in prop:
            out.append(each + word.format(prop[key]))
    for key in ("anyOf", "oneOf"):
        for p in prop.get(key, []):
            if "$ref" not in p or "enum" in _resolve(p, defs):
                out += allowed(p, defs, each)
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        out += allowed(prop["items"], defs, "each: ")
    return out


# ---------------------------------------------------------------- the YAML reference page


def _default(field, section_link: str | None) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel) and section_link:
        return f"see [below]({section_link})"
    if value is None:
        return "not set"
    return code(yaml_value(value))


def section_table(path: str, model: type[BaseModel]) -> list[str]:
    try:
        schema = model.model_json_schema()
    except Exception as e:  # a type without a JSON schema: still list the fields
        log.info(f"reference: no JSON schema for {model.__name__} ({e}); types from annotations")
        schema = {}
    props, defs = schema.get("properties", {}), schema.get("$defs", {})
    lines = ["| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = f"{path}.{name}".lstrip(".")
        prop = props.get(name)
        models, listed = submodels(field.annotation)
        link = f"#{anchor(key + ('[]' if listed else ''))}" if models else None
        kind = type_name(prop, defs) if prop else str(field.annotation)
        if link:
            kind = f"[{cell(kind)}]({link})"
        else:
            kind = cell(kind)
        rules = "; ".join(allowed(prop, defs)) if prop else ""
        lines.append(f"| {code(key)} | {kind} | {_default(field, link)} | {cell(rules) or '–'} | "
                     f"{cell(field.description or '') or '–'} |")
    return lines


def yaml_page(sweep_model: type[BaseModel]) -> str:
    lines = [
        "# Sweep YAML reference",
        "",
        f"Generated when the site is built from the schema, `{sweep_model.__module__}.{sweep_model.__name__}`,",
        "and the sections under it: every key, its type, default, allowed values and the field's own",
        "docstring. For how to write a sweep, with examples and notes on each key, see",
        "[Writing a sweep](../sweeps.md). A key ending in `[]` is a list of such entries.",
        "",
    ]
    for path, model in field_paths(sweep_model):
        title = path or "top level"
        lines += [f"## {title} {{ #{anchor(path)} }}", ""]
        doc = (model.__doc__ or "").strip()
        if doc and model.__doc__ is not BaseModel.__doc__ and not doc.startswith(f"{model.__name__}("):
            lines += [cell(doc), ""]
        lines += section_table(path, model) + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the CLI reference page


def verbs(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """verb -> (its parser, its one-line help), in the parser's order."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (sub, helps.get(name, ""))
    return out


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction))]


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    try:
        return parser._get_formatter()._expand_help(action) if action.help else ""
    except (KeyError, TypeError, ValueError):
        return action.help or ""


def argument_row(parser: argparse.ArgumentParser, a: argparse.Action) -> str:
    name = ", ".join(code(s) for s in a.option_strings) or code(a.metavar or a.dest)
    if not a.option_strings:
        value = "positional"
    elif a.nargs == 0:
        value = "flag"
    elif a.choices is not None:
        value = "one of " + ", ".join(code(c) for c in a.choices)
    else:
        kind = getattr(a.type, "__name__", "") if a.type else "str"
        value = code(a.metavar or a.dest.upper()) + (f" ({kind})" if kind and kind != "str" else "")
    if isinstance(a, argparse._AppendAction):
        value += ", repeatable"
    if a.required and a.option_strings:
        default = "required"
    elif not a.option_strings:
        default = "optional" if a.nargs == "?" else "required"
    elif a.default is None or a.default is False or a.default == [] or a.default == argparse.SUPPRESS:
        default = "–"
    else:
        default = code(a.default)
    return f"| {name} | {cell(value)} | {default} | {cell(_help(parser, a)) or '–'} |"


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=76)  # fits the page without scrolling
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def cli_page(parser: argparse.ArgumentParser) -> str:
    commands = verbs(parser)
    lines = [
        "# Command-line reference",
        "",
        "Generated when the site is built from the parser itself, `scalinglab.cli.build_parser()`:",
        "every command, its arguments, choices, defaults and help. Every command also takes",
        "`-h`, `--help`. What the commands do, with examples: [The command line](../commands.md).",
        "",
        "```",
        _usage(parser),
        "```",
        "",
        cell(parser.description or ""),
        "",
        "| command | does |",
        "| --- | --- |",
    ]
    lines += [f"| [`{v}`](#{anchor(v)}) | {cell(h)} |" for v, (_, h) in commands.items()]
    for verb, (sub, help_text) in commands.items():
        lines += ["", f"## scalinglab {verb} {{ #{anchor(verb)} }}", "", cell(help_text), "",
                  "```", _usage(sub), "```", "",
                  "| argument | value | default | help |", "| --- | --- | --- | --- |"]
        lines += [argument_row(sub, a) for a in arguments(sub)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- links out of docs/ and prose checks

LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
COMMAND = re.compile(r"(?:^|&&|;|\|)\s*(?:[\w./-]*/)?scalinglab\s+([a-z][a-z-]*)([^#\n]*)")  # at a command's place
FILE_SUFFIXES = {"json", "jsonl", "yaml", "yml", "py", "png", "html", "npy", "bin", "safetensors", "cc", "md",
                 "txt", "csv", "out", "err"}


def outside_links(markdown: str, page_uri: str) -> dict[str, str]:
    """link as written -> repository path, for the relative links of a page that leave docs/."""
    page_dir = posixpath.dirname(page_uri)
    out = {}
    for _, url, _ in LINK.findall(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", url):
            continue
        path = url.split("#", 1)[0]
        target = posixpath.normpath(posixpath.join("docs", page_dir, path))
        if not target.startswith("docs/") and not target.startswith("../"):
            out[url] = target
    return out


def _rewrite(markdown: str, page_uri: str, links: dict[str, str]) -> str:
    page_dir = posixpath.dirname(page_uri)

    def swap(m):
        url = m.group(2)
        if url not in links:
            return m.group(0)
        frag = url[len(url.split("#", 1)[0]):]
        new = posixpath.relpath(f"{REPO_PREFIX}/{links[url]}", page_dir or ".") + frag
        return m.group(1) + new + m.group(3)

    return LINK.sub(swap, markdown)


def all_defaults(model: type[BaseModel]) -> dict[str, object]:
    """Field path (indices dropped) -> default as JSON-like data, for fields that have one."""
    out = {}
    for path, section in field_paths(model):
        for name, field in section.model_fields.items():
            if not field.is_required():
                value = field.get_default(call_default_factory=True)
                value = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
                out[f"{path}.{name}".lstrip(".").replace("[]", "")] = to_jsonable_python(value)
    return out


def _same(written: str, default) -> bool:
    value = yaml.safe_load(written)
    if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            value = float(value)  # YAML 1.1 reads 3e-3 as a string
        except ValueError:
            return False
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, (int, float)):
        return float(value) == float(default)
    return value == default


ROW = re.compile(r"^\|\s*`([\w.\[\]]+)`\s*\|\s*`([^`|]*)`\s*\|", re.M)  # | `key` | `default` | ...


def check_defaults(markdown: str, page_uri: str, defaults: dict[str, object]) -> None:
    """A table row naming one key and one default in code must give the schema's default."""
    for key, written in ROW.findall(markdown):
        path = re.sub(r"\[[^\]]*\]", "", key)
        if path in defaults and not _same(written, defaults[path]):
            log.warning(f"{page_uri}: `{key}` defaults to {yaml_value(defaults[path])}, not `{written}` "
                        "(see reference/yaml.md)")


def is_module(parts: list[str]) -> bool:
    """`data.sources`, `launch.job`: a scalinglab module, whose package shares a section's name."""
    here = SRC / "scalinglab"
    return (here.joinpath(*parts).with_suffix(".py").is_file() or here.joinpath(*parts).is_dir()
            or here.joinpath(*parts[:-1]).with_suffix(".py").is_file())


def check_prose(markdown: str, page_uri: str, keys: set[str], sections: set[str], flags: dict[str, set[str]]) -> None:
    """Warn on sweep keys and scalinglab flags in code that the schema or the parser lacks."""
    spans = SPAN.findall(FENCE.sub("", markdown))
    for span in spans:
        token = span.strip().rstrip(":")
        if re.fullmatch(r"[A-Za-z_][\w]*(\[[^\]]*\])?(\.[A-Za-z_][\w-]*(\[[^\]]*\])?)+", token):
            parts = re.sub(r"\[[^\]]*\]", "", token).split(".")
            if (parts[0] in sections and parts[-1] not in FILE_SUFFIXES and ".".join(parts) not in keys
                    and not is_module(parts)):
                log.warning(f"{page_uri}: `{span}` is not a key of the sweep schema (see reference/yaml.md)")
    commands = spans + [line for m in FENCE.finditer(markdown) for line in m.group(0).splitlines()]
    for text in commands:
        for m in COMMAND.finditer(text):
            verb, rest = m.group(1), m.group(2)
            if verb not in flags:
                log.warning(f"{page_uri}: `scalinglab {verb}` is not a command (see reference/cli.md)")
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                if flag not in flags[verb]:
                    log.warning(f"{page_uri}: `scalinglab {verb}` has no flag {flag} (see reference/cli.md)")


# ---------------------------------------------------------------- the hook's events

_state: dict = {}


def on_files(files, config):
    sweep_model, parser = _fresh_scalinglab()
    commands = verbs(parser)
    _state["keys"] = all_keys(sweep_model)
    _state["defaults"] = all_defaults(sweep_model)
    _state["sections"] = {p.split(".")[0].replace("[]", "") for p, _ in field_paths(sweep_model) if p}
    _state["flags"] = {v: {s for a in sub._actions for s in a.option_strings} for v, (sub, _) in commands.items()}
    for uri, content in (("reference/yaml.md", yaml_page(sweep_model)), ("reference/cli.md", cli_page(parser))):
        files.append(File.generated(config, uri, content=content))
    _state["links"] = {}
    for f in list(files):
        if not f.src_uri.endswith(".md") or f.abs_src_path is None or not Path(f.abs_src_path).is_file():
            continue
        links = outside_links(Path(f.abs_src_path).read_text(encoding="utf-8"), f.src_uri)
        _state["links"][f.src_uri] = links
        for target in set(links.values()):
            source = ROOT / target
            uri = f"{REPO_PREFIX}/{target}"
            if source.is_file() and files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown, page, config, files):
    uri = page.file.src_uri
    if uri.startswith("reference/"):
        return markdown
    check_prose(markdown, uri, _state["keys"], _state["sections"], _state["flags"])
    check_defaults(markdown, uri, _state["defaults"])
    links = _state["links"].get(uri, {})
    return _rewrite(markdown, uri, links) if links else markdown
