"""The native dataset format: metadata.json + a zarr v3 store, and its validation.

Layout (N transitions, E episodes, T+1 observations per episode):
    metadata.json
    data/                       zarr v3 group, one sharded array per name
        observations (N+E, ...)   states (N+E, ...) [multi-agent]
        actions (N, ...)  rewards, terminations, truncations (N,) or (N, n_agents)
        episode_lengths (E,)
Multi-agent arrays put the agent axis right after time.

metadata.json carries the sha256 `manifest` of every data file and, since this version, its
own digest `metadata_sha256` (sha256 of the canonical JSON of every other field), checked on
every read. Files written before the digest existed still load; `verify` reports them.
metadata.json is bounded before it is trusted: at most `MAX_METADATA_BYTES`, nested at most
`MAX_DEPTH` deep, names at most `MAX_NAME_CHARS` characters, space shapes at most
`MAX_SPACE_ELEMENTS` elements.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ogdata.errors import DatasetNotFoundError, FormatVersionError, IntegrityError, MetadataError

FORMAT = "ogdata"
FORMAT_VERSION = 1
DATA_DIR = "data"
METADATA_FILE = "metadata.json"
SOURCE_FILE = ".ogdata-source.json"   # provenance of an installed copy (storage/install.py); not in the manifest
CARD_FILE = "README.md"               # the dataset card beside the data; not in the manifest
DIGEST_KEY = "metadata_sha256"
OBS_KEYS = ("observations", "states")          # T+1 per episode
STEP_KEYS = ("actions", "rewards", "terminations", "truncations")  # T per episode
REQUIRED_KEYS = ("format", "format_version", "observation_space", "action_space", "num_transitions",
                 "num_episodes", "multi_agent", "arrays", "manifest")
# fields that describe the stored arrays: set by the writer, never by metadata= or update_metadata
WRITER_KEYS = ("format", "format_version", "arrays", "manifest", "num_transitions", "num_episodes", DIGEST_KEY)

MAX_METADATA_BYTES = 16 << 20     # a manifest of a few hundred files and the measures fit easily
MAX_DEPTH = 64                    # nesting of JSON objects/arrays
MAX_NAME_CHARS = 256              # env_id, dataset_id, tier, agent names
MAX_SPACE_ELEMENTS = 1 << 24      # elements of one space's shape (its bounds are allocated on read)
NAME_KEYS = ("env_id", "dataset_id", "tier")


# -- reading ------------------------------------------------------------------------------------

def parse_metadata(raw: bytes, where: str = "metadata") -> dict[str, Any]:
    """Parse and validate metadata.json bytes (size, depth and digest bounded before anything is trusted)."""
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"{where}: {len(raw)} bytes, more than the {MAX_METADATA_BYTES} a metadata.json may "
                            "hold; the file is not ogdata metadata — re-download or regenerate the dataset")
    try:
        meta = json.loads(raw)
    except RecursionError:
        raise MetadataError(f"{where}: JSON nested too deeply (limit {MAX_DEPTH}); the file is malformed — "
                            "re-download or regenerate the dataset") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and ints over Python's digit limit
        raise MetadataError(f"{where}: not valid JSON ({str(e)[:200]}); re-download or regenerate the "
                            "dataset") from None
    check_depth(meta, where)
    validate_metadata(meta, where=where)
    return meta


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
        size = f.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise MetadataError(f"{f}: {size} bytes, more than the {MAX_METADATA_BYTES} a metadata.json may "
                                "hold; re-download or regenerate the dataset")
        raw = f.read_bytes()
    except OSError as e:
        raise MetadataError(f"{f}: cannot be read ({e.strerror or e}); check its permissions") from None
    return parse_metadata(raw, where=str(f))


def check_depth(obj: Any, where: str = "metadata", limit: int = MAX_DEPTH) -> None:
    """MetadataError if JSON-like `obj` nests deeper than `limit` (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            children = x.values()
        elif isinstance(x, list | tuple):
            children = x
        else:
            continue
        if d > limit:
            raise MetadataError(f"{where}: JSON nested deeper than {limit} levels; the file is malformed — "
                                "re-download or regenerate the dataset")
        stack.extend((c, d + 1) for c in children)


# -- validation ---------------------------------------------------------------------------------

def validate_metadata(meta: Any, where: str = "metadata") -> None:
    """Raise MetadataError (FormatVersionError, IntegrityError for a digest mismatch) unless `meta`
    is a valid ogdata metadata dict."""
    if not isinstance(meta, dict):
        raise MetadataError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    check_depth(meta, where)
    if meta.get("format") != FORMAT:
        raise MetadataError(f"{where}: 'format' is {_short(meta.get('format'))}, expected {FORMAT!r}; "
                            "this is not an ogdata dataset")
    v = meta.get("format_version")
    if not isinstance(v, int) or isinstance(v, bool) or v > FORMAT_VERSION or v < 1:
        raise FormatVersionError(f"{where}: format_version {_short(v)} is not supported (this ogdata reads "
                                 f"version {FORMAT_VERSION}); upgrade ogdata (pip install -U ogdata)")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise MetadataError(f"{where}: missing required keys {missing}; the file is incomplete — "
                            "re-download or regenerate the dataset")
    for k in ("num_transitions", "num_episodes"):
        if not isinstance(meta[k], int) or isinstance(meta[k], bool) or not 0 <= meta[k] < 2**53:
            raise MetadataError(f"{where}: {k} must be a non-negative integer, got {_short(meta[k])}")
    if not isinstance(meta["multi_agent"], bool):
        raise MetadataError(f"{where}: multi_agent must be true or false, got {_short(meta['multi_agent'])}")
    for k in NAME_KEYS:
        x = meta.get(k)
        if x is not None and (not isinstance(x, str) or len(x) > MAX_NAME_CHARS):
            raise MetadataError(f"{where}: {k} must be a string of at most {MAX_NAME_CHARS} characters or null, "
                                f"got {_short(x)}")
    agents = meta.get("agents")
    if agents is not None and (not isinstance(agents, list) or not all(
            isinstance(a, str) and len(a) <= MAX_NAME_CHARS for a in agents)):
        raise MetadataError(f"{where}: agents must be a list of names (strings of at most {MAX_NAME_CHARS} "
                            f"characters), got {_short(agents)}")
    for k in ("observation_space", "action_space", "state_space"):
        if meta.get(k) is not None:
            check_space_json(meta[k], f"{where}: {k}")
    if not isinstance(meta["arrays"], dict) or "actions" not in meta["arrays"]:
        raise MetadataError(f"{where}: 'arrays' must describe at least 'actions'")
    try:
        check_manifest_paths(meta["manifest"])
    except IntegrityError as e:
        raise MetadataError(f"{where}: {e}") from e
    for name, desc in meta["arrays"].items():
        if not isinstance(desc, dict) or "shape" not in desc or "dtype" not in desc:
            raise MetadataError(f"{where}: arrays[{name!r}] must have 'shape' and 'dtype'")
        shape = desc["shape"]
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**53
                                                  for s in shape):
            raise MetadataError(f"{where}: arrays[{name!r}] shape must be a list of non-negative integers, "
                                f"got {_short(shape)}")
        for k in ("chunk_rows", "shard_rows"):
            r = desc.get(k)
            if r is not None and (not isinstance(r, int) or isinstance(r, bool) or not 1 <= r < 2**53):
                raise MetadataError(f"{where}: arrays[{name!r}] {k} must be a positive integer, got {_short(r)}")
    check_metadata_digest(meta, where)


def check_space_json(space: Any, where: str) -> None:
    """Bound what a space description may declare before `space_from_json` allocates its bounds."""
    stack = [space]
    while stack:
        s = stack.pop()
        if not isinstance(s, dict):
            raise MetadataError(f"{where}: a space must be a JSON object, got {_short(s)}")
        shape = s.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape):
                raise MetadataError(f"{where}: shape must be a list of non-negative integers, got {_short(shape)}")
            n = 1
            for d in shape:
                n *= d
                if n > MAX_SPACE_ELEMENTS:
                    raise MetadataError(f"{where}: shape {_short(shape)} has more than {MAX_SPACE_ELEMENTS} "
                                        "elements; refusing to allocate its bounds")
        for k in ("spaces",):
            sub = s.get(k)
            if isinstance(sub, dict):
                stack.extend(sub.values())
            elif isinstance(sub, list):
                stack.extend(sub)


def check_manifest_paths(manifest: Any) -> None:
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
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise IntegrityError(f"manifest entry for {rel!r} has an invalid size {_short(size)}")


def _short(x: Any, n: int = 80) -> str:
    """A bounded repr for error messages (huge ints and long strings are not printed whole)."""
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > 256:
        return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
    if isinstance(x, dict | list | tuple):
        return f"<a {type(x).__name__} of {len(x)} items>"
    s = repr(x)
    return s if len(s) <= n else s[:n] + f"… ({len(s)} characters)"


# -- the metadata digest ------------------------------------------------------------------------

def canonical_json(obj: Any) -> bytes:
    """The bytes the metadata digest is taken over: sorted keys, no whitespace, ASCII, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def metadata_digest(meta: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but the digest itself."""
    return hashlib.sha256(canonical_json({k: v for k, v in meta.items() if k != DIGEST_KEY})).hexdigest()


def check_metadata_digest(meta: Mapping[str, Any], where: str = "metadata") -> None:
    """IntegrityError if metadata carries a digest that does not match its content (absent: not covered)."""
    if DIGEST_KEY not in meta:
        return
    want = meta[DIGEST_KEY]
    if not isinstance(want, str) or len(want) != 64:
        raise MetadataError(f"{where}: {DIGEST_KEY} must be a sha256 hex digest, got {_short(want)}")
    try:
        got = metadata_digest(meta)
    except (TypeError, ValueError, RecursionError):
        got = ""
    if got != want:
        raise IntegrityError(f"{where}: the content does not match its {DIGEST_KEY} (the file was edited or "
                             "corrupted after it was written); re-download or regenerate the dataset, or change "
                             "metadata only through ogdata.storage.update_metadata")


def seal_metadata(meta: dict[str, Any]) -> bytes:
    """Set meta[DIGEST_KEY] over the JSON form of `meta`; returns the bytes of metadata.json to write."""
    try:
        plain = json.loads(json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as e:
        raise MetadataError(f"metadata is not JSON-serialisable ({str(e)[:200]}); pass only strings, numbers, "
                            "booleans, None, lists and dicts with string keys") from None
    meta[DIGEST_KEY] = plain[DIGEST_KEY] = metadata_digest(plain)
    return (json.dumps(plain, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


# -- writing ------------------------------------------------------------------------------------

def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, and rename over `path`: never half-written.

    The file gets the mode of any newly created file (0666 less the umask, 0644 usually), not
    mkstemp's 0600, so other users of a shared OGDATA_HOME can read it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
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


def write_metadata(root: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Seal `meta` with its digest (set in place) and write it as root/metadata.json atomically."""
    write_bytes_atomic(Path(root) / METADATA_FILE, seal_metadata(meta))


def update_metadata(path: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into a dataset's metadata.json atomically (measures, baselines, card info).

    The manifest covers the data files, not metadata.json, so this never invalidates it; the
    metadata digest is recomputed. Array descriptions, counts and the manifest itself cannot be
    changed this way.
    """
    bad = set(WRITER_KEYS) & set(fields)
    if bad:
        raise MetadataError(f"update_metadata cannot change {sorted(bad)}; they describe the stored arrays")
    meta = read_metadata(path)
    meta.update(fields)
    raw = seal_metadata(meta)
    parse_metadata(raw, where=f"metadata of {path} after update_metadata({', '.join(sorted(fields))})")
    write_bytes_atomic(Path(path) / METADATA_FILE, raw)
    return meta
