"""HTML built from values, for report.html: every text and every attribute value is escaped and
every attribute quoted, so nothing the page did not write itself (a run id, a task name, a value
read from fit.json or summary.json) can become markup. No JAX."""

from __future__ import annotations

from html import escape

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
