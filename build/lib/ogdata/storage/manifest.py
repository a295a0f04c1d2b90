"""sha256 manifests: every file of a dataset, checked before anyone trusts it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ogdata.errors import IntegrityError

METADATA_FILE = "metadata.json"
# files that live beside a dataset but are not part of it (not in the manifest)
UNTRACKED = {METADATA_FILE, "README.md", ".ogdata-source.json"}


def sha256_file(path: str | os.PathLike, bufsize: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(bufsize)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def dataset_files(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every tracked file under root (sorted)."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            rel = Path(dirpath, f).relative_to(root).as_posix()
            if rel not in UNTRACKED and not f.startswith("."):
                out.append(rel)
    return sorted(out)


def build_manifest(root: str | os.PathLike, known: Mapping[str, tuple[str, int]] | None = None
                   ) -> dict[str, dict[str, object]]:
    """{relpath: {"sha256", "size"}} for every tracked file; hashes run in threads (hashlib drops the GIL).

    `known` holds digests computed while writing (same bytes), used when the size still matches.
    """
    root = Path(root)
    known = known or {}
    files = dataset_files(root)
    todo = [r for r in files if r not in known or known[r][1] != (root / r).stat().st_size]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
        fresh = dict(zip(todo, ex.map(lambda r: sha256_file(root / r), todo)))
    return {r: {"sha256": fresh[r] if r in fresh else known[r][0], "size": (root / r).stat().st_size}
            for r in files}


def check_manifest_paths(manifest: Mapping[str, object]) -> None:
    """Reject manifests naming paths outside the dataset (absolute, '..', backslashes, empty)."""
    if not isinstance(manifest, Mapping):
        raise IntegrityError("manifest must be a mapping {relative path: {sha256, size}}")
    for rel, entry in manifest.items():
        p = PurePosixPath(rel)
        if (not rel or rel.startswith("/") or "\\" in rel or p.is_absolute() or ".." in p.parts
                or any(part in ("", ".") for part in rel.split("/")) or ":" in p.parts[0]):
            raise IntegrityError(f"manifest names a path outside the dataset: {rel!r}; "
                                 "refusing to use this dataset (its metadata is malformed or malicious)")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise IntegrityError(f"manifest entry for {rel!r} lacks a sha256 hex digest")


def verify_files(root: str | os.PathLike, manifest: Mapping[str, Mapping[str, object]]) -> None:
    """Check every file against the manifest; raise IntegrityError naming the first bad file."""
    root = Path(root)
    check_manifest_paths(manifest)
    present = set(dataset_files(root))
    missing = sorted(set(manifest) - present)
    if missing:
        raise IntegrityError(f"{root}: file {missing[0]!r} listed in the manifest is missing "
                             f"({len(missing)} missing); re-download or regenerate the dataset")
    extra = sorted(present - set(manifest))
    if extra:
        raise IntegrityError(f"{root}: file {extra[0]!r} is not in the manifest; remove it or "
                             "re-download the dataset")
    for rel, entry in manifest.items():
        f = root / rel
        if f.is_symlink():
            raise IntegrityError(f"{root}: {rel!r} is a symlink; datasets hold plain files only")
        size = f.stat().st_size
        if "size" in entry and size != entry["size"]:
            raise IntegrityError(f"{root}: file {rel!r} is {size} bytes, the manifest says {entry['size']} "
                                 "(truncated or corrupted); re-download or regenerate the dataset")
    rels = list(manifest)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
        digests = list(ex.map(lambda r: sha256_file(root / r), rels))
    for rel, d in zip(rels, digests):
        if d != manifest[rel]["sha256"]:
            raise IntegrityError(f"{root}: checksum mismatch in {rel!r} (sha256 {d[:12]}…, manifest "
                                 f"{str(manifest[rel]['sha256'])[:12]}…): the file is corrupted; "
                                 "re-download or regenerate the dataset")
