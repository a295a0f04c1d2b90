"""The Hugging Face Hub side of ogdata: it moves bytes, and does nothing else.

Layout on the Hub: one dataset repo per environment, `<org>/<env-id>`, one folder per
tier-version (`good-v0/` holding metadata.json, data/ and its own README.md card); the repo
root README.md is the environment card. One tier alone is
`snapshot_download(repo, repo_type="dataset", allow_patterns=["good-v0/*"])`.

Remote metadata is untrusted: it is validated and bounded (`check_remote_metadata`) before any
path in it is used or anything it declares is allocated; every file is checked against the
manifest's sha256 in a staging directory, and only a verified copy is installed. HF_ENDPOINT,
HF_TOKEN and HF_HUB_OFFLINE are read at call time. Which source a dataset id comes from
(installed copy, Hub, rebuild) is the resolver's business (ogdata/resolve.py), not this module's;
cards are rendered by ogdata/cards.py and handed in as text.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ogdata import config
from ogdata.errors import (
    HubError,
    IntegrityError,
    InvalidIdError,
    MetadataError,
    NotOnHubError,
    OfflineError,
    OgdataError,
)
from ogdata.ids import TIERS, DatasetId, hub_repo, looks_like_id, parse_id
from ogdata.progress import is_terminal
from ogdata.storage import verify as verify_files
from ogdata.storage.format import (
    CARD_FILE,
    MAX_METADATA_BYTES,
    METADATA_FILE,
    SOURCE_FILE,
    check_depth,
    validate_metadata,
)
from ogdata.storage.install import install, write_source
from ogdata.storage.manifest import check_manifest_paths

REPO_TYPE = "dataset"

_GLOB_CHARS = set("*?[]")
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


# ------------------------------------------------------------------------- hub client plumbing

def _api(token: str | None = None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=config.hub_endpoint(), token=token if token is not None else config.hub_token())


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def unreachable(exc: BaseException) -> bool:
    """True when an error means 'the Hub cannot be reached' (not 'the Hub said no')."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    for e in _chain(exc):
        names = {c.__name__ for c in type(e).__mro__}
        if names & {"TransportError", "ConnectionError", "Timeout", "TimeoutException", "TimeoutError",
                    "OfflineModeIsEnabled"}:
            return True
        if isinstance(e, LocalEntryNotFoundError):
            return True
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code >= 500:
            return True
    return False


def not_found(exc: BaseException) -> bool:
    """True when the Hub answered that the repo, revision or file does not exist."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    return any(isinstance(e, RepositoryNotFoundError | RevisionNotFoundError | EntryNotFoundError)
               for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """One line naming an exception: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _offline_check(what: str) -> None:
    if config.hub_offline():
        raise OfflineError(f"HF_HUB_OFFLINE is set; unset it to {what}")


# ------------------------------------------------------------------ untrusted remote metadata

def check_remote_metadata(meta: Any, dataset_id: str) -> dict[str, Any]:
    """Validate metadata.json fetched from the Hub before trusting any path or size in it.

    IntegrityError for a manifest naming a path outside the dataset (absolute, '..', backslash,
    glob characters, control characters) or a wrong dataset id; MetadataError for the rest —
    `validate_metadata` bounds names and the elements a space may declare before anything is built.
    """
    where = f"metadata.json of {dataset_id} on the Hub"
    if not isinstance(meta, dict):
        raise MetadataError(f"{where} is not a JSON object; the remote copy is broken — report it to the publisher")
    manifest = meta.get("manifest")
    check_manifest_paths(manifest if manifest is not None else {})
    for rel, entry in manifest.items():
        if set(rel) & _GLOB_CHARS or any(ord(c) < 32 for c in rel):
            raise IntegrityError(f"manifest names a path with glob or control characters: {rel!r}; "
                                 "refusing to use this dataset (its metadata is malformed or malicious)")
        if rel.split("/")[0] in (METADATA_FILE, CARD_FILE, SOURCE_FILE) or rel.startswith("."):
            raise IntegrityError(f"manifest names a reserved path {rel!r}; refusing to use this dataset")
        if not isinstance(entry, Mapping):
            raise IntegrityError(f"manifest entry for {rel!r} is not an object; refusing to use this dataset")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise IntegrityError(f"manifest entry for {rel!r} has an invalid size {str(size)[:40]!r}; "
                                 "refusing to use this dataset")
    validate_metadata(meta, where=where)
    got = meta.get("dataset_id")
    if got is not None and looks_like_id(str(dataset_id)) and got != str(dataset_id):
        raise IntegrityError(f"{where} describes {str(got)[:80]!r}, not {dataset_id!r}; the repo folder holds "
                             "the wrong dataset — report it to the publisher")
    return meta


def parse_remote_metadata(raw: bytes, dataset_id: str) -> dict[str, Any]:
    """Bytes of a remote metadata.json → validated dict (size- and depth-bounded before parsing).

    Not `storage.format.parse_metadata`: remote paths are checked first, so a hostile manifest is an
    IntegrityError before the generic validation sees it."""
    where = f"metadata.json of {dataset_id} on the Hub"
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"{where} is {len(raw):,} bytes (limit {MAX_METADATA_BYTES:,}); refusing it")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise MetadataError(f"{where} is not valid JSON ({type(e).__name__}); the remote copy is broken — "
                            "report it to the publisher") from None
    check_depth(meta, where)
    return check_remote_metadata(meta, dataset_id)


def _check_no_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p.is_symlink():
                raise IntegrityError(f"{p.relative_to(root)!s} is a symlink; datasets hold plain files only")



def _repo_files(dataset_id: str, revision: str | None, repo: tuple[str, str] | None = None
                ) -> tuple[str, str, str, set[str]]:
    """(repo_id, folder, commit, files of the tier folder) — the one call that classifies Hub failures.

    `repo`: (repo_id, folder) when the caller names them (an hf:// URL), else derived from the id."""
    repo_id, folder = repo or hub_repo(dataset_id)
    where = f"{repo_id}@{revision or 'main'} on {config.hub_endpoint()}"
    api = _api()
    try:
        info = api.dataset_info(repo_id, revision=revision)
        commit = info.sha
        remote_files = {s.rfilename for s in (info.siblings or [])}
        if not remote_files:
            remote_files = set(api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=commit))
    except Exception as e:  # noqa: BLE001 - classified below
        if unreachable(e):
            raise OfflineError(f"the Hub at {config.hub_endpoint()} is unreachable ({describe(e)})") from None
        if not_found(e):
            raise NotOnHubError(f"{dataset_id} not found on the Hub: {where} does not exist (no such repo or "
                                "revision)") from None
        raise HubError(f"the Hub refused {where}: {describe(e)}") from e
    tier_files = {f[len(folder) + 1:] for f in remote_files if f.startswith(folder + "/")}
    if METADATA_FILE not in tier_files:
        tiers = sorted({f.split("/")[0] for f in remote_files if f.endswith("/" + METADATA_FILE)})
        raise NotOnHubError(f"{dataset_id} not found on the Hub: {repo_id}@{commit[:12]} has no {folder}/ folder "
                            f"(it holds {tiers or 'no datasets'})")
    return repo_id, folder, commit, tier_files


def _fetch_metadata(repo_id: str, folder: str, commit: str, dataset_id: str) -> tuple[bytes, dict[str, Any]]:
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory(prefix="ogdata-meta-") as tmp:
        try:
            f = hf_hub_download(repo_id, f"{folder}/{METADATA_FILE}", repo_type=REPO_TYPE, revision=commit,
                                local_dir=tmp, endpoint=config.hub_endpoint(), token=config.hub_token())
            p = Path(f)
            if p.stat().st_size > MAX_METADATA_BYTES:
                raise MetadataError(f"{folder}/{METADATA_FILE} of {repo_id} is larger than "
                                    f"{MAX_METADATA_BYTES:,} bytes; refusing it")
            raw = p.read_bytes()
        except OgdataError:
            raise
        except Exception as e:  # noqa: BLE001
            if unreachable(e):
                raise OfflineError(f"the Hub at {config.hub_endpoint()} is unreachable ({describe(e)})") from None
            raise HubError(f"could not fetch {folder}/{METADATA_FILE} from {repo_id}@{commit[:12]}: "
                           f"{describe(e)}; retry") from e
    return raw, parse_remote_metadata(raw, dataset_id)


# ---------------------------------------------------------------------------------- reading

def remote_metadata(dataset_id: str, revision: str | None = None) -> dict[str, Any]:
    """metadata.json of one Hub dataset, fetched alone (no data) and validated as untrusted input.

    Raises OfflineError (HF_HUB_OFFLINE, or the Hub out of reach — at once, not after retries),
    NotOnHubError, HubError or MetadataError/IntegrityError for bad metadata.
    """
    _offline_check("read metadata from the Hub")
    did = str(parse_id(dataset_id))
    repo_id, folder, commit, _ = _repo_files(did, revision)
    return _fetch_metadata(repo_id, folder, commit, did)[1]


def download(dataset_id: str | DatasetId, final: Path, revision: str | None = None) -> Path:
    """Fetch one dataset (one tier) into `final`: verified in a staging folder, then installed.

    The caller holds `storage.install.install_lock(final)`. A staging folder beside `final`
    keeps finished files across interrupted attempts at the same commit. Raises OfflineError,
    NotOnHubError, HubError, IntegrityError or MetadataError; nothing is installed on error.
    """
    _offline_check("download from the Hub")
    dataset_id = str(dataset_id)
    repo_id, folder, commit, tier_files = _repo_files(dataset_id, revision)
    endpoint, token = config.hub_endpoint(), config.hub_token()
    where = f"{repo_id}@{revision or 'main'} on {endpoint}"
    meta_bytes, meta = _fetch_metadata(repo_id, folder, commit, dataset_id)
    missing = sorted(set(meta["manifest"]) - tier_files)
    if missing:
        raise IntegrityError(f"the Hub copy {repo_id}@{commit[:12]} is incomplete: {folder}/{missing[0]} "
                             f"(and {len(missing) - 1} more) listed in the manifest is not in the repo")

    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    if not is_terminal():
        disable_progress_bars()  # per-file bars become carriage-return noise in a log
    staging = final.parent / f".{final.name}.partial"
    marker = staging / ".ogdata-commit"
    if staging.exists() and (not marker.is_file() or marker.read_text().strip() != commit):
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    marker.write_text(commit + "\n")
    tops = {rel.split("/")[0] + ("/*" if "/" in rel else "") for rel in meta["manifest"]}
    patterns = [f"{folder}/{METADATA_FILE}", f"{folder}/{CARD_FILE}"] + sorted(f"{folder}/{t}" for t in tops)
    try:
        snapshot_download(repo_id, repo_type=REPO_TYPE, revision=commit, local_dir=staging,
                          allow_patterns=patterns, endpoint=endpoint, token=token)
    except Exception as e:  # noqa: BLE001
        local = next((x for x in _chain(e) if isinstance(x, OSError) and x.errno in _LOCAL_ERRNOS), None)
        if local is not None:  # our disk, not the network: partial files are useless, remove them
            shutil.rmtree(staging, ignore_errors=True)
            raise HubError(f"download of {dataset_id} failed writing under {staging.parent} "
                           f"({os.strerror(local.errno)}); nothing was installed and the partial files were "
                           "removed — free disk space (or point OGDATA_HOME elsewhere) and retry") from None
        raise HubError(f"download of {dataset_id} from {where} was interrupted ({describe(e)}); nothing was "
                       "installed — run the same download again, finished files are kept") from e
    staged = staging / folder
    try:
        if (staged / METADATA_FILE).read_bytes() != meta_bytes:
            raise IntegrityError(f"{folder}/{METADATA_FILE} changed between two reads of commit {commit[:12]}")
        _check_no_links(staged)
        verify_files(staged)
    except (IntegrityError, MetadataError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise type(e)(f"{dataset_id} from {repo_id}@{commit[:12]} failed verification, nothing was "
                      f"installed: {e}") from e
    write_source(staged, {"dataset_id": dataset_id, "source": "hub", "rebuilt": False, "endpoint": endpoint,
                          "repo_id": repo_id, "folder": folder, "revision": revision or "main", "commit": commit})
    install(staged, final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def parse_hf_url(url: str) -> tuple[str, str | None, str]:
    """`hf://datasets/<org>/<repo>[@<revision>]/<folder>` → (repo_id, revision, folder)."""
    rest = url[len("hf://"):] if url.startswith("hf://") else url
    parts = rest.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "datasets" or not all(parts):
        raise InvalidIdError(f"{url[:200]!r} is not a dataset tier on the Hub; expected "
                             "'hf://datasets/<org>/<env-id>[@<revision>]/<tier>-v<N>'")
    name, _, revision = parts[2].partition("@")
    return f"{parts[1]}/{name}", (revision or None), "/".join(parts[3:])


def stream_location(dataset_id: str | None = None, revision: str | None = None, *, url: str | None = None
                    ) -> dict[str, Any]:
    """Where to stream one tier from, without downloading it: its `hf://` URL pinned to the commit the
    revision names (every shard then comes from one commit), the fsspec options that reach this Hub
    (endpoint, token, streaming reads) and its metadata, fetched alone and validated as untrusted.

    Pass a dataset id (the repo is `<OGDATA_HUB_ORG>/<env-id>`) or an hf:// URL. Raises what
    `download` raises for the same failures; nothing is written.
    """
    _offline_check("stream from the Hub")
    if url is not None:
        repo_id, url_rev, folder = parse_hf_url(url)
        revision = revision or url_rev
        dataset_id = f"{repo_id.split('/')[-1]}/{folder}"
        repo = (repo_id, folder)
    else:
        dataset_id, repo = str(parse_id(str(dataset_id))), None
    repo_id, folder, commit, tier_files = _repo_files(dataset_id, revision, repo)
    _, meta = _fetch_metadata(repo_id, folder, commit, dataset_id)
    missing = sorted(set(meta["manifest"]) - tier_files)
    if missing:
        raise IntegrityError(f"the Hub copy {repo_id}@{commit[:12]} is incomplete: {folder}/{missing[0]} "
                             f"(and {len(missing) - 1} more) listed in the manifest is not in the repo")
    return {"url": f"hf://datasets/{repo_id}@{commit}/{folder}", "commit": commit, "metadata": meta,
            "storage_options": {"endpoint": config.hub_endpoint(), "token": config.hub_token(),
                                "skip_instance_cache": True},
            "open_options": {"block_size": 0}}  # one streaming GET per file, no ranged reads


def list_remote(env_ids: Iterable[str], org: str | None = None) -> list[str]:
    """Dataset ids on the Hub, read from each environment repo's tree. OfflineError when out of reach."""
    import re

    _offline_check("list the Hub")
    org = org or config.hub_org()
    from huggingface_hub.hf_api import RepoFolder

    folder_re = re.compile(rf"^({'|'.join(TIERS)})-v\d{{1,6}}$")
    api = _api()
    out = []
    for env in sorted(set(env_ids)):
        repo_id = f"{org}/{env}"
        try:
            api.dataset_info(repo_id)  # existence, and a quick failure when the Hub is down (no backoff)
            folders = [e.path for e in api.list_repo_tree(repo_id, repo_type=REPO_TYPE)
                       if isinstance(e, RepoFolder) and folder_re.match(e.path)]
            if not folders:
                continue
            found = api.get_paths_info(repo_id, [f"{f}/{METADATA_FILE}" for f in folders], repo_type=REPO_TYPE)
        except Exception as e:  # noqa: BLE001
            if unreachable(e):
                raise OfflineError(f"the Hub at {api.endpoint} is unreachable ({describe(e)})") from None
            if not_found(e):
                continue
            raise HubError(f"listing {repo_id} failed: {describe(e)}") from e
        out += [f"{env}/{p.path.split('/')[0]}" for p in found]
    return sorted(set(out))


# ---------------------------------------------------------------------------------- writing

def sibling_metadata(repo_id: str, revision: str | None, skip: str,
                     token: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid metadata of every other tier in the repo, [folder: why] of those that are broken).

    A broken sibling never blocks publishing: it is reported, and left out of the env card.
    """
    from huggingface_hub import hf_hub_download

    api = _api(token)
    try:
        files = api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=revision)
    except Exception:  # noqa: BLE001 - a new repo or branch has nothing to add
        return [], []
    good, broken = [], []
    with tempfile.TemporaryDirectory(prefix="ogdata-card-") as tmp:
        for f in sorted(files):
            parts = f.split("/")
            if len(parts) != 2 or parts[1] != METADATA_FILE or parts[0] == skip:
                continue
            did = f"{repo_id.split('/')[-1]}/{parts[0]}"
            try:
                p = hf_hub_download(repo_id, f, repo_type=REPO_TYPE, revision=revision, local_dir=tmp,
                                    endpoint=api.endpoint, token=api.token)
                good.append(parse_remote_metadata(Path(p).read_bytes(), did))
            except (OgdataError, OSError) as e:
                broken.append(f"{parts[0]}: {e}")
            except Exception as e:  # noqa: BLE001 - a broken sibling must not block publishing
                broken.append(f"{parts[0]}: {describe(e)}")
    return good, broken


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def upload(path: Path, manifest: Mapping[str, Any], dataset_id: str, repo_id: str, *, card: str, env_card: str,
           token: str | None = None, revision: str | None = None) -> str:
    """One commit to `repo_id`: the tier folder (data, metadata.json, card) and the repo's env card.

    Files of the tier folder not in this upload are removed. The token is sent to the Hub only,
    never printed or logged. Returns the commit sha.
    """
    did = parse_id(dataset_id)
    token = token or config.hub_token()
    _offline_check("publish")
    api = _api(token)
    parent = path.parent
    stage_parent = str(parent) if os.access(parent, os.W_OK) else None  # hard links instead of copies
    try:
        api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ogdata-publish-", dir=stage_parent) as tmp:
            stage = Path(tmp)
            tier = stage / did.folder
            for rel in manifest:
                _link_or_copy(path / rel, tier / rel)
            _link_or_copy(path / METADATA_FILE, tier / METADATA_FILE)
            (tier / CARD_FILE).write_text(card)
            (stage / CARD_FILE).write_text(env_card)
            info = api.upload_folder(folder_path=stage, repo_id=repo_id, repo_type=REPO_TYPE, revision=revision,
                                     commit_message=f"Publish {did}", delete_patterns=[f"{did.folder}/*"])
    except OgdataError:
        raise
    except Exception as e:  # noqa: BLE001
        msg = describe(e).replace(token, "***") if token else describe(e)
        if unreachable(e):
            raise OfflineError(f"cannot publish {did}: the Hub at {api.endpoint} is unreachable ({msg})") from None
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = (" Check that HF_TOKEN has write access to the organisation" if status in (401, 403) else
                " (the Hub rejected the upload; see its message)")
        raise HubError(f"publishing {did} to {repo_id} failed: {msg}.{hint}") from None
    return info.oid
