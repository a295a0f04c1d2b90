"""What a baseline run writes for a person to read: d3rlpy imported quietly, and progress that suits its output.

- `import_d3rlpy()` imports d3rlpy without the "Gym has been unmaintained" banner (d3rlpy imports the old
  `gym` package, which prints it to stderr on import) and makes d3rlpy's structlog output quiet
  (warnings and errors only), on stderr (stdout stays for results), and plain text unless stderr is a
  terminal (no ANSI colour codes in a pipe or log file; `NO_COLOR` turns them off everywhere).
- Progress lives in `ogdata.progress` (one implementation for ogdata and baselines): a tqdm bar on a terminal; in a pipe or
  a log file it becomes one plain line a minute and one at the end, never carriage-return redraws.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

from ogdata.progress import is_terminal

_configured = False


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

