"""Dataset ids: `<env-id>/<tier>-v<N>`, parsed once and checked against the env registry."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ogdata import config
from ogdata.errors import InvalidIdError, closest

TIERS = ("good", "medium", "poor", "replay", "random")
MAX_ENV_ID = 64        # characters of an env id (a Hub repo name has 96)
MAX_VERSION_DIGITS = 6
_ID = re.compile(rf"^(?P<env>[a-z0-9][a-z0-9-]{{0,{MAX_ENV_ID - 2}}}[a-z0-9])/(?P<tier>[a-z]{{1,16}})"
                 rf"-v(?P<version>\d{{1,{MAX_VERSION_DIGITS}}})$")


@dataclass(frozen=True)
class DatasetId:
    env_id: str
    tier: str
    version: int

    def __str__(self) -> str:
        return f"{self.env_id}/{self.tier}-v{self.version}"

    @property
    def folder(self) -> str:
        """The tier-version folder inside the env's Hub repo and cache directory."""
        return f"{self.tier}-v{self.version}"


def looks_like_id(s: object) -> bool:
    return isinstance(s, str) and bool(_ID.match(s))


def parse_id(s: str, known_envs: Collection[str] | None = None) -> DatasetId:
    """Parse a dataset id; with `known_envs`, also check its env (errors suggest the closest spelling)."""
    m = _ID.match(s.strip()) if isinstance(s, str) and len(s) <= 2 * MAX_ENV_ID else None
    if not m:
        shown = repr(s) if len(repr(s)) <= 80 else repr(s)[:77] + "..."
        raise InvalidIdError(f"malformed dataset id {shown}: expected a string '<env-id>/<tier>-v<N>' with tier in "
                             f"{list(TIERS)}, an env id of at most {MAX_ENV_ID} characters and a version of at "
                             f"most {MAX_VERSION_DIGITS} digits, e.g. 'portfolio-synth/good-v0'")
    env, tier, version = m["env"], m["tier"], int(m["version"])
    if tier not in TIERS:
        raise InvalidIdError(f"unknown tier {tier!r} in {s!r}; tiers are {list(TIERS)}.{closest(tier, TIERS)}")
    if known_envs is not None and env not in known_envs:
        raise InvalidIdError(f"unknown environment {env!r} in dataset id {s!r}.{closest(env, known_envs)} "
                             "See `ogdata envs` for every environment and `ogdata list` for every dataset id.")
    return DatasetId(env, tier, version)


def installed_path(dataset_id: str | DatasetId) -> Path:
    """Where a dataset id is (or would be) installed: <OGDATA_HOME>/datasets/<env-id>/<tier>-v<N>."""
    did = dataset_id if isinstance(dataset_id, DatasetId) else parse_id(dataset_id)
    return config.datasets_dir() / did.env_id / did.folder


def hub_repo(dataset_id: str | DatasetId, org: str | None = None) -> tuple[str, str]:
    """(repo_id, folder) of a dataset id on the Hub: ("<org>/<env-id>", "<tier>-v<N>")."""
    did = dataset_id if isinstance(dataset_id, DatasetId) else parse_id(dataset_id)
    return f"{org or config.hub_org()}/{did.env_id}", did.folder
