"""sha256 manifests: every file of a dataset, checked before anyone trusts it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ogdata.errors import IntegrityError
from ogdata.storage.format import CARD_FILE, METADATA_FILE, SOURCE_FILE, check_manifest_paths

VERIFIED_FILE = ".ogdata-verified.json"   # the remembered result of a full check (see storage.integrity)
# files that live beside a dataset but are not part of it (not in the manifest)
UNTRACKED = {METADATA_FILE, CARD_FILE, SOURCE_FILE, VERIFIED_FILE}

__all__ = ["UNTRACKED", "VERIFIED_FILE", "build_manifest", "check_manifest_paths", "check_present",
           "dataset_files", "sha256_file", "verify_files"]


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


def check_present(root: str | os.PathLike, manifest: Mapping[str, Mapping[str, object]]
                  ) -> dict[str, os.stat_result]:
    """The cheap check: every manifest file exists, is a plain file and has its recorded size.

    One stat per file (a dataset is a handful of shard files). Returns the stats by path.
    Raises IntegrityError naming the first missing, linked or wrongly sized file.
    """
    root = Path(root)
    stats: dict[str, os.stat_result] = {}
    missing = []
    for rel, entry in manifest.items():
        try:
            st = os.lstat(root / rel)
        except FileNotFoundError:
            missing.append(rel)
            continue
        except OSError as e:
            raise IntegrityError(f"{root}: file {rel!r} cannot be read ({e.strerror or e}); check its "
                                 "permissions, or re-download or regenerate the dataset") from None
        if not _is_file(st):
            raise IntegrityError(f"{root}: {rel!r} is a symlink or not a regular file; datasets hold plain "
                                 "files only — re-download or regenerate the dataset")
        if "size" in entry and st.st_size != entry["size"]:
            raise IntegrityError(f"{root}: file {rel!r} is {st.st_size} bytes, the manifest says {entry['size']} "
                                 "(truncated or corrupted); re-download or regenerate the dataset")
        stats[rel] = st
    if missing:
        raise IntegrityError(f"{root}: file {missing[0]!r} listed in the manifest is missing "
                             f"({len(missing)} missing); re-download or regenerate the dataset")
    return stats


def _is_file(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def verify_files(root: str | os.PathLike, manifest: Mapping[str, Mapping[str, object]]) -> None:
    """Check every file against the manifest; raise IntegrityError naming the first bad file."""
    root = Path(root)
    check_manifest_paths(manifest)
    check_present(root, manifest)
    extra = sorted(set(dataset_files(root)) - set(manifest))
    if extra:
        raise IntegrityError(f"{root}: file {extra[0]!r} is not in the manifest; remove it or "
                             "re-download the dataset")
    bad = first_mismatch(root, manifest, list(manifest))
    if bad is not None:
        rel, d = bad
        raise IntegrityError(f"{root}: checksum mismatch in {rel!r} (sha256 {d[:12]}…, manifest "
                             f"{str(manifest[rel]['sha256'])[:12]}…): the file is corrupted; "
                             "re-download or regenerate the dataset")


def first_mismatch(root: Path, manifest: Mapping[str, Mapping[str, object]], rels: list[str]
                   ) -> tuple[str, str] | None:
    """(path, actual sha256) of the first of `rels` whose content differs from the manifest, or None."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
        digests = list(ex.map(lambda r: sha256_file(root / r), rels))
    for rel, d in zip(rels, digests):
        if d != manifest[rel]["sha256"]:
            return rel, d
    return None
