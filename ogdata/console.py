"""Terminal output shared by the CLI and the profile/show commands: Rich consoles and escaping."""

from __future__ import annotations

import sys
from typing import Any

from ogdata.progress import is_terminal


def console(stderr: bool = False):
    """A Rich console; soft-wrapped (no hard line breaks inside values) when not on a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, soft_wrap=not is_terminal(stream))


def esc(x: Any) -> str:
    """A value as literal text for Rich: markup such as '[/]' or '[link=...]' is shown, not interpreted."""
    from rich.markup import escape

    return escape(str(x))


def print_table(title: str, columns: list[str], rows: list[list[Any]], *, wrap_last: bool = True) -> None:
    """A table: drawn by Rich on a terminal; piped or redirected, tab-separated lines that keep every
    value whole (a '# title' line, then a header line), so `| grep` and `| cut` see complete ids."""
    if not is_terminal(sys.stdout):
        print(f"# {title}")
        print("\t".join(columns))
        for r in rows:
            print("\t".join(str(x) for x in r))
        return
    from rich.table import Table

    t = Table(title=esc(title))
    for i, c in enumerate(columns):
        last = i == len(columns) - 1
        t.add_column(esc(c), no_wrap=not (last and wrap_last), overflow="fold" if last else "ellipsis",
                     ratio=1 if last and wrap_last else None)
    for r in rows:
        t.add_row(*(esc(x) for x in r))
    console().print(t)
