"""The commands' warning lines, printed through rich: a run id, a path or a reason read from
results is shown letter for letter, never read as markup (a `[/]` in a path made rich fail).
Only rich, so that plan starts fast. No JAX."""

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


def warner(console: Console) -> Callable[[str], None]:
    """Prints one warning line: the word in yellow, the rest as it is."""
    return lambda line: console.print(f"[yellow]warning[/]: {escape(line)}")
