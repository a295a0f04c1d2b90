"""Dataset ids: `<env-id>/<tier>-v<N>`, parsed once and checked against the env registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ogdata.errors import InvalidIdError, closest

TIERS = ("good", "medium", "poor", "replay", "random")
_ID = re.compile(r"^(?P<env>[a-z0-9][a-z0-9-]*[a-z0-9])/(?P<tier>[a-z]+)-v(?P<version>\d+)$")


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


def looks_like_id(s: str) -> bool:
    return bool(_ID.match(s))


def parse_id(s: str, check_env: bool = True) -> DatasetId:
    """Parse and validate a dataset id; errors suggest the closest valid spelling."""
    m = _ID.match(s.strip()) if isinstance(s, str) else None
    if not m:
        raise InvalidIdError(f"malformed dataset id {s!r}: expected '<env-id>/<tier>-v<N>' with tier in "
                             f"{list(TIERS)}, e.g. 'portfolio-synth/good-v0'")
    env, tier, version = m["env"], m["tier"], int(m["version"])
    if tier not in TIERS:
        raise InvalidIdError(f"unknown tier {tier!r} in {s!r}; tiers are {list(TIERS)}.{closest(tier, TIERS)}")
    if check_env:
        from ogdata.envs.registry import list_envs

        envs = list_envs()
        if env not in envs:
            raise InvalidIdError(f"unknown environment {env!r} in dataset id {s!r}.{closest(env, envs)} "
                                 "See `ogdata list` for every id.")
    return DatasetId(env, tier, version)
