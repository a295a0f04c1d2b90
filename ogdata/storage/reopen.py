"""Reopening a shard source from its `spec()` in another process (a Ray worker, a training rank).

A spec says where the data is (a folder, a URL pinned to a commit, a window of episodes), never
what it holds, and carries the metadata digest seen when it was made: a worker that finds a
different dataset there stops with an IntegrityError rather than training on it.
"""

from __future__ import annotations

from typing import Any

from ogdata.errors import IntegrityError, InvalidArgumentError
from ogdata.storage.format import DIGEST_KEY
from ogdata.storage.remote import FsspecSource
from ogdata.storage.source import FolderSource, Source, WindowSource


def open_source(spec: dict[str, Any]) -> Source:
    """The source a `spec()` describes (in a worker process); IntegrityError if its metadata changed."""
    if not isinstance(spec, dict) or spec.get("kind") not in ("folder", "fsspec", "window"):
        raise InvalidArgumentError(f"not a source spec: {str(spec)[:200]}; pass what Source.spec() returned")
    kind = spec["kind"]
    if kind == "window":
        return WindowSource(open_source(spec["parent"]), *spec["episodes"])
    if kind == "folder":
        src: Source = FolderSource(spec["path"], mmap=bool(spec.get("mmap", False)))
    else:
        src = FsspecSource(spec["url"], storage_options=spec.get("storage_options"),
                           open_options=spec.get("open_options"), cache_dir=spec.get("cache_dir"),
                           cache_bytes=spec.get("cache_bytes"))
    want = spec.get("metadata_sha256")
    if want is not None and src.metadata.get(DIGEST_KEY) != want:
        raise IntegrityError(f"{src.where}: the dataset changed since it was opened (metadata digest "
                             f"{str(src.metadata.get(DIGEST_KEY))[:12]}…, expected {want[:12]}…); open it again")
    return src
