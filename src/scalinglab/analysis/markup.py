"""HTML built from values, for the self-contained pages (report.html, `compare --html`): every
text and every attribute value is escaped and every attribute quoted, so nothing the page did not
write itself (a run id, a task name, a sweep or group name, a value read from fit.json or
summary.json) can become markup. Besides: the pages' shared head (style and a Content-Security-Policy
that forbids scripts), and the numbers, tables and embedded figures both pages write. No JAX."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

VOID = frozenset({"meta", "img"})  # the elements of the page with no closing tag


class Markup(str):
    """Text that is already HTML: built by tag() or join(), or a constant of the page's own."""

    __slots__ = ()


def text(value: object) -> Markup:
    """A value as HTML: Markup as it is, anything else as escaped text."""
    return value if isinstance(value, Markup) else Markup(escape(str(value), quote=True))


def join(*parts: object) -> Markup:
    return Markup("".join(text(p) for p in parts))


def tag(name: str, *children: object, **attrs: object) -> Markup:
    """<name a="v">children</name>. Attribute names are the page's own keywords (a trailing _ is
    dropped: class_; _ is -: http_equiv); every value is escaped and quoted, None leaves it out."""
    written = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"' for k, v in attrs.items() if v is not None)
    opening = f"<{name}{written}>"
    return Markup(opening if name in VOID else opening + join(*children) + f"</{name}>")


STYLE = Markup("""body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:3px 9px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.done{color:#17803d}.failed,.diverged,.damaged{color:#b42318}section.run{display:inline-block;margin:0 1em 1em 0}
code{background:#f4f4f4;padding:0 3px}""")
# No script, no request: the page's own style and images in data: URLs only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def document(title: str, *body: object) -> str:
    """A whole page: every page gets the same head, so none can loosen the policy on its own."""
    head = tag(
        "head",
        tag("meta", charset="utf-8"),
        tag("meta", http_equiv="Content-Security-Policy", content=CSP),
        tag("title", title),
        tag("style", STYLE),
    )
    return "<!doctype html>" + tag("html", head, tag("body", *body), lang="en") + "\n"


def table(header: list[str], rows: list[list]) -> Markup:
    return tag("table", tag("tr", *(tag("th", h) for h in header)), *(tag("tr", *(tag("td", c) for c in row)) for row in rows))


def num(x: object, fmt: str = ".4g") -> str:
    """A number as the page writes it; a value that is not a number is shown as it is."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return format(x, fmt) if isinstance(x, int | float | np.number) else str(x)


def pct(x: object, fmt: str = ".2f") -> str:
    """A fraction as a percentage."""
    return num(100 * x, fmt) + "%" if isinstance(x, int | float | np.number) and np.isfinite(x) else num(x)


def interval(ci: tuple[float, float] | None, fmt: str = ".4g") -> str:
    return f"[{num(ci[0], fmt)}, {num(ci[1], fmt)}]" if ci else ""


def figure(data: bytes, alt: str, caption: str) -> Markup:
    """A PNG embedded as a data: URL, the only image source the policy allows (no file beside the page)."""
    src = f"data:image/png;base64,{base64.b64encode(data).decode()}"
    return tag("figure", tag("img", alt=alt, src=src), tag("figcaption", caption))
