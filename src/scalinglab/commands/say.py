"""Lines the commands print through rich: text that came from the user or from files (run ids,
paths, names) is shown letter for letter, never read as markup (a `[/]` in a path made rich fail)."""

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


def warner(console: Console) -> Callable[[str], None]:
    """Prints one warning line: the word in yellow, the rest as it is."""
    return lambda line: console.print(f"[yellow]warning[/]: {escape(line)}")
