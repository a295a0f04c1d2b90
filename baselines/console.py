"""What a baseline run writes for a person to read: d3rlpy imported quietly, and progress that suits its output.

- `import_d3rlpy()` imports d3rlpy without the "Gym has been unmaintained" banner (d3rlpy imports the old
  `gym` package, which prints it to stderr on import) and makes d3rlpy's structlog output quiet
  (warnings and errors only), on stderr (stdout stays for results), and plain text unless stderr is a
  terminal (no ANSI colour codes in a pipe or log file; `NO_COLOR` turns them off everywhere).
- `Progress` is a tqdm bar on a terminal (or in a notebook); written to a pipe or a log file it becomes
  one plain line every `interval` seconds and one at the end, never carriage-return redraws.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from typing import Any, TextIO

_configured = False


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _import_gym_without_banner() -> None:
    """Import the old `gym` package (d3rlpy needs it) with its deprecation banner dropped, nothing else."""
    if "gym" in sys.modules:
        return
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            import gym
    except ImportError:  # d3rlpy's own import then raises the real error
        sys.stderr.write(buf.getvalue())
        return
    text = buf.getvalue()
    try:
        from gym_notices import notices

        banner = notices.notices.get(gym.__version__)
    except (ImportError, AttributeError):
        banner = None
    if banner:
        text = text.replace(banner + "\n", "", 1)
    if text:
        sys.stderr.write(text)


def import_d3rlpy():
    """The d3rlpy module, imported (and its logging configured) quietly; see the module docstring."""
    global _configured
    if "d3rlpy" not in sys.modules:
        _import_gym_without_banner()
    import d3rlpy

    if not _configured:
        import structlog

        colors = is_terminal(sys.stderr) and not os.environ.get("NO_COLOR")
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.StackInfoRenderer(),
                structlog.dev.set_exc_info,
                structlog.processors.format_exc_info,
                structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M.%S", utc=False),
                structlog.dev.ConsoleRenderer(colors=colors),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        _configured = True
    return d3rlpy


class Progress:
    """A progress display: tqdm on a terminal or in a notebook, periodic plain lines anywhere else.

    The same calls either way: `update(n)`, `set_postfix(dict)`, `set_description(str)`, `close()`.
    """

    def __init__(self, total: int, desc: str = "", *, enabled: bool = True, file: TextIO | None = None,
                 interval: float = 60.0):
        self.total, self.desc, self.enabled, self.interval = int(total), desc, enabled, float(interval)
        self.file = file
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._bar = None
        stream = sys.stderr if file is None else file
        if enabled and (is_terminal(stream) or "ipykernel" in sys.modules):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, file=file, leave=False, dynamic_ncols=True)
        self._t0 = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self.postfix = dict(postfix)
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._line()
            self.enabled = False  # one final line, however often close is called

    def _line(self) -> None:
        self._last = time.monotonic()
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        stream = sys.stderr if self.file is None else self.file
        print(f"{self.desc}: {self.n}/{self.total}{pct}, {self._last - self._t0:.0f} s{extra}", file=stream,
              flush=True)
