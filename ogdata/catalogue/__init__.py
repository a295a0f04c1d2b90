"""The catalogue: one recipe per environment (JSON, committed), naming every tier's dataset.

A recipe `ogdata/catalogue/<env-id>.json` (v0; version N: `ogdata/catalogue/vN/<env-id>.json`) says how each tier of that env is generated:
the behaviour-policy checkpoints (committed under ogdata/policies/weights/<env-id>/) with
their normalised scores and the thresholds that chose them, the rollout noise, the
transition count and the seed. `ogdata.generate.rebuild(dataset_id, out)` replays a recipe,
so a catalogue dataset can be rebuilt offline when the Hub is out of reach.
Recipes are written by scripts/train_behaviour.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ogdata.errors import InvalidIdError, MetadataError, closest
from ogdata.ids import TIERS, parse_id

CATALOGUE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = CATALOGUE_DIR.parent / "policies" / "weights"
RECIPE_FORMAT = "ogdata-recipe"
# the fields of a tier's recipe that every dataset of that tier records (and is checked against)
TIER_RECIPE_FIELDS = ("threshold", "target", "reached", "noise", "mixing", "policies", "note", "learned",
                      "band", "policy_source")


def _version_dir(version: int) -> Path:
    """v0 recipes sit in ogdata/catalogue/ itself (where they always have), v<N> ones in v<N>/."""
    return CATALOGUE_DIR if int(version) == 0 else CATALOGUE_DIR / f"v{int(version)}"


def recipe_path(env_id: str, version: int = 0) -> Path:
    return _version_dir(version) / f"{env_id}.json"


def catalogue_versions() -> list[int]:
    """Catalogue versions with at least one committed recipe."""
    found = {0} if any(CATALOGUE_DIR.glob("*.json")) else set()
    found |= {int(p.name[1:]) for p in CATALOGUE_DIR.glob("v*") if p.is_dir() and p.name[1:].isdigit()
              and any(p.glob("*.json"))}
    return sorted(found)


def catalogue_envs(version: int | None = None) -> list[str]:
    """Env ids that have a committed recipe (in `version`, or in any version when None)."""
    versions = catalogue_versions() if version is None else [int(version)]
    return sorted({p.stem for v in versions for p in _version_dir(v).glob("*.json")})


def latest_version(env_id: str) -> int | None:
    """The newest catalogue version with a recipe for `env_id` (None when it has none)."""
    have = [v for v in catalogue_versions() if recipe_path(env_id, v).is_file()]
    return max(have) if have else None


def catalogue_ids() -> list[str]:
    """Every catalogue dataset id, `<env-id>/<tier>-v<N>`, of every version."""
    return sorted(entries())


def recipe(env_id: str, version: int = 0) -> dict[str, Any]:
    """The committed recipe of an env's catalogue `version` (a clear error naming the fix if there is none)."""
    p = recipe_path(env_id, version)
    if not p.is_file():
        have = [v for v in catalogue_versions() if recipe_path(env_id, v).is_file()]
        if have:
            raise InvalidIdError(f"the catalogue has no v{version} recipe for {env_id!r}; it has "
                                 f"{', '.join(f'v{v}' for v in have)}")
        raise InvalidIdError(f"no catalogue recipe for environment {env_id!r}.{closest(env_id, catalogue_envs())} "
                             f"Train its behaviour policies with `python scripts/train_behaviour.py --env {env_id}` "
                             f"(envs with recipes: {catalogue_envs()})")
    try:
        r = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise MetadataError(f"{p}: not valid JSON ({e}); restore it from git") from e
    if r.get("format") != RECIPE_FORMAT or r.get("env_id") != env_id or int(r.get("version", 0)) != int(version):
        raise MetadataError(f"{p}: not an {RECIPE_FORMAT} v{version} recipe for {env_id!r}; restore it from git")
    return r


def tier_recipe(dataset_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(env recipe, tier recipe) of a catalogue dataset id."""
    did = parse_id(dataset_id)
    r = recipe(did.env_id, did.version)
    if did.tier not in r.get("tiers", {}):
        raise InvalidIdError(f"{dataset_id}: the v{did.version} recipe of {did.env_id} has no {did.tier!r} tier")
    return r, r["tiers"][did.tier]


def weights_path(ref: str) -> Path:
    """A committed checkpoint stem, given relative to ogdata/policies/weights/."""
    return WEIGHTS_DIR / ref


# -- recipe identity: what a catalogue recipe determines about a dataset's metadata -------------

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
    r, t = tier_recipe(dataset_id)
    return _identity(parse_id(dataset_id).tier, r, t)


def entries() -> dict[str, dict[str, Any]]:
    """{dataset_id: {"dataset_id", "recipe" (the tier's catalogue recipe), "expect" (its identity)}}."""
    out = {}
    for version in catalogue_versions():
        for env in catalogue_envs(version):
            r = recipe(env, version)
            tiers = r.get("tiers") or {}
            for tier in TIERS:
                if tier in tiers:
                    did = f"{env}/{tier}-v{version}"
                    out[did] = {"dataset_id": did, "recipe": tiers[tier], "expect": _identity(tier, r, tiers[tier])}
    return out


def is_catalogue_id(dataset_id: str) -> bool:
    """True when `dataset_id` names a tier of a committed recipe."""
    return str(dataset_id) in entries()


__all__ = ["CATALOGUE_DIR", "WEIGHTS_DIR", "catalogue_envs", "catalogue_ids", "catalogue_identity",
           "catalogue_versions", "entries", "is_catalogue_id", "latest_version", "recipe", "recipe_identity",
           "recipe_path", "tier_recipe", "weights_path"]
