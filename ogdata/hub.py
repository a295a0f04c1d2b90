"""The Hugging Face Hub side of ogdata: download, publish, list and verify datasets.

Layout on the Hub: one dataset repo per environment, `<org>/<env-id>`, one folder per
tier-version (`good-v0/` holding metadata.json, data/ and its own README.md card); the repo
root README.md is the environment card. One tier alone is
`snapshot_download(repo, repo_type="dataset", allow_patterns=["good-v0/*"])`.

Remote metadata is untrusted: a manifest naming a path outside the dataset is rejected before
anything is written, every file is checked against the manifest's sha256 in a staging
directory, and only a verified copy is renamed into place under a file lock, so any number of
processes downloading one id end with one good copy. HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE
are read at call time. When the Hub is out of reach, a catalogue id is rebuilt from its recipe.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ogdata import config
from ogdata.catalogue import TIER_RECIPE_FIELDS  # recipe fields copied into metadata["recipe"], checked here
from ogdata.errors import (
    DatasetNotFoundError,
    HubError,
    IntegrityError,
    InvalidIdError,
    MetadataError,
    OfflineError,
    OgdataError,
)

SOURCE_FILE = ".ogdata-source.json"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"
REPO_TYPE = "dataset"
_GLOB_CHARS = set("*?[]")


# ------------------------------------------------------------------------------- ids and paths

def _parse(dataset_id: str):
    from ogdata.ids import parse_id

    return parse_id(str(dataset_id), check_env=False)


def repo_for(dataset_id: str, org: str | None = None) -> tuple[str, str]:
    """(repo_id, folder) of a dataset id on the Hub: ("<org>/<env-id>", "<tier>-v<N>")."""
    did = _parse(dataset_id)
    return f"{org or config.hub_org()}/{did.env_id}", did.folder


def local_path(dataset_id: str) -> Path:
    """Where the id is (or would be) installed: <OGDATA_HOME>/datasets/<env-id>/<tier>-v<N>."""
    did = _parse(dataset_id)
    return config.datasets_dir() / did.env_id / did.folder


def read_source(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record beside an installed dataset ({} if there is none)."""
    f = Path(path) / SOURCE_FILE
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return {}


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
            out.append(str(_parse(f"{env}/{folder}")))
        except InvalidIdError:
            continue
    return sorted(out)


# ------------------------------------------------------------------------------------ catalogue

def recipe_identity(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a dataset's metadata that its catalogue recipe determines (dotted keys)."""
    rec = meta.get("recipe") or {}
    gen = rec.get("generation") or {}
    out: dict[str, Any] = {"tier": meta.get("tier"), "env_kwargs": meta.get("env_kwargs") or {}}
    out.update({f"recipe.{k}": rec[k] for k in TIER_RECIPE_FIELDS if k in rec})
    for k in ("seed", "transitions_requested"):
        if k in gen:
            out[f"recipe.generation.{k}"] = gen[k]
    if "training" in rec:
        out["recipe.training"] = rec["training"]
    return out


def _identity(tier: str, r: Mapping[str, Any], t: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"tier": tier, "env_kwargs": dict(r.get("env_kwargs") or {})}
    out.update({f"recipe.{k}": t[k] for k in TIER_RECIPE_FIELDS if k in t})
    out["recipe.generation.seed"] = int(t.get("seed", 0))
    if "transitions" in t:
        out["recipe.generation.transitions_requested"] = int(t["transitions"])
    if tier == "replay" and isinstance(r.get("training"), Mapping):
        out["recipe.training"] = {k: v for k, v in r["training"].items() if k != "learning_curve"}
    return out


def catalogue_identity(dataset_id: str) -> dict[str, Any]:
    """What recipe_identity() must be for a copy made by the catalogue recipe of `dataset_id`."""
    from ogdata.catalogue import tier_recipe

    r, t = tier_recipe(str(_parse(dataset_id)))
    return _identity(_parse(dataset_id).tier, r, t)


def catalogue() -> dict[str, dict[str, Any]]:
    """{dataset_id: {"dataset_id", "recipe" (the tier's catalogue recipe), "expect" (its identity)}}.

    Read from ogdata/catalogue/<env-id>.json through ogdata.catalogue; {} when there is none.
    """
    try:
        from ogdata.catalogue import catalogue_envs, recipe
    except ImportError:
        return {}
    from ogdata.ids import TIERS

    out = {}
    for env in catalogue_envs():
        r = recipe(env)
        tiers = r.get("tiers") or {}
        for tier in TIERS:
            if tier in tiers:
                did = f"{env}/{tier}-v{int(r.get('version', 0))}"
                out[did] = {"dataset_id": did, "recipe": tiers[tier], "expect": _identity(tier, r, tiers[tier])}
    return out


def list_datasets(remote: bool = False) -> list[str]:
    """Ids in the catalogue and installed locally, plus (remote=True) those on the Hub."""
    ids = set(catalogue()) | set(installed())
    if remote:
        ids |= set(list_remote())
    return sorted(ids)


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


def _unreachable(exc: BaseException) -> bool:
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


def _not_found(exc: BaseException) -> bool:
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    return any(isinstance(e, RepositoryNotFoundError | RevisionNotFoundError | EntryNotFoundError)
               for e in _chain(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ------------------------------------------------------------------ untrusted remote metadata

def check_remote_metadata(meta: Any, dataset_id: str) -> dict[str, Any]:
    """Validate metadata.json fetched from the Hub before trusting any path in it.

    IntegrityError for a manifest naming a path outside the dataset (absolute, '..', backslash,
    glob characters, control characters) or a wrong dataset id; MetadataError for the rest.
    """
    from ogdata.storage.format import validate_metadata
    from ogdata.storage.manifest import check_manifest_paths

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
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise IntegrityError(f"manifest entry for {rel!r} has an invalid size {size!r}")
    validate_metadata(meta, where=where)
    got = meta.get("dataset_id")
    if got is not None and got != str(dataset_id):
        raise IntegrityError(f"{where} describes {got!r}, not {dataset_id!r}; the repo folder holds the "
                             "wrong dataset — report it to the publisher")
    return meta


def _check_no_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p.is_symlink():
                raise IntegrityError(f"{p.relative_to(root)!s} is a symlink; datasets hold plain files only")


# ------------------------------------------------------------------------------------ download

def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _acceptable(path: Path, revision: str | None) -> bool:
    """An installed copy satisfies a request for `revision` (None: any copy will do)."""
    if not (path / METADATA_FILE).is_file():
        return False
    if revision is None:
        return True
    src = read_source(path)
    return revision in (src.get("revision"), src.get("commit")) or (
        len(revision) >= 7 and str(src.get("commit", "")).startswith(revision))


def _install(staged: Path, final: Path) -> None:
    """Rename a verified staged dataset into place (replacing an old copy when forced)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if final.exists():
        trash = final.parent / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(final, trash)
    os.rename(staged, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _lock(final: Path):
    from filelock import FileLock, Timeout

    final.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(final.parent / f".{final.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"ogdata: waiting for another process installing {final.parent.name}/{final.name} ...",
              file=sys.stderr)
        lock.acquire()
    for old in final.parent.glob(f".{final.name}.old-*"):  # left by a process killed mid-install
        shutil.rmtree(old, ignore_errors=True)
    return lock


def _write_source(path: Path, record: dict[str, Any]) -> None:
    (path / SOURCE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def download(dataset_id: str, revision: str | None = None, force: bool = False) -> Path:
    """Install a dataset from the Hub into OGDATA_HOME (verified, atomic) and return its path.

    An installed copy is returned as is unless `force` (or a different `revision` is asked
    for). Offline (HF_HUB_OFFLINE) or with the Hub out of reach, a catalogue id is rebuilt
    from its recipe; anything else raises OfflineError.
    """
    did = _parse(dataset_id)
    dataset_id = str(did)
    final = local_path(dataset_id)
    if not force and _acceptable(final, revision):
        return final
    if config.hub_offline():
        return _rebuild_or_fail(dataset_id, final, "HF_HUB_OFFLINE is set", force, revision)
    repo_id, folder = repo_for(dataset_id)
    endpoint = config.hub_endpoint()
    token = config.hub_token()
    where = f"{repo_id}@{revision or 'main'} on {endpoint}"
    try:
        info = _api(token).dataset_info(repo_id, revision=revision)
        commit = info.sha
        remote_files = {s.rfilename for s in (info.siblings or [])}
        if not remote_files:
            remote_files = set(_api(token).list_repo_files(repo_id, repo_type=REPO_TYPE, revision=commit))
    except Exception as e:  # noqa: BLE001 - classified below
        if _unreachable(e):
            return _rebuild_or_fail(dataset_id, final, f"the Hub at {endpoint} is unreachable ({_short(e)})",
                                    force, revision)
        if _not_found(e):
            raise DatasetNotFoundError(
                f"{dataset_id} not found: {where} does not exist (no such repo or revision). Check the id "
                "(`ogdata list --remote`), the revision, OGDATA_HUB_ORG and HF_ENDPOINT") from None
        raise HubError(f"the Hub refused {where}: {_short(e)}") from e
    tier_files = {f[len(folder) + 1:] for f in remote_files if f.startswith(folder + "/")}
    if METADATA_FILE not in tier_files:
        tiers = sorted({f.split("/")[0] for f in remote_files if f.endswith("/" + METADATA_FILE)})
        raise DatasetNotFoundError(f"{dataset_id} not found: {repo_id}@{commit[:12]} has no {folder}/ folder "
                                   f"(it holds {tiers or 'no datasets'}); check the id with `ogdata list --remote`")

    from huggingface_hub import hf_hub_download, snapshot_download

    # 1. the metadata alone, into a throw-away directory, validated before anything is written
    with tempfile.TemporaryDirectory(prefix="ogdata-meta-") as tmp:
        try:
            f = hf_hub_download(repo_id, f"{folder}/{METADATA_FILE}", repo_type=REPO_TYPE, revision=commit,
                                local_dir=tmp, endpoint=endpoint, token=token)
            meta_bytes = Path(f).read_bytes()
        except Exception as e:  # noqa: BLE001
            raise HubError(f"could not fetch {folder}/{METADATA_FILE} from {where}: {_short(e)}; "
                           "retry, the download resumes") from e
    try:
        meta = json.loads(meta_bytes)
    except ValueError as e:
        raise MetadataError(f"{folder}/{METADATA_FILE} in {where} is not valid JSON; the remote copy is "
                            "broken — report it to the publisher") from e
    check_remote_metadata(meta, dataset_id)
    missing = sorted(set(meta["manifest"]) - tier_files)
    if missing:
        raise IntegrityError(f"the Hub copy {repo_id}@{commit[:12]} is incomplete: {folder}/{missing[0]} "
                             f"(and {len(missing) - 1} more) listed in the manifest is not in the repo")

    # 2. the data, into a per-id staging directory (resumable), under the install lock
    lock = _lock(final)
    try:
        if not force and _acceptable(final, revision):  # another process finished meanwhile
            return final
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
            raise HubError(f"download of {dataset_id} from {where} was interrupted ({_short(e)}); nothing was "
                           "installed — run the same download again, finished files are kept") from e
        staged = staging / folder
        try:
            if (staged / METADATA_FILE).read_bytes() != meta_bytes:
                raise IntegrityError(f"{folder}/{METADATA_FILE} changed between two reads of commit {commit[:12]}")
            _check_no_links(staged)
            from ogdata.storage import verify

            verify(staged)
        except (IntegrityError, MetadataError) as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise type(e)(f"{dataset_id} from {repo_id}@{commit[:12]} failed verification, nothing was "
                          f"installed: {e}") from e
        _write_source(staged, {
            "dataset_id": dataset_id, "source": "hub", "rebuilt": False, "endpoint": endpoint,
            "repo_id": repo_id, "folder": folder, "revision": revision or "main", "commit": commit,
            "time": _now(),
        })
        _install(staged, final)
        shutil.rmtree(staging, ignore_errors=True)
        return final
    finally:
        lock.release()


def _rebuild_or_fail(dataset_id: str, final: Path, reason: str, force: bool, revision: str | None) -> Path:
    """Offline path: an installed copy if there is one (and not forced), else rebuild a catalogue id."""
    if not force and _acceptable(final, revision):
        return final
    if revision is not None:
        have = read_source(final)
        have = ("rebuilt from its recipe" if have.get("rebuilt") else f"commit {have.get('commit')}") \
            if (final / METADATA_FILE).is_file() else None
        raise OfflineError(f"{reason}; revision {revision!r} of {dataset_id} is not installed "
                           f"({'the installed copy is ' + have if have else 'nothing is installed'}) and a rebuild "
                           "follows the catalogue recipe, not a Hub revision. Connect to the Hub and retry")
    entry = catalogue().get(dataset_id)
    if entry is None:
        raise OfflineError(f"{reason}, and {dataset_id} is not installed ({final}) nor in the catalogue, so it "
                           "cannot be rebuilt offline. Connect to the Hub (unset HF_HUB_OFFLINE, check "
                           "HF_ENDPOINT) and run `ogdata download` again")
    try:
        from ogdata.generate import rebuild
    except ImportError as e:
        raise OfflineError(f"{reason}; {dataset_id} is in the catalogue and could be rebuilt from its recipe, "
                           f"but the generator is not available ({e}). Connect to the Hub and retry") from e
    lock = _lock(final)
    try:
        if not force and (final / METADATA_FILE).is_file():
            return final
        print(f"ogdata: {reason}. Rebuilding {dataset_id} from its recipe (environment + behaviour policy); "
              "this can take a while.", file=sys.stderr)
        # a sibling of the final directory, so the generator finds an installed replay tier for SACo
        out = final.parent / f".{final.name}.rebuild"
        shutil.rmtree(out, ignore_errors=True)
        try:
            rebuild(dataset_id, out)
            from ogdata.storage import verify
            from ogdata.storage.format import read_metadata

            verify(out)
            got = read_metadata(out).get("dataset_id")
            if got not in (None, dataset_id):
                raise IntegrityError(f"the rebuild of {dataset_id} produced {got!r}")
            _write_source(out, {"dataset_id": dataset_id, "source": "rebuilt", "rebuilt": True,
                                "reason": reason, "recipe": entry.get("recipe"), "time": _now()})
            _install(out, final)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return final
    finally:
        lock.release()


# ------------------------------------------------------------------------------------- publish

def _resolve_local(path_or_id: str | os.PathLike) -> Path:
    p = Path(path_or_id)
    if (p / METADATA_FILE).is_file():
        return p
    from ogdata.ids import looks_like_id

    if isinstance(path_or_id, str) and looks_like_id(path_or_id):
        q = local_path(path_or_id)
        if (q / METADATA_FILE).is_file():
            return q
        raise DatasetNotFoundError(f"{path_or_id} is not installed ({q}); generate or download it first")
    raise DatasetNotFoundError(f"no dataset at {str(p)!r} ({METADATA_FILE} missing); pass a dataset "
                               "directory or an installed id")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _remote_tier_metadata(api, repo_id: str, revision: str | None, skip: str) -> list[dict[str, Any]]:
    """metadata.json of every other tier already in the repo (for the environment card)."""
    from huggingface_hub import hf_hub_download

    try:
        files = api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=revision)
    except Exception:  # noqa: BLE001 - a new repo or branch has nothing to add
        return []
    out = []
    with tempfile.TemporaryDirectory(prefix="ogdata-card-") as tmp:
        for f in sorted(files):
            parts = f.split("/")
            if len(parts) == 2 and parts[1] == METADATA_FILE and parts[0] != skip:
                try:
                    p = hf_hub_download(repo_id, f, repo_type=REPO_TYPE, revision=revision, local_dir=tmp,
                                        endpoint=api.endpoint, token=api.token)
                    out.append(json.loads(Path(p).read_text()))
                except Exception:  # noqa: BLE001, S112 - a broken sibling must not block publishing
                    continue
    return out


def publish(path_or_id: str | os.PathLike, repo_id: str | None = None, token: str | None = None,
            revision: str | None = None) -> str:
    """Upload one dataset (data, metadata, its card and the repo's env card) in one commit; return its sha.

    The local copy is verified first; the repo (default `<OGDATA_HUB_ORG>/<env-id>`) is created
    when needed; files of the tier folder that are not in this upload are removed. The token
    (argument or HF_TOKEN) is sent to the Hub only, never printed or logged.
    """
    from ogdata import cards
    from ogdata.storage import verify
    from ogdata.storage.format import read_metadata

    path = _resolve_local(path_or_id)
    verify(path)
    meta = read_metadata(path)
    if not meta.get("dataset_id"):
        raise MetadataError(f"{path}: metadata has no dataset_id, so it has no place on the Hub; set one with "
                            "ogdata.storage.update_metadata(path, dataset_id='<env-id>/<tier>-v<N>')")
    did = _parse(meta["dataset_id"])
    repo_id = repo_id or f"{config.hub_org()}/{did.env_id}"
    token = token or config.hub_token()
    if config.hub_offline():
        raise OfflineError("HF_HUB_OFFLINE is set; unset it to publish")
    api = _api(token)
    try:
        api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True)
        siblings = _remote_tier_metadata(api, repo_id, revision, skip=did.folder)
        with tempfile.TemporaryDirectory(prefix="ogdata-publish-", dir=_stage_parent(path)) as tmp:
            stage = Path(tmp)
            tier = stage / did.folder
            for rel in meta["manifest"]:
                _link_or_copy(path / rel, tier / rel)
            _link_or_copy(path / METADATA_FILE, tier / METADATA_FILE)
            (tier / CARD_FILE).write_text(cards.render(path))
            (stage / CARD_FILE).write_text(cards.render_env_card(did.env_id, [*siblings, meta]))
            info = api.upload_folder(folder_path=stage, repo_id=repo_id, repo_type=REPO_TYPE, revision=revision,
                                     commit_message=f"Publish {did}", delete_patterns=[f"{did.folder}/*"])
    except OgdataError:
        raise
    except Exception as e:  # noqa: BLE001
        msg = _short(e).replace(token, "***") if token else _short(e)
        if _unreachable(e):
            raise OfflineError(f"cannot publish {did}: the Hub at {api.endpoint} is unreachable ({msg})") from None
        raise HubError(f"publishing {did} to {repo_id} failed: {msg}. Check that HF_TOKEN has write access "
                       "to the organisation") from None
    return info.oid


def _stage_parent(path: Path) -> str | None:
    """Stage next to the dataset when possible, so files can be hard-linked instead of copied."""
    parent = path.parent
    return str(parent) if os.access(parent, os.W_OK) else None


# ------------------------------------------------------------------------------------- listing

def list_remote(org: str | None = None, env_ids: Iterable[str] | None = None) -> list[str]:
    """Dataset ids on the Hub, read from each environment repo's tree (the catalogue's and registry's
    environments unless `env_ids` is given). Raises OfflineError when the Hub is out of reach."""
    import re

    if config.hub_offline():
        raise OfflineError("HF_HUB_OFFLINE is set; unset it to list the Hub")
    org = org or config.hub_org()
    if env_ids is None:
        try:
            from ogdata.catalogue import catalogue_envs

            envs = set(catalogue_envs())
        except ImportError:
            envs = set()
        try:
            from ogdata.envs.registry import list_envs

            envs |= set(list_envs())
        except OgdataError:
            pass
    else:
        envs = set(env_ids)
    from huggingface_hub.hf_api import RepoFolder

    folder_re = re.compile(r"^(good|medium|poor|replay|random)-v\d+$")
    api = _api()
    out = []
    for env in sorted(envs):
        repo_id = f"{org}/{env}"
        try:
            api.dataset_info(repo_id)  # existence, and a quick failure when the Hub is down (no backoff)
            folders = [e.path for e in api.list_repo_tree(repo_id, repo_type=REPO_TYPE)
                       if isinstance(e, RepoFolder) and folder_re.match(e.path)]
            if not folders:
                continue
            found = api.get_paths_info(repo_id, [f"{f}/{METADATA_FILE}" for f in folders], repo_type=REPO_TYPE)
        except Exception as e:  # noqa: BLE001
            if _unreachable(e):
                raise OfflineError(f"the Hub at {api.endpoint} is unreachable ({_short(e)})") from None
            if _not_found(e):
                continue
            raise HubError(f"listing {repo_id} failed: {_short(e)}") from e
        out += [f"{env}/{p.path.split('/')[0]}" for p in found]
    return sorted(set(out))


# ------------------------------------------------------------------------------------- verify

def verify(target: str | os.PathLike) -> dict[str, Any]:
    """Check a dataset (path or installed id) against its manifest and, for catalogue ids, its recipe.

    Returns {"path", "dataset_id", "files", "recipe": "match" | "not in catalogue" | "no catalogue"};
    raises IntegrityError naming the first bad file or the differing recipe keys.
    """
    from ogdata.storage import verify as verify_files
    from ogdata.storage.format import read_metadata

    path = _resolve_local(target)
    verify_files(path)
    meta = read_metadata(path)
    report = {"path": str(path), "dataset_id": meta.get("dataset_id"), "files": len(meta["manifest"])}
    cat = catalogue()
    if not cat:
        report["recipe"] = "no catalogue"
        return report
    entry = cat.get(str(meta.get("dataset_id")))
    if entry is None:
        report["recipe"] = "not in catalogue"
        return report
    expected, got = entry["expect"], recipe_identity(meta)
    diff = sorted(k for k in expected if _canon(expected[k]) != _canon(got.get(k)))
    if diff:
        k = diff[0]
        raise IntegrityError(f"{path}: recipe differs from the catalogue's for {meta.get('dataset_id')} in "
                             f"{diff} (e.g. {k}: dataset {_clip(got.get(k))}, catalogue {_clip(expected[k])}); "
                             "this copy was not made by the catalogue recipe — re-download or regenerate it")
    report["recipe"] = "match"
    return report


def _canon(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def _clip(x: Any, n: int = 80) -> str:
    s = _canon(x)
    return s if len(s) <= n else s[: n - 1] + "…"


# -------------------------------------------------------------------------------- CLI glue

def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _esc(x: Any) -> str:
    from rich.markup import escape

    return escape(str(x))


def run_download(ids: Iterable[str], revision: str | None = None, force: bool = False) -> int:
    """`ogdata download ID...`: print each installed path; 1 if any failed."""
    out, err, status = _console(), _console(stderr=True), 0
    for i in ids:
        try:
            p = download(i, revision=revision, force=force)
        except OgdataError as e:
            err.print(f"[red]error[/red] {_esc(i)}: {_esc(e)}", soft_wrap=True)
            status = 1
            continue
        src = read_source(p)
        how = "rebuilt from its recipe" if src.get("rebuilt") else f"{src.get('repo_id', '?')}@{str(src.get('commit', '?'))[:12]}"
        out.print(_esc(f"{i} -> {p} ({how})"), soft_wrap=True)
    return status


def run_publish(target: str, repo_id: str | None = None, revision: str | None = None,
                token: str | None = None) -> int:
    """`ogdata publish ID|PATH`: token from --token or HF_TOKEN, never echoed."""
    try:
        sha = publish(target, repo_id=repo_id, token=token, revision=revision)
    except OgdataError as e:
        _console(stderr=True).print(f"[red]error[/red] {_esc(e)}", soft_wrap=True)
        return 1
    _console().print(_esc(f"published {target} at commit {sha[:12]} on {config.hub_endpoint()}"), soft_wrap=True)
    return 0


def run_list(remote: bool = False) -> int:
    """`ogdata list [--remote]`: a table of catalogue, local and (optionally) Hub datasets."""
    from rich.table import Table

    cat, local = catalogue(), set(installed())
    remote_ids: set[str] = set()
    status, note = 0, None
    if remote:
        try:
            remote_ids = set(list_remote())
        except OgdataError as e:
            status, note = 1, f"Hub not listed: {e}"
    table = Table(title=f"ogdata datasets (OGDATA_HOME={config.home()})")
    table.add_column("dataset")
    table.add_column("catalogue")
    table.add_column("local")
    if remote:
        table.add_column(f"hub ({config.hub_org()})")
    for i in sorted(set(cat) | local | remote_ids):
        src = read_source(local_path(i)) if i in local else {}
        loc = ("rebuilt" if src.get("rebuilt") else f"@{str(src['commit'])[:7]}" if src.get("commit") else "yes") \
            if i in local else "-"
        row = [i, "yes" if i in cat else "-", loc]
        if remote:
            row.append("yes" if i in remote_ids else "-")
        table.add_row(*row)
    con = _console()
    con.print(table)
    if not cat:
        con.print(_esc("(no catalogue in this install: ogdata/catalogue/*.json is absent)"))
    if note:
        _console(stderr=True).print(f"[yellow]{_esc(note)}[/yellow]", soft_wrap=True)
    return status


def run_verify(target: str) -> int:
    """`ogdata verify ID|PATH`: 0 when every file and (for catalogue ids) the recipe match."""
    try:
        r = verify(target)
    except OgdataError as e:
        _console(stderr=True).print(f"[red]FAILED[/red] {_esc(target)}: {_esc(e)}", soft_wrap=True)
        return 1
    recipe = {"match": "recipe matches the catalogue",
              "not in catalogue": "not a catalogue id, recipe not compared",
              "no catalogue": "no catalogue in this install (ogdata/catalogue/*.json), recipe not compared"}
    _console().print(_esc(f"OK {target}: {r['files']} files match the manifest; {recipe[r['recipe']]}"),
                    soft_wrap=True)
    return 0
