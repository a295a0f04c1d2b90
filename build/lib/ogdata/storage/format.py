"""The native dataset format: metadata.json + a zarr v3 store, and its validation.

Layout (N transitions, E episodes, T+1 observations per episode):
    metadata.json
    data/                       zarr v3 group, one sharded array per name
        observations (N+E, ...)   states (N+E, ...) [multi-agent]
        actions (N, ...)  rewards, terminations, truncations (N,) or (N, n_agents)
        episode_lengths (E,)
Multi-agent arrays put the agent axis right after time.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ogdata.errors import DatasetNotFoundError, FormatVersionError, MetadataError

FORMAT = "ogdata"
FORMAT_VERSION = 1
DATA_DIR = "data"
METADATA_FILE = "metadata.json"
SOURCE_FILE = ".ogdata-source.json"   # provenance of an installed copy (storage/install.py); not in the manifest
CARD_FILE = "README.md"               # the dataset card beside the data; not in the manifest
OBS_KEYS = ("observations", "states")          # T+1 per episode
STEP_KEYS = ("actions", "rewards", "terminations", "truncations")  # T per episode
REQUIRED_KEYS = ("format", "format_version", "observation_space", "action_space", "num_transitions",
                 "num_episodes", "multi_agent", "arrays", "manifest")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate metadata.json of the dataset directory `path`."""
    p = Path(path)
    f = p / METADATA_FILE
    if not p.exists():
        raise DatasetNotFoundError(f"no dataset at {str(p)!r}: the path does not exist; check it, or pass "
                                   "a dataset id such as 'portfolio-synth/good-v0'")
    if not f.is_file():
        raise DatasetNotFoundError(f"{str(p)!r} is not an ogdata dataset: {METADATA_FILE} is missing")
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MetadataError(f"{f}: not valid JSON ({e}); re-download or regenerate the dataset") from e
    validate_metadata(meta, where=str(f))
    return meta


def validate_metadata(meta: Any, where: str = "metadata") -> None:
    """Raise MetadataError (or FormatVersionError) if `meta` is not a valid ogdata metadata dict."""
    if not isinstance(meta, dict):
        raise MetadataError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise MetadataError(f"{where}: 'format' is {meta.get('format')!r}, expected {FORMAT!r}; "
                            "this is not an ogdata dataset")
    v = meta.get("format_version")
    if not isinstance(v, int) or v > FORMAT_VERSION or v < 1:
        raise FormatVersionError(f"{where}: format_version {v!r} is not supported (this ogdata reads "
                                 f"version {FORMAT_VERSION}); upgrade ogdata (pip install -U ogdata)")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise MetadataError(f"{where}: missing required keys {missing}; the file is incomplete — "
                            "re-download or regenerate the dataset")
    for k in ("num_transitions", "num_episodes"):
        if not isinstance(meta[k], int) or meta[k] < 0:
            raise MetadataError(f"{where}: {k} must be a non-negative integer, got {meta[k]!r}")
    if not isinstance(meta["arrays"], dict) or "actions" not in meta["arrays"]:
        raise MetadataError(f"{where}: 'arrays' must describe at least 'actions'")
    from ogdata.errors import IntegrityError
    from ogdata.storage.manifest import check_manifest_paths

    try:
        check_manifest_paths(meta["manifest"])
    except IntegrityError as e:
        raise MetadataError(f"{where}: {e}") from e
    for name, desc in meta["arrays"].items():
        if not isinstance(desc, dict) or "shape" not in desc or "dtype" not in desc:
            raise MetadataError(f"{where}: arrays[{name!r}] must have 'shape' and 'dtype'")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, and rename over `path`: never half-written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """JSON (sorted keys, no NaN) written with `write_bytes_atomic`."""
    write_bytes_atomic(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def update_metadata(path: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into a dataset's metadata.json atomically (measures, baselines, card info).

    The manifest covers the data files, not metadata.json, so this never invalidates it;
    array descriptions, counts and the manifest itself cannot be changed this way.
    """
    frozen = {"format", "format_version", "arrays", "manifest", "num_transitions", "num_episodes"}
    bad = frozen & set(fields)
    if bad:
        raise MetadataError(f"update_metadata cannot change {sorted(bad)}; they describe the stored arrays")
    meta = read_metadata(path)
    meta.update(fields)
    validate_metadata(meta)
    write_json_atomic(Path(path) / METADATA_FILE, meta)
    return meta
