"""What opening a dataset checks, and the remembered full check.

The policy (the README states it):
- every open (`Dataset(path)`, `ogdata.load`): metadata.json is bounded, parsed and checked
  against its own digest; every file of the manifest must exist as a plain file of its recorded
  size (one stat each); a missing or truncated file is an IntegrityError naming it;
- once per installed copy: the full sha256 of every file against the manifest. The result is
  remembered in `.ogdata-verified.json` beside the data, keyed by the manifest's digest and every
  file's (size, mtime, inode): touching, replacing or copying a file makes the next open hash
  again. Writers (create_dataset, DatasetWriter, generate) and `verify` leave the stamp, so a
  dataset ogdata just wrote or downloaded is not hashed twice. Where the folder is read-only the
  result is remembered for the process only;
- `verify(path)` (`ogdata verify`): always the full check, plus files that are not in the manifest;
- reading: a shard that is missing, shorter than its index says or fails to decode is an
  IntegrityError naming the file, never zeros (zarr's fill value) or zarr's own message.
A byte flipped after the remembered check, with the file's size and mtime restored, is found by
`verify` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ogdata.errors import IntegrityError
from ogdata.storage.format import DIGEST_KEY, canonical_json, read_metadata, write_bytes_atomic
from ogdata.storage.manifest import VERIFIED_FILE, check_present, verify_files

_remembered: set[tuple[str, str]] = set()   # (folder, key) verified in this process


def stamp_key(root: str | os.PathLike, manifest: Mapping[str, Any],
              stats: Mapping[str, os.stat_result] | None = None) -> str:
    """Digest of the manifest and of every file's (size, mtime_ns, inode): what a full check vouches for."""
    stats = stats if stats is not None else check_present(root, manifest)
    h = hashlib.sha256(canonical_json(manifest))
    for rel in sorted(stats):
        st = stats[rel]
        h.update(f"\n{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode())
    return h.hexdigest()


def remember_verified(root: str | os.PathLike, key: str) -> None:
    """Record that the files of `root` matched the manifest in the state `key` describes."""
    root = Path(root)
    _remembered.add((str(root.absolute()), key))
    try:
        write_bytes_atomic(root / VERIFIED_FILE, (json.dumps({"key": key}) + "\n").encode())
    except OSError:
        pass  # a read-only copy: remembered for this process only


def _stamped(root: Path, key: str) -> bool:
    if (str(root.absolute()), key) in _remembered:
        return True
    try:
        f = root / VERIFIED_FILE
        if f.stat().st_size > 4096:
            return False
        return json.loads(f.read_bytes()).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def check_open(path: str | os.PathLike, meta: Mapping[str, Any], full: bool = True) -> None:
    """What every open checks: presence and size of each manifest file; with `full`, the sha256 of
    every file unless a valid stamp says this copy was already checked (then remembered)."""
    root = Path(path)
    manifest = meta["manifest"]
    stats = check_present(root, manifest)
    if not full:
        return
    key = stamp_key(root, manifest, stats)
    if _stamped(root, key):
        return
    verify_files(root, manifest)
    remember_verified(root, key)


def ensure_verified(path: str | os.PathLike) -> dict[str, Any]:
    """The full check once per installed copy (remembered); cheap presence/size checks after that.

    What a resolver calls before handing a folder to `Dataset`. Returns the metadata.
    """
    meta = read_metadata(path)
    check_open(path, meta, full=True)
    return meta


def verify(path: str | os.PathLike, remember: bool = True) -> dict[str, Any]:
    """Check every file of the dataset at `path` against its manifest now; returns the metadata.

    Raises IntegrityError naming the first missing, unexpected, truncated or corrupted file, or
    an edited metadata.json. Warns when metadata.json predates its digest (not covered).
    """
    root = Path(path)
    meta = read_metadata(root)
    verify_files(root, meta["manifest"])
    if DIGEST_KEY not in meta:
        warnings.warn(f"{root}: metadata.json has no {DIGEST_KEY} (written before ogdata covered it), so edits "
                      "to it cannot be detected; the data files match the manifest. Regenerate or re-download "
                      "the dataset to cover it", UserWarning, stacklevel=2)
    if remember:
        remember_verified(root, stamp_key(root, meta["manifest"]))
    return meta


def name_bad_file(root: str | os.PathLike, manifest: Mapping[str, Any], rels: list[str], what: str,
                  cause: BaseException | None = None) -> IntegrityError:
    """An IntegrityError naming which of `rels` is missing or corrupted (hashing them), for a read
    that failed with `cause`."""
    from ogdata.storage.manifest import first_mismatch

    root = Path(root)
    known = [r for r in rels if r in manifest]
    for r in known:
        if not (root / r).is_file():
            return IntegrityError(f"{root}: file {r!r} listed in the manifest is missing; re-download or "
                                  "regenerate the dataset")
    bad = first_mismatch(root, manifest, known) if known else None
    if bad is not None:
        return IntegrityError(f"{root}: {bad[0]!r} is corrupted (its sha256 differs from the manifest) and "
                              f"{what} cannot be read; re-download or regenerate the dataset")
    detail = f" ({type(cause).__name__}: {str(cause)[:200]})" if cause is not None else ""
    return IntegrityError(f"{root}: {what} cannot be read{detail}; its files {known[:3] or rels[:3]} may be "
                          "corrupted — run `ogdata verify`, then re-download or regenerate the dataset")
