"""The native zarr format, its writers, manifests and converters."""

from __future__ import annotations

import os

from ogdata.storage.collector import DatasetWriter
from ogdata.storage.create import create_dataset
from ogdata.storage.format import read_metadata, update_metadata, validate_metadata
from ogdata.storage.manifest import build_manifest, verify_files


def verify(path: str | os.PathLike) -> dict:
    """Check every file of the dataset at `path` against its manifest; returns the metadata.

    Raises IntegrityError naming the first missing, unexpected, truncated or corrupted file.
    """
    meta = read_metadata(path)
    verify_files(path, meta["manifest"])
    return meta


__all__ = ["DatasetWriter", "build_manifest", "create_dataset", "read_metadata", "update_metadata",
           "validate_metadata", "verify", "verify_files"]
