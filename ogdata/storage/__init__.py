"""The native zarr format, its writers, manifests and converters.

This layer knows nothing above it: writers, `create_dataset` and `from_hdf5` return the Path
of the folder they wrote (`ogdata.writing` opens it as a Dataset for the public API). zarr is
imported on first read or write, not with ogdata.

Verification policy (storage.integrity): every open checks metadata.json (bounded, against its
own digest) and the presence and size of every manifest file; the full sha256 runs once per
installed copy and is remembered (`ensure_verified`), and always on `verify`.
"""

from __future__ import annotations

from ogdata.storage.collector import DatasetWriter
from ogdata.storage.create import create_dataset
from ogdata.storage.format import (
           METADATA_FILE,
           OBS_KEYS,
           STEP_KEYS,
           read_metadata,
           update_metadata,
           validate_metadata,
)
from ogdata.storage.integrity import ensure_verified, verify
from ogdata.storage.manifest import build_manifest, verify_files

__all__ = ["METADATA_FILE", "OBS_KEYS", "STEP_KEYS", "DatasetWriter", "build_manifest", "create_dataset",
           "ensure_verified", "read_metadata", "update_metadata", "validate_metadata", "verify", "verify_files"]
