"""The resolver: a dataset id → a verified folder. The only module that knows the order of sources.

Sources, tried in order for an id `<env-id>/<tier>-v<N>`:
1. the installed copy under OGDATA_HOME/datasets/<env-id>/<tier>-v<N>/ (checked, see below);
2. the Hub (`ogdata.hub`), unless HF_HUB_OFFLINE is set;
3. a rebuild from the committed catalogue recipe (`ogdata.generate.rebuild`), for catalogue ids —
   when the Hub is out of reach *or does not hold the id* (nothing has to be published for a
   catalogue id to load). The Replay tier of the env is resolved first: it is every tier's
   coverage reference, so a rebuilt tier carries the measures its card shows.
Every install happens under a per-id file lock, from a hidden staging folder, after
verification: a reader never sees a half-written or unverified copy. Adding a source (a mirror,
an object store) means adding one function to `_SOURCES` here.

Streaming (`open_stream`, `ogdata.load(..., stream=True)` or any URL): the same order, except
that the Hub is read in place through fsspec (storage/remote.py) instead of downloaded.

Verification: every source verifies the full sha256 of every file before installing; an
installed copy is returned after `storage.ensure_verified` (presence and size of every manifest
file, and the full sha256 once per installed copy, remembered); `ogdata.verify` always re-hashes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ogdata import catalogue, config, hub
from ogdata.errors import (
    DatasetNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    InvalidIdError,
    NotOnHubError,
    OfflineError,
    OgdataError,
    closest,
)
from ogdata.ids import DatasetId, installed_path, looks_like_id, parse_id
from ogdata.storage import ensure_verified
from ogdata.storage import verify as verify_files
from ogdata.storage.format import METADATA_FILE, read_metadata
from ogdata.storage.install import install, install_lock, read_source, remove, write_source
from ogdata.storage.remote import FsspecSource
from ogdata.storage.source import FolderSource, Source


def _say(msg: str) -> None:
    print(f"ogdata: {msg}", file=sys.stderr, flush=True)


def _locks() -> Path:
    """Install locks live outside the datasets tree, so a refused download leaves it untouched."""
    return config.home() / ".locks"


def _acceptable(path: Path, revision: str | None) -> bool:
    """An installed copy satisfies a request for `revision` (None: any copy will do)."""
    if not (path / METADATA_FILE).is_file():
        return False
    if revision is None:
        return True
    src = read_source(path)
    return revision in (src.get("revision"), src.get("commit")) or (
        len(revision) >= 7 and str(src.get("commit", "")).startswith(revision))


def _checked(did: DatasetId, final: Path) -> Path:
    """An installed copy after storage's check (sizes every time, full sha256 once per copy, remembered)."""
    try:
        ensure_verified(final)
    except IntegrityError as e:
        raise IntegrityError(f"the installed copy of {did} is damaged: {e}. Fetch it again with "
                             f"`ogdata download --force {did}` (or ogdata.download(id, force=True))") from None
    return final


# ----------------------------------------------------------------------------------- sources
# Each source: (did, final, revision, reasons) -> Path | None. None = "not here, try the next",
# with the reason appended to `reasons`; an OgdataError = "here, but broken" (stops the search).

def _from_installed(did: DatasetId, final: Path, revision: str | None, reasons: list[str]) -> Path | None:
    if _acceptable(final, revision):
        return _checked(did, final)
    if (final / METADATA_FILE).is_file():
        src = read_source(final)
        have = "rebuilt from its recipe" if src.get("rebuilt") else f"commit {src.get('commit')}"
        reasons.append(f"the installed copy is {have}, not revision {revision!r}")
    return None


def _from_hub(did: DatasetId, final: Path, revision: str | None, reasons: list[str]) -> Path | None:
    if config.hub_offline():
        reasons.append("HF_HUB_OFFLINE is set")
        return None
    try:
        return hub.download(did, final, revision=revision)
    except OfflineError as e:
        reasons.append(str(e))
    except NotOnHubError as e:
        reasons.append(f"{e} (HF_ENDPOINT={config.hub_endpoint()}, OGDATA_HUB_ORG={config.hub_org()})")
    return None


def _from_recipe(did: DatasetId, final: Path, revision: str | None, reasons: list[str]) -> Path | None:
    if not catalogue.is_catalogue_id(str(did)):
        return None
    if revision is not None:
        reasons.append(f"a rebuild follows the catalogue recipe, not Hub revision {revision!r}")
        return None
    try:  # the generator (rollouts, policies, PPO) loads only when something is rebuilt
        from ogdata.generate import rebuild
    except ImportError as e:
        raise OfflineError(f"{'; '.join(reasons)}; {did} is in the catalogue and could be rebuilt from its recipe, "
                           f"but the generator is not available ({e}). Connect to the Hub and retry") from e
    _say(f"{'; '.join(reasons) or 'not installed'}. Rebuilding {did} from its recipe (the catalogue's: "
         "environment + committed behaviour-policy weights).")
    reference = None
    if did.tier != "replay":
        replay = f"{did.env_id}/replay-v{did.version}"
        if catalogue.is_catalogue_id(replay):
            _say(f"{did} is profiled against the env's Replay tier; resolving {replay} first.")
            reference = resolve(replay)
    else:
        _announce_training(did)
    out = final.parent / f".{final.name}.rebuild-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        rebuild(str(did), out, reference=reference)
        verify_files(out)
        meta = read_metadata(out)
        if meta.get("dataset_id") != str(did):
            raise IntegrityError(f"the rebuild of {did} produced {meta.get('dataset_id')!r}; report this bug")
        write_source(out, {"dataset_id": str(did), "source": "rebuilt", "rebuilt": True,
                           "reason": "; ".join(reasons), "recipe": catalogue.entries()[str(did)]["recipe"]})
        install(out, final)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final


def _announce_training(did: DatasetId) -> None:
    """Say up front when a Replay rebuild must re-train its behaviour policies (minutes, not seconds)."""
    from ogdata.generate import missing_training_runs  # the generator pulls in the policies: loaded on use

    r = catalogue.recipe(did.env_id, did.version)
    seeds = missing_training_runs(did.env_id, r)
    if not seeds:
        return
    wall = (r.get("training") or {}).get("wall_time_s") or {}
    secs = sum(float(wall.get(str(s), 0) or 0) for s in seeds)
    est = f" (the recorded runs took {secs / 60:.1f} min together on the machine that made the catalogue)" \
        if secs else ""
    _say(f"the Replay tier is the record of the behaviour policies' PPO training; the training records of "
         f"seed(s) {seeds} are not in {config.home() / 'training'}, so they are re-trained now, "
         f"deterministically{est}. Progress follows.")


_SOURCES: tuple[tuple[str, Callable[..., Path | None]], ...] = (
    ("installed", _from_installed),
    ("hub", _from_hub),
    ("recipe", _from_recipe),
)


# ------------------------------------------------------------------------------------ public

def as_dataset_id(target: Any) -> DatasetId:
    """Parse an id given by a user (with 'Did you mean' for a misspelt tier)."""
    if isinstance(target, DatasetId):
        return target
    if not isinstance(target, str):
        raise InvalidIdError(f"expected a dataset id '<env-id>/<tier>-v<N>' (a str), got {type(target).__name__}")
    return parse_id(target)


def check_known_env(did: DatasetId, why: str) -> None:
    """After a failed lookup: an env id one edit away from a known one gets 'Did you mean' (InvalidIdError).

    Not checked up front: anyone may publish datasets of their own envs, and those still download.
    """
    known = env_ids()
    if did.env_id not in known and closest(did.env_id, known):
        try:
            parse_id(str(did), known_envs=known)
        except InvalidIdError as e:
            raise InvalidIdError(f"{e} ({why})") from None


def resolve(target: str | os.PathLike | DatasetId, *, revision: str | None = None, force: bool = False,
            fetch: bool = True) -> Path:
    """A dataset path or id → the folder of a complete, verified copy (installing it if needed).

    fetch=False: only an installed copy will do (DatasetNotFoundError otherwise).
    force=True: ignore an installed copy and fetch again (Hub, else rebuild).
    """
    if isinstance(target, os.PathLike) or (isinstance(target, str) and not looks_like_id(target)):
        if isinstance(target, str) and len(target) > 4096:
            raise InvalidIdError(f"a dataset path or id of {len(target):,} characters is not one; check the argument")
        p = Path(target)
        if (p / METADATA_FILE).is_file():
            return p
        s = str(target)
        if isinstance(target, str) and s.count("/") == 1 and not os.path.isabs(s) and not p.exists():
            parse_id(s)  # a malformed id: say how ids look
        raise DatasetNotFoundError(f"no dataset at path {s[:200]!r} ({METADATA_FILE} missing), and it is not a "
                                   "dataset id ('<env-id>/<tier>-v<N>'); check the path or run `ogdata list`")
    did = as_dataset_id(target)
    final = installed_path(did)
    if not fetch:
        if _acceptable(final, revision):
            return _checked(did, final)
        raise DatasetNotFoundError(f"{did} is not installed ({final}); run `ogdata download {did}`")
    reasons: list[str] = []
    if not force and _acceptable(final, revision):
        return _checked(did, final)
    lock = install_lock(final, _locks())
    try:
        for name, source in _SOURCES:
            if name == "installed" and force:
                continue
            got = source(did, final, revision, reasons)
            if got is not None:
                return got
    finally:
        lock.release()
    why = "; ".join(reasons) or "it is not installed"
    check_known_env(did, why)
    if catalogue.is_catalogue_id(str(did)):
        raise OfflineError(f"{did} cannot be resolved: {why}. Connect to the Hub, or ask for the catalogue "
                           "revision (no --revision) to rebuild it from its recipe")
    offline = any("unreachable" in r or "HF_HUB_OFFLINE" in r for r in reasons)
    raise (OfflineError if offline else DatasetNotFoundError)(
        f"{why}; {did} is not installed ({final}) nor in the catalogue, so it cannot be rebuilt. "
        + ("Connect to the Hub (unset HF_HUB_OFFLINE, check HF_ENDPOINT) and retry" if offline else
           "Check the id with `ogdata list --remote`, OGDATA_HUB_ORG and HF_ENDPOINT"))


def is_url(target: Any) -> bool:
    """A string with a scheme (hf://, file://, s3://, memory://): read through fsspec, never a folder path."""
    return isinstance(target, str) and "://" in target[:32] and target.split("://", 1)[0].isidentifier()


def open_stream(target: str | os.PathLike | DatasetId, *, revision: str | None = None,
                cache_bytes: int | None = None) -> Source:
    """A source to read a dataset from without downloading it (`ogdata.load(..., stream=True)`).

    - a URL: `hf://datasets/<org>/<env-id>[@rev]/<tier>-v<N>` is streamed from the Hub, pinned to
      one commit; any other fsspec URL (file://, memory://, s3://) is streamed as it is;
    - a dataset id: an installed copy that satisfies `revision` is read in place (nothing to
      stream); else the Hub is streamed; when the Hub is out of reach or lacks the id, a catalogue
      id is rebuilt from its recipe and installed (saying so), as `resolve` would;
    - a local folder: read in place.
    """
    if is_url(target):
        if target.startswith("hf://"):
            loc = hub.stream_location(url=target, revision=revision)
            return FsspecSource(loc["url"], storage_options=loc["storage_options"], open_options=loc["open_options"],
                                cache_bytes=cache_bytes, metadata=loc["metadata"])
        if revision is not None:
            raise InvalidArgumentError(f"revision={revision!r} applies to the Hub only; {target[:80]!r} is read as "
                                       "it is")
        return FsspecSource(target, cache_bytes=cache_bytes)
    if isinstance(target, os.PathLike) or (isinstance(target, str) and not looks_like_id(target)):
        return FolderSource(resolve(target, fetch=False))
    did = as_dataset_id(target)
    final = installed_path(did)
    if _acceptable(final, revision):
        return FolderSource(_checked(did, final))
    reasons: list[str] = []
    if config.hub_offline():
        reasons.append("HF_HUB_OFFLINE is set")
    else:
        try:
            loc = hub.stream_location(str(did), revision=revision)
            return FsspecSource(loc["url"], storage_options=loc["storage_options"], open_options=loc["open_options"],
                                cache_bytes=cache_bytes, metadata=loc["metadata"])
        except (OfflineError, NotOnHubError) as e:
            reasons.append(str(e))
    if catalogue.is_catalogue_id(str(did)) and revision is None:
        _say(f"{did} cannot be streamed ({'; '.join(reasons)}); rebuilding it from its recipe instead.")
        return FolderSource(resolve(did))
    check_known_env(did, "; ".join(reasons))
    raise (OfflineError if any("unreachable" in r or "HF_HUB_OFFLINE" in r for r in reasons) else DatasetNotFoundError)(
        f"{did} cannot be streamed: {'; '.join(reasons)}. Connect to the Hub (unset HF_HUB_OFFLINE, check "
        "HF_ENDPOINT and OGDATA_HUB_ORG) and retry")


def installed() -> list[str]:
    """Ids of the datasets installed under OGDATA_HOME (complete installs only)."""
    root = config.datasets_dir()
    if not root.is_dir():
        return []
    out = []
    for meta in root.glob(f"*/*/{METADATA_FILE}"):
        env, folder = meta.parent.parent.name, meta.parent.name
        if env.startswith(".") or folder.startswith("."):
            continue
        try:
            out.append(str(parse_id(f"{env}/{folder}")))
        except InvalidIdError:
            continue
    return sorted(out)


def custom() -> list[Path]:
    """Datasets generated with a non-catalogue recipe, size or seed (OGDATA_HOME/custom/<env>/<name>)."""
    root = config.home() / "custom"
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/*/{METADATA_FILE}") if not p.parent.name.startswith("."))


def env_ids() -> list[str]:
    """Every environment with a recipe or a registered env (the repos `list_remote` looks at)."""
    from ogdata.envs.registry import list_envs

    return sorted(set(catalogue.catalogue_envs()) | set(list_envs()))


def list_datasets(remote: bool = False) -> list[str]:
    """Ids in the catalogue and installed locally, plus (remote=True) those on the Hub."""
    ids = set(catalogue.catalogue_ids()) | set(installed())
    if remote:
        ids |= set(hub.list_remote(env_ids()))
    return sorted(ids)


def delete(dataset_id: str) -> bool:
    """Remove the installed copy of a dataset id from OGDATA_HOME; False if none was installed."""
    return remove(installed_path(as_dataset_id(dataset_id)), _locks())


def local_target(target: str | os.PathLike) -> Path:
    """A dataset directory, or the installed copy of an id (never fetches)."""
    return resolve(target, fetch=False)


def verify(target: str | os.PathLike) -> dict[str, Any]:
    """Check a dataset (path or installed id) against its manifest and, for catalogue ids, its recipe.

    Returns {"path", "dataset_id", "files", "recipe": "match" | "not in catalogue" | "no catalogue"};
    raises IntegrityError naming the first bad file or the differing recipe keys.
    """
    path = local_target(target)
    meta = verify_files(path)
    report = {"path": str(path), "dataset_id": meta.get("dataset_id"), "files": len(meta["manifest"])}
    cat = catalogue.entries()
    if not cat:
        report["recipe"] = "no catalogue"
        return report
    entry = cat.get(str(meta.get("dataset_id")))
    if entry is None:
        report["recipe"] = "not in catalogue"
        return report

    def canon(x: Any) -> str:
        return json.dumps(x, sort_keys=True, default=str)

    def clip(x: Any, n: int = 80) -> str:
        s = canon(x)
        return s if len(s) <= n else s[: n - 1] + "…"

    expected, got = entry["expect"], catalogue.recipe_identity(meta)
    diff = sorted(k for k in expected if canon(expected[k]) != canon(got.get(k)))
    if diff:
        k = diff[0]
        raise IntegrityError(f"{path}: recipe differs from the catalogue's for {meta.get('dataset_id')} in "
                             f"{diff} (e.g. {k}: dataset {clip(got.get(k))}, catalogue {clip(expected[k])}); "
                             "this copy was not made by the catalogue recipe — re-download or regenerate it")
    report["recipe"] = "match"
    return report


__all__ = ["OgdataError", "delete", "installed", "list_datasets", "open_stream", "resolve", "verify"]
