"""Progress bars that read well on a terminal and in a log file.

On a terminal: a normal tqdm bar. Written to a pipe or file (CI logs, `nohup`, `| tee`), tqdm's
carriage-return redraws would pile up on one line; there the bar prints a plain line at most
every `LOG_INTERVAL_S` seconds (and at the end) instead.
"""

from __future__ import annotations

import sys
from typing import Any

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file-like object that turns tqdm's '\\r' redraws into whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> int:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any):
    """A tqdm bar on stderr (over `iterable`, or updated by hand): live on a terminal, periodic plain
    lines elsewhere."""
    from tqdm.auto import tqdm

    if is_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=True, **kwargs)
    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=True, file=_Lines(sys.stderr), ascii=True,
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S * 4, dynamic_ncols=False, ncols=100,
                **kwargs)
