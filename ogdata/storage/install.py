"""Installing a finished dataset folder under its final name: one process at a time, all or nothing.

Whoever brings a dataset in (a Hub download, a rebuild from its recipe) builds it under a hidden
sibling name, verifies it there, and calls `install` while holding `install_lock(final)`; readers
only ever see a complete, verified folder or none. The provenance record `SOURCE_FILE` beside
the data says where the copy came from (it is not part of the manifest).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ogdata.storage.format import SOURCE_FILE, write_json_atomic


def read_source(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record beside an installed dataset ({} if there is none or it is unreadable)."""
    f = Path(path) / SOURCE_FILE
    try:
        rec = json.loads(f.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return rec if isinstance(rec, dict) else {}


def write_source(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write the provenance record, stamped with the UTC time it was written."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_json_atomic(Path(path) / SOURCE_FILE, {**record, "time": stamp})


def install(staged: Path, final: Path) -> None:
    """Rename a verified staged dataset into place (replacing an old copy), durably."""
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if final.exists():
        trash = final.parent / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(final, trash)
    os.rename(staged, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def install_lock(final: Path, lock_dir: Path | None = None):
    """An acquired file lock for installing `final` (waits, saying so, while another process holds it).

    The lock file lives in `lock_dir` (default: beside `final`), so a failed attempt can leave the
    dataset tree untouched. Also removes what a process killed mid-install left behind.
    Release it with `.release()`.
    """
    from filelock import FileLock, Timeout

    if lock_dir is None:
        lock_dir, name = final.parent, f".{final.name}.lock"
    else:
        name = f"{final.parent.name}--{final.name}.lock"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / name))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"ogdata: waiting for another process installing {final.parent.name}/{final.name} ...",
              file=sys.stderr)
        lock.acquire()
    if final.parent.is_dir():
        for old in final.parent.glob(f".{final.name}.old-*"):
            shutil.rmtree(old, ignore_errors=True)
    return lock


def remove(final: Path, lock_dir: Path | None = None) -> bool:
    """Delete an installed dataset folder under its lock (renamed away first, so no reader sees half of it)."""
    lock = install_lock(final, lock_dir)
    try:
        if not final.exists():
            return False
        trash = final.parent / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        lock.release()
