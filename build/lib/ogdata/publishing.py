"""Publishing: a local dataset, verified, with its rendered cards, handed to the Hub as bytes."""

from __future__ import annotations

import os
import sys

from ogdata import cards, config, hub
from ogdata.errors import MetadataError
from ogdata.ids import parse_id
from ogdata.resolve import local_target
from ogdata.storage import verify as verify_files


def publish(path_or_id: str | os.PathLike, repo_id: str | None = None, token: str | None = None,
            revision: str | None = None) -> str:
    """Upload one dataset (data, metadata, its card and the repo's env card) in one commit; return its sha.

    The local copy is verified first; the repo (default `<OGDATA_HUB_ORG>/<env-id>`) is created
    when needed; files of the tier folder that are not in this upload are removed. Other tiers
    already in the repo feed the env card; a broken one is reported and left out, never blocking.
    The token (argument or HF_TOKEN) is sent to the Hub only, never printed or logged.
    """
    path = local_target(path_or_id)
    meta = verify_files(path)
    if not meta.get("dataset_id"):
        raise MetadataError(f"{path}: metadata has no dataset_id, so it has no place on the Hub; set one with "
                            "ogdata.storage.update_metadata(path, dataset_id='<env-id>/<tier>-v<N>')")
    did = parse_id(meta["dataset_id"])
    repo_id = repo_id or f"{config.hub_org()}/{did.env_id}"
    siblings, broken = hub.sibling_metadata(repo_id, revision, skip=did.folder, token=token)
    for b in broken:
        print(f"ogdata: warning: {repo_id}: tier {b}; left out of the environment card — republish that tier "
              "to repair it", file=sys.stderr)
    return hub.upload(path, meta["manifest"], str(did), repo_id, card=cards.render(path),
                      env_card=cards.render_env_card(did.env_id, [*siblings, meta]), token=token,
                      revision=revision)
