"""Progress that reads well on a terminal and in a log file (one implementation for ogdata and baselines).

On a terminal (or in a notebook): a tqdm bar. Written to a pipe or a file (CI logs, `nohup`, `| tee`),
tqdm's carriage-return redraws would pile up on one line; there `Progress` prints one plain line at
most every `interval` seconds (default a minute) and one at the end instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

LOG_INTERVAL_S = 60.0


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A progress display: tqdm on a terminal or in a notebook, periodic plain lines anywhere else.

    The same calls either way: iterate it (over `iterable`), or `update(n)`; `set_postfix(dict or
    key=value)`, `set_description(str)`, `write(str)`, `close()`.
    """

    def __init__(self, total: int | None = None, desc: str = "", *, iterable: Iterable | None = None,
                 unit: str = "it", enabled: bool = True, file: TextIO | None = None,
                 interval: float = LOG_INTERVAL_S, leave: bool = False):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.enabled, self.interval = total, desc, enabled, float(interval)
        self.iterable, self.file, self.unit = iterable, file, unit
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._bar = None
        if enabled and (is_terminal(self._stream()) or "ipykernel" in sys.modules):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, file=file, leave=leave, unit=unit, unit_scale=True,
                             dynamic_ncols=True)
        self._t0 = self._last = time.monotonic()

    def _stream(self) -> TextIO:
        return sys.stderr if self.file is None else self.file

    def __iter__(self) -> Iterator[Any]:
        try:
            for x in self.iterable if self.iterable is not None else ():
                yield x
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, postfix: dict[str, Any] | None = None, refresh: bool = False, **kwargs: Any) -> None:
        """Values shown after the count; never a line of their own (they ride on the next one)."""
        self.postfix = {**(postfix or {}), **kwargs}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=refresh)

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def write(self, text: str) -> None:
        """A message line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.file)
        else:
            print(text, file=self._stream(), flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._line()
            self.enabled = False  # one final line, however often close is called

    def _line(self) -> None:
        self._last = time.monotonic()
        count = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n} {self.unit}"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {count}, {self._last - self._t0:.0f} s{extra}", file=self._stream(), flush=True)


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 leave: bool = True) -> Progress:
    """A `Progress` on stderr, over `iterable` or updated by hand."""
    return Progress(total, desc, iterable=iterable, unit=unit, leave=leave)
