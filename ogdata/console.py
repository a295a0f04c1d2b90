"""Terminal output shared by the CLI and the profile/show commands: Rich consoles and escaping."""

from __future__ import annotations

import sys
from typing import Any


def console(stderr: bool = False):
    """A Rich console; soft-wrapped (no hard line breaks inside values) when not on a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, soft_wrap=not _tty(stream))


def _tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def esc(x: Any) -> str:
    """A value as literal text for Rich: markup such as '[/]' or '[link=...]' is shown, not interpreted."""
    from rich.markup import escape

    return escape(str(x))
