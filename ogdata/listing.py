"""Which dataset ids exist: in the local cache, in the catalogue, and on the Hub."""

from __future__ import annotations

from ogdata.config import datasets_dir
from ogdata.ids import looks_like_id


def local_datasets() -> list[str]:
    """Ids of datasets installed under OGDATA_HOME/datasets/<env-id>/<tier>-v<N>."""
    root = datasets_dir()
    if not root.is_dir():
        return []
    out = []
    for env in root.iterdir():
        if env.is_dir():
            for tier in env.iterdir():
                did = f"{env.name}/{tier.name}"
                if looks_like_id(did) and (tier / "metadata.json").is_file():
                    out.append(did)
    return sorted(out)


def catalogue_datasets() -> list[str]:
    try:
        from ogdata.catalogue import catalogue_ids
    except ImportError:
        return []
    return sorted(catalogue_ids())


def list_datasets(remote: bool = False) -> list[str]:
    ids = set(local_datasets()) | set(catalogue_datasets())
    if remote:
        from ogdata.hub import list_remote

        ids |= set(list_remote())
    return sorted(ids)
