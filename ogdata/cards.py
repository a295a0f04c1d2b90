"""Dataset cards: the README.md the Hub shows, rendered from a dataset's metadata alone.

A card is a pure function of metadata.json (+ the env registry's description), so the copy
committed under dataset_cards/ and the copy uploaded to the Hub are the same text, and a test
can tell when they drift. The YAML front matter follows the Hub's dataset-card schema
(huggingface_hub.DatasetCard parses it); the viewer is off because the arrays are zarr, which
the Hub's viewer cannot read — ogdata (or zarr) reads them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ogdata.catalogue import recipe_identity
from ogdata.envs.registry import env_spec
from ogdata.errors import OgdataError
from ogdata.ids import TIERS
from ogdata.storage.format import METADATA_FILE, read_metadata

PROJECT_URL = "https://github.com/ogdata/ogdata"
BASELINES_HEADING = "## Baseline results\n"
LICENCE_HEADING = "## Licence and attribution\n"

# Where the prices come from decides the licence of a derived dataset.
PRICE_SOURCES: dict[str, dict[str, str]] = {
    "skfolio": {
        "license": "bsd-3-clause",
        "name": "skfolio (`skfolio.datasets`)",
        "text": "Daily adjusted close prices from `skfolio.datasets` (skfolio, BSD-3-Clause licence, "
                "Copyright (c) skfolio developers). skfolio ships these data **for testing and examples**, "
                "not for commercial use; the same restriction applies to this derived dataset.",
    },
    "arch": {
        "license": "ncsa",
        "name": "arch (`arch.data`)",
        "text": "Prices from `arch.data` (the arch package by Kevin Sheppard, University of "
                "Illinois/NCSA Open Source Licence): daily index levels and WTI crude, or the monthly "
                "Fama–French factors it ships from Kenneth French's data library. Keep this notice with any "
                "redistribution.",
    },
    "gym-anytrading": {
        "license": "mit",
        "name": "gym-anytrading (`gym_anytrading/datasets/data`)",
        "text": "Hourly EUR/USD ask prices of 2017 shipped in gym-anytrading (MIT licence, Copyright (c) 2019 "
                "Mohammad Amin Haghpanah). Keep this notice with any redistribution.",
    },
    "synthetic": {
        "license": "apache-2.0",
        "name": "synthetic (simulated by the environment)",
        "text": "All prices and order flow are simulated by the environment from its documented "
                "parameters; no third-party market data is included. Released under Apache-2.0, like ogdata.",
    },
    "synthetic-skfolio": {
        "license": "apache-2.0",
        "name": "synthetic, calibrated on skfolio's S&P 500 stocks",
        "text": "Prices are simulated by the environment; only the model's parameters were calibrated on the "
                "training-period returns of the 20 S&P 500 stocks in `skfolio.datasets` (skfolio, BSD-3-Clause). "
                "No third-party price data is included. Released under Apache-2.0, like ogdata.",
    },
    "synthetic-arch": {
        "license": "apache-2.0",
        "name": "synthetic, calibrated on arch's S&P 500 index",
        "text": "Prices are simulated by the environment; only the model's parameters were calibrated on the "
                "training-period returns of the S&P 500 index in `arch.data` (arch, NCSA licence). No "
                "third-party price data is included. Released under Apache-2.0, like ogdata.",
    },
    "synthetic-arch-fits": {
        "license": "apache-2.0",
        "name": "synthetic, model parameters fitted to data shipped with arch",
        "text": "Prices are simulated by the environment; only the model's parameters were fitted to data that "
                "`arch.data` ships (the Fama–French risk-free rate, the S&P 500 index, the VIX, Brent and WTI; "
                "arch, NCSA licence; `ogdata/envs/model_fits.py`). No third-party price data is included. "
                "Released under Apache-2.0, like ogdata.",
    },
    "unknown-real": {
        "license": "other",
        "name": "real market data (source not recorded)",
        "text": "This environment uses real prices but the dataset does not record their source; check the "
                "environment's documentation for the data licence before redistributing.",
    },
}

TIER_MEANING = {
    "good": "a behaviour policy trained online until it reached the Good target return, rolled out with "
            "exploration noise",
    "medium": "a behaviour policy stopped at the Medium target return (roughly half-way between random and "
              "expert), rolled out with exploration noise",
    "poor": "a behaviour policy at the Poor target return (a little above random): an early checkpoint, "
            "mixed with uniformly random actions where even the untrained policy scores well above the target, "
            "rolled out with exploration noise",
    "replay": "every transition the online learner saw while training (its replay buffer), from random to "
              "its final policy — the SACo reference",
    "random": "the uniform-random reference policy — the TQ = 0 reference",
}

_SIZE_BUCKETS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                 (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                 (10_000_000_000, "1B<n<10B")]


# ------------------------------------------------------------------------------------ helpers

def _metadata(dataset: Any) -> tuple[dict[str, Any], Path | None]:
    """(metadata, path or None) from a Dataset, a dataset directory or a metadata dict."""
    if isinstance(dataset, Mapping):
        return dict(dataset), None
    if isinstance(dataset, str | os.PathLike):
        return read_metadata(dataset), Path(dataset)
    meta = getattr(dataset, "metadata", None)
    if isinstance(meta, Mapping):
        path = getattr(dataset, "path", None)
        return dict(meta), Path(path) if path is not None else None
    raise TypeError(f"cannot render a card for {type(dataset).__name__}: pass a Dataset, a path or a metadata dict")


def size_category(n: int) -> str:
    """The Hub's size bucket for n rows (transitions)."""
    for bound, label in _SIZE_BUCKETS:
        if n < bound:
            return label
    return "n>1T"


def _num(x: Any) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _cell(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, int | float | bool):
        return _num(x)
    if isinstance(x, str):
        s = x
    elif isinstance(x, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in x):
        s = "[" + ", ".join(_num(v) for v in x) + "]" if len(x) <= 8 else f"({len(x)} values)"
    elif isinstance(x, list) and x and all(isinstance(v, list) for v in x):
        s = f"({len(x)} × {len(x[0])} values)"
    else:
        s = json.dumps(x, sort_keys=True, default=str, ensure_ascii=False)
    return s.replace("|", "\\|").replace("\n", " ")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k in sorted(d, key=str):
        v = d[k]
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def recipe_digest(identity: Mapping[str, Any] | None) -> str:
    """sha256 of a recipe identity (ogdata.catalogue.recipe_identity / catalogue_identity), canonical JSON.

    The card prints it, so a test can tell a card rendered from an older recipe."""
    text = json.dumps(identity or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_DIGEST_RE = re.compile(r"^Recipe identity sha256: `([0-9a-f]{64})`", re.M)


def card_recipe_digest(card_text: str) -> str | None:
    """The recipe digest a rendered card names (None if it names none)."""
    m = _DIGEST_RE.search(card_text)
    return m.group(1) if m else None


def _spec(env_id: str | None):
    if not env_id:
        return None
    try:
        return env_spec(env_id)
    except OgdataError:  # a card renders for envs this install does not know
        return None


# which package's prices each family of real-price environments reads by default, and each named
# universe (the `universe` kwarg; ogdata/envs/prices.py)
_FAMILY_SOURCE = {"portfolio": "skfolio", "trading": "arch"}
_UNIVERSE_SOURCE = {"sp500": "skfolio", "sp500-index": "arch", "ff": "arch", "wti": "arch", "eurusd": "gym-anytrading"}
# synthetic families whose model parameters are fitted to arch's data (ogdata/envs/model_fits.py)
_FAMILY_FITS = ("option-exercise", "stat-arb")


def price_source(meta: Mapping[str, Any]) -> str:
    """Which entry of PRICE_SOURCES a dataset's prices come from (recorded, or read off its env)."""
    recorded = meta.get("price_source") or (meta.get("recipe") or {}).get("price_source")
    if isinstance(recorded, str) and recorded in PRICE_SOURCES:
        return recorded
    spec = _spec(meta.get("env_id"))
    kwargs = {**(dict(spec.kwargs) if spec else {}), **(meta.get("env_kwargs") or {})}
    hay = json.dumps([recorded, kwargs, meta.get("env_id"), spec.core if spec else None], default=str).lower()
    if "skfolio" in hay:
        return "skfolio"
    if re.search(r"(?<![a-z])arch(?![a-z])", hay):
        return "arch"
    family = spec.family if spec is not None else ""
    if kwargs.get("prices") is not None:  # the user's own price array
        return "unknown-real"
    if kwargs.get("source") == "real":
        if "universe" in kwargs:
            return _UNIVERSE_SOURCE.get(str(kwargs["universe"]), "unknown-real")
        return _FAMILY_SOURCE.get(family, "unknown-real")
    if family in _FAMILY_SOURCE and kwargs.get("source") is not None:
        return f"synthetic-{_FAMILY_SOURCE[family]}"
    if family in _FAMILY_FITS:
        return "synthetic-arch-fits"
    if spec is not None and "realdata" in spec.extras:
        return "unknown-real"
    return "synthetic"


def _space(js: Any) -> str:
    if not isinstance(js, Mapping):
        return "—"
    t = js.get("type")
    if t == "Box":
        lo, hi = js.get("low"), js.get("high")
        bounds = f"[{_cell(lo)}, {_cell(hi)}]" if not isinstance(lo, list) and not isinstance(hi, list) \
            else "per-dimension bounds"
        return f"Box(shape {tuple(js.get('shape', []))}, {js.get('dtype')}, {bounds})"
    if t == "Discrete":
        start = js.get("start", 0)
        return f"Discrete({js.get('n')})" + (f" starting at {start}" if start else "")
    if t == "MultiDiscrete":
        return f"MultiDiscrete({js.get('nvec')})"
    if t == "MultiBinary":
        return f"MultiBinary({js.get('n')})"
    if t in ("Dict", "Tuple"):
        sub = js.get("spaces") or {}
        items = sub.items() if isinstance(sub, Mapping) else enumerate(sub)
        return f"{t}(" + ", ".join(f"{k}: {_space(v)}" for k, v in items) + ")"
    return _cell(js)


def _measure(meta: Mapping[str, Any], *names: str) -> Any:
    m = meta.get("measures") or {}
    for n in names:
        for k in (n, n.upper(), n.lower()):
            if k in m:
                v = m[k]
                return v.get("value") if isinstance(v, Mapping) else v
    return None


# measures keys that repeat what the card says elsewhere
_DUPLICATES = {"dataset_id", "env_id", "tier", "num_transitions", "num_episodes", "multi_agent",
               "reference_returns", "agent_return_stats", "agent_tq"}

AGENT_NOTE = ("On a general-sum id (each agent on its own reward) a tier is a *joint* behaviour policy and is "
              "defined, like every multi-agent tier, by the joint score: the mean over agents of their returns "
              "(TQ above, against the best-known joint expert; no equilibrium is claimed). Each agent's own score "
              "is against its own column of the same joint random and expert policies: an agent above 100 earns "
              "more than in the expert joint policy, typically at another's expense. Joint SACo counts (global "
              "state ‖ joint action) cells; OACo each agent's (observation, own action) cells.")


def _return_stat(meta: Mapping[str, Any], stat: str) -> Any:
    m = meta.get("measures") or {}
    for key in ("return_stats", "returns"):
        if isinstance(m.get(key), Mapping) and stat in m[key]:
            return m[key][stat]
    return m.get(f"return_{stat}")


# Above this share of its transitions being cells of their own, the paper's 100-bin grid is saturated.
SATURATED_SHARE = 0.9

COVERAGE_NOTE = ("TQ (trajectory quality: 0 = random, 1 = expert) after Schweighofer et al. (2022). Coverage is "
                 "relative to the env's Replay tier, by exact counts of binned (state, action) pairs. **SACo (coarse "
                 "grid)** is ogdata's informative variant: the same ratio on a low-dimensional grid fitted on the "
                 "Replay tier alone (its top principal components of state and of action, with as many bins as keep "
                 "the Replay tier from filling more than half its transitions' worth of cells). **SACo (100 bins)** "
                 "is the paper's grid, 100 bins per dimension; the paper defines its measures for deterministic "
                 "MDPs, and on continuous, stochastic environments nearly every transition is a cell of its own, so "
                 "the count equals the number of transitions and the ratio saturates at ≈ 1 for every tier of equal "
                 "size. It is labelled *saturated* when at least 90 % of this dataset's transitions are cells of "
                 "their own (a Replay tier that revisits the same real market days can stay below). It is kept for "
                 "comparison with the paper, not to rank tiers.")


ENV_COVERAGE_NOTE = ("SACo (coarse grid) is ogdata's informative coverage measure; SACo (100 bins) is the paper's grid, "
                     "defined for deterministic MDPs: on continuous, stochastic environments nearly every transition "
                     "is a cell of its own and it saturates at ≈ 1 (each tier's card says when). Both are relative "
                     "to the Replay tier.")


def saco_100_label(meta: Mapping[str, Any]) -> str:
    """'SACo (100 bins, saturated)' when nearly every transition is its own 100-bin cell, else 'SACo (100 bins)'."""
    u, n = _measure(meta, "unique_state_actions"), meta.get("num_transitions")
    saturated = isinstance(u, int | float) and isinstance(n, int | float) and n > 0 and u >= SATURATED_SHARE * n
    return "SACo (100 bins, saturated)" if saturated else "SACo (100 bins)"


def _headline(meta: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """TQ, SACo (coarse grid first, then the paper's 100-bin grid), mean return ± std and the normalised score."""
    rows = [("TQ", _measure(meta, "tq")), ("SACo (coarse grid)", _measure(meta, "saco_coarse")),
            (saco_100_label(meta), _measure(meta, "saco"))]
    mean, std = _return_stat(meta, "mean"), _return_stat(meta, "std")
    if mean is not None:
        rows.append(("episode return, mean ± std", f"{_num(float(mean))} ± {_num(float(std or 0.0))}"))
        refs = meta.get("reference_returns") or {}
        lo, hi = refs.get("random"), refs.get("expert")
        if isinstance(lo, int | float) and isinstance(hi, int | float) and hi != lo:
            rows.append(("normalised score of the mean return", 100.0 * (float(mean) - lo) / (hi - lo)))
    return rows


def _agent_section(meta: Mapping[str, Any]) -> list[str]:
    """A multi-agent dataset's per-agent table: each agent's return, own normalised score (general-sum ids) and OACo."""
    m = meta.get("measures") or {}
    stats = m.get("agent_return_stats")
    if not isinstance(stats, Mapping) or not stats:
        return []
    tqs = m.get("agent_tq") if isinstance(m.get("agent_tq"), Mapping) else {}
    oc = m.get("oaco_coarse_per_agent") if isinstance(m.get("oaco_coarse_per_agent"), Mapping) else {}
    of = m.get("oaco_per_agent") if isinstance(m.get("oaco_per_agent"), Mapping) else {}
    refs = meta.get("agent_reference_returns") or {}
    rows = []
    for a, st in stats.items():
        mean, std = st.get("mean"), st.get("std")
        ret = "–" if mean is None else f"{_num(float(mean))} ± {_num(float(std or 0.0))}"
        t = tqs.get(a)
        ref = refs.get(a) or {}
        rows.append((a, ret, "–" if t is None else _num(100.0 * float(t)),
                     "–" if not ref else f"{_num(ref.get('random'))} / {_num(ref.get('expert'))}",
                     "–" if oc.get(a) is None else _num(oc[a]), "–" if of.get(a) is None else _num(of[a])))
    out = ["Per agent (episode return; own normalised score and references where the id is general-sum):\n",
           _table(["agent", "episode return, mean ± std", "own normalised score", "own R_random / R_expert",
                   "OACo (coarse grid)", "OACo (100 bins)"], rows) + "\n"]
    if tqs:
        out.append(AGENT_NOTE + "\n")
    return out


def _front_matter(fields: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _tags(metas: Iterable[Mapping[str, Any]], spec) -> list[str]:
    """Hub tags: the family, and every tier the card describes (one for a tier card, all for an env card)."""
    metas = list(metas)
    tags = ["ogdata", "offline-reinforcement-learning", "reinforcement-learning", "finance", "markets"]
    tags.append("multi-agent" if any(m.get("multi_agent") for m in metas) else "single-agent")
    family = spec.family if spec is not None and spec.family else None
    tiers = {str(m.get("tier")) for m in metas if m.get("tier")}
    for t in [family, *[t for t in TIERS if t in tiers], *sorted(tiers - set(TIERS))]:
        if t and t not in tags:
            tags.append(str(t))
    return tags


def _did(meta: Mapping[str, Any]) -> tuple[str, str, str]:
    """(dataset_id, env_id, folder) with fallbacks for metadata that lacks an id."""
    did = meta.get("dataset_id") or f"{meta.get('env_id') or 'dataset'}/{meta.get('tier') or 'custom'}-v0"
    env, _, folder = str(did).partition("/")
    return str(did), meta.get("env_id") or env, folder


# ------------------------------------------------------------------------------------- render

def render(dataset: Any) -> str:
    """The tier card (README.md of `<tier>-v<N>/`): front matter + description, env, recipe, size,
    spaces, measures, plots, baselines, licence and attribution."""
    meta, path = _metadata(dataset)
    did, env_id, folder = _did(meta)
    spec = _spec(env_id)
    source = PRICE_SOURCES[price_source(meta)]
    n, e = int(meta.get("num_transitions", 0)), int(meta.get("num_episodes", 0))
    tier = meta.get("tier") or folder.split("-v")[0]
    fm = _front_matter({
        "license": source["license"],
        "pretty_name": f"ogdata {did}",
        "tags": _tags([meta], spec),
        "task_categories": ["reinforcement-learning"],
        "size_categories": [size_category(n)],
        "viewer": False,
        "configs": [{"config_name": folder, "data_files": [{"split": "train", "path": f"{folder}/metadata.json"}]}],
    })
    out = [fm, f"# {did}\n"]
    kind = "multi-agent" if meta.get("multi_agent") else "single-agent"
    out.append(f"An offline reinforcement-learning dataset of **{_num(n)} transitions** in **{_num(e)} episodes**, "
               f"collected in the {kind} market environment `{env_id}` by {TIER_MEANING.get(tier, f'the {tier} policy')}. "
               f"Part of [ogdata]({PROJECT_URL}), the D4RL / OG-MARL of markets: every dataset records its "
               "recipe and sha256 checksums and can be rebuilt offline.\n")
    out.append("## Load it\n")
    out.append("```python\nimport ogdata\n"
               f"ds = ogdata.load(\"{did}\")          # downloads, verifies every file, caches\n"
               "batch = ds.sample(256, rng=0)\n```\n")
    out.append(f"Only this tier with `huggingface_hub`: `snapshot_download(\"<org>/{env_id}\", repo_type=\"dataset\", "
               f"allow_patterns=[\"{folder}/*\"])`. The arrays are a zarr v3 store under `{folder}/data/`; "
               "`metadata.json` holds spaces, recipe, measures and the manifest.\n")

    out.append("## Environment and dynamics\n")
    if spec is not None:
        out.append(f"{spec.description or 'No description recorded.'}\n")
        if spec.sources:
            out.append(f"Parameters and their sources: {spec.sources}\n")
        out.append(f"- family: `{spec.family or '—'}`; agents: "
                   f"{', '.join(meta.get('agents') or []) or 'one'}")
        if spec.extras:
            out.append(f"- needs: `pip install ogdata[{','.join(spec.extras)}]`")
    else:
        out.append(f"`{env_id}` is not registered in the ogdata version that rendered this card.")
    kwargs = meta.get("env_kwargs") or {}
    out.append(f"- environment kwargs: `{json.dumps(kwargs, sort_keys=True)}`\n")
    out.append("Rebuild the environment the data came from with `ds.recover_env()`.\n")

    recipe = meta.get("recipe") or {}
    out.append("## Tier recipe\n")
    meaning = TIER_MEANING.get(tier, "a custom tier")
    if recipe.get("learned") is False and "expert" in str(recipe.get("policy_source", "")):
        meaning = ("the expert reference policy with rollout noise — a named fallback, because no training seed "
                   "reached the tier's score; not a learned policy")
    out.append(f"Tier **{tier}**: {meaning}.\n")
    if recipe.get("rule"):
        out.append(f"Selection rule: {recipe['rule']}.\n")
    rows = [(k.replace("_", " "), recipe[k]) for k in ("policy_source", "threshold", "target", "band", "reached", "note")
            if k in recipe]
    rows = [(k, f"≥ {_num(v[0])}" if k == "band" and isinstance(v, list) and len(v) == 2 and v[1] is None else v)
            for k, v in rows]
    if recipe.get("learned") is False:
        rows.append(("learned", "no: " + ("the expert reference policy with rollout noise (a named fallback)"
                                          if "expert" in str(recipe.get("policy_source", "")) else "untrained network")))
    rows += [(f"thresholds.{k}", v) for k, v in _flatten(meta.get("thresholds") or {})]
    rows += [(k, v) for k, v in _flatten(recipe.get("thresholds") or {}, "thresholds.")]
    behaviour = (recipe.get("behaviour") or {}).get("normalised_score")
    if behaviour is not None:
        rows.append(("behaviour policy normalised score", behaviour))
    if "noise" in recipe:
        rows.append(("exploration noise", recipe["noise"]))
    mixed = [p for p in recipe.get("policies") or [] if p.get("random_prob")]
    if mixed:
        rows.append(("random mixing (probability a step's action is uniformly random)",
                     ", ".join(f"seed {p.get('seed')}: {p['random_prob']:.3f} (checkpoint alone scores "
                               f"{_num(p.get('checkpoint_score'))})" for p in mixed)))
    if rows:
        out.append("What defines the tier (normalised scores: 0 = random, 100 = expert):\n")
        out.append(_table(["", "value"], rows) + "\n")
    else:
        out.append("No return thresholds recorded: the tier is defined by its behaviour policy alone.\n")
    refs = meta.get("reference_returns") or {}
    if refs:
        out.append("Reference returns (normalised score = 100 × (R − R_random) / (R_expert − R_random)): "
                   + ", ".join(f"{k} {_num(v)}" for k, v in sorted(refs.items())) + ".\n")
    if recipe:
        out.append("<details><summary>Full recipe (rebuilt by <code>ogdata generate</code>, or offline by "
                   "<code>ogdata.download</code> when the Hub is out of reach)</summary>\n")
        out.append(_table(["key", "value"], _flatten(recipe)) + "\n")
        out.append("</details>\n")
    out.append(f"Recipe identity sha256: `{recipe_digest(recipe_identity(meta))}` (the recipe fields that define "
               "this dataset; `ogdata verify` checks them against the catalogue)\n")

    out.append("## Size\n")
    manifest = meta.get("manifest") or {}
    nbytes = sum(int(v.get("size", 0)) for v in manifest.values() if isinstance(v, Mapping))
    rows = [("transitions", n), ("episodes", e),
            ("mean episode length", (n / e) if e else 0.0),
            ("files (manifest)", len(manifest)), ("bytes on disk", nbytes)]
    out.append(_table(["", ""], rows) + "\n")

    out.append("## Spaces\n")
    rows = [("observation", _space(meta.get("observation_space"))), ("action", _space(meta.get("action_space")))]
    if meta.get("state_space"):
        rows.append(("global state", _space(meta.get("state_space"))))
    out.append(_table(["space", "definition"], rows) + "\n")
    if meta.get("multi_agent"):
        out.append("Multi-agent arrays put the agent axis right after time; spaces are per agent.\n")

    measures = meta.get("measures") or {}
    out.append("## Measures\n")
    if measures:
        out.append(COVERAGE_NOTE + "\n")
        out.append(_table(["measure", "value"], _headline(meta)) + "\n")
        out.extend(_agent_section(meta))
        rest = [(k, v) for k, v in _flatten({k: v for k, v in measures.items() if k not in _DUPLICATES})]
        out.append("<details><summary>All measures</summary>\n")
        out.append(_table(["measure", "value"], rest) + "\n")
        out.append("</details>\n")
    else:
        out.append("Not profiled yet (`ogdata profile` computes TQ, SACo and return statistics).\n")

    plots = sorted({p for p in manifest if str(p).lower().endswith(".png")} | set(meta.get("plots") or []))
    if plots:
        out.append("## Plots\n")
        out += [f"![{Path(p).stem}]({p})\n" for p in plots]

    baselines = meta.get("baselines")
    if baselines:
        out.append(BASELINES_HEADING)
        out.append(_baselines_table(baselines) + "\n")

    out.append(LICENCE_HEADING)
    out.append(f"Price source: **{source['name']}**. {source['text']}\n")
    out.append(f"Dataset licence: `{source['license']}`. ogdata's code is Apache-2.0.\n")
    out.append("Cite ogdata and, for the measures, Schweighofer et al., *A Dataset Perspective on Offline "
               "Reinforcement Learning*, CoLLAs 2022.\n")
    return "\n".join(out).rstrip() + "\n"


_SUITE_LINE = re.compile(r"^\*\*(\S+)\*\* suite", re.M)  # the first line of each suite's table


def with_baselines(card: str, baselines: Mapping[str, Any]) -> str:
    """A rendered dataset card with its baseline-results section replaced by (or given) `baselines`, exactly
    as `render` writes it for metadata carrying them: a suite's results reach a committed card whose
    dataset is not installed here (scripts/render_cards.py --baselines)."""
    head, sep, tail = card.partition("\n" + LICENCE_HEADING)
    if not sep:
        raise ValueError(f"not a rendered dataset card: no {LICENCE_HEADING.strip()!r} section")
    head, _, old = head.partition("\n" + BASELINES_HEADING)
    dropped = sorted(set(_SUITE_LINE.findall(old)) - set(baselines))
    if dropped:
        raise ValueError(f"the card also shows the results of suite(s) {dropped}; pass every suite it should "
                         "keep (the section is rewritten whole)")
    section = "\n".join([BASELINES_HEADING, _baselines_table(baselines) + "\n"]) if baselines else ""
    return head + "\n" + section + ("\n" if section else "") + LICENCE_HEADING + tail


def _suite_tables(baselines: Mapping[str, Any]) -> str:
    """scripts/reproduce.py's layout: {suite: {"algos": {algo: {last_mean, last_std, best_mean, ...}},
    "settings": {...}}} -> one table per suite, normalised scores (100 = expert, 0 = random)."""
    parts = []
    for suite, entry in sorted(baselines.items()):
        st = entry.get("settings") or {}
        if entry.get("protocol") == "v1":
            parts.append(_v1_suite_table(suite, entry, st))
            continue
        parts.append(f"**{suite}** suite: {st.get('steps', '?')} updates, MLP {st.get('layers', '?')}×"
                     f"{st.get('hidden', '?')}, batch {st.get('batch_size', '?')}, {st.get('seeds', '?')} seeds, "
                     f"{st.get('eval_episodes', '?')} held-out episodes × {st.get('evals', '?')} evaluations "
                     "(`python scripts/reproduce.py`). Normalised score, last evaluation mean ± std over seeds; "
                     "best evaluation's mean.\n")
        body = [[algo, f"{_num(float(r['last_mean']))} ± {_num(float(r.get('last_std') or 0.0))}",
                 _num(float(r["best_mean"])) if r.get("best_mean") is not None else "—",
                 _num(float(r["return_mean"])) if r.get("return_mean") is not None else "—", r.get("n_seeds", "—")]
                for algo, r in sorted(entry["algos"].items())]
        parts.append(_table(["algorithm", "normalised score (last)", "best", "raw return (last)", "seeds"], body))
    return "\n".join(parts)


def _v1_suite_table(suite: str, entry: Mapping[str, Any], st: Mapping[str, Any]) -> str:
    """A protocol-v1 suite: the final checkpoint on the env's fixed test markets, mean [95 % interval]."""
    head = (f"**{suite}** suite (evaluation protocol v1): {st.get('steps', '?')} updates, MLP {st.get('layers', '?')}×"
            f"{st.get('hidden', '?')}, batch {st.get('batch_size', '?')}; the **final checkpoint** scored on the fixed "
            f"test markets of `{entry.get('markets', '?')}` (`ogdata/envs/markets-v1.json`), normalised with the "
            "references scored on the same markets (100 = expert, 0 = random); mean over training seeds with a 95 % "
            "percentile-bootstrap interval (`python scripts/reproduce.py --suite " + suite + "`). The checkpoint "
            "chosen on the validation markets is shown beside it, labelled.\n\n")

    def ci(r):  # one seed has no interval
        lo, hi = r.get("final_ci95") or (None, None)
        ok = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and r.get("n_seeds", 0) > 1
        return f"[{_num(float(lo))}, {_num(float(hi))}]" if ok else "—"

    body = [[algo, _num(float(r["final_mean"])), ci(r),
             _num(float(r["best_on_validation_mean"])) if r.get("best_on_validation_mean") is not None else "—",
             r.get("n_seeds", "—")]
            for algo, r in sorted(entry["algos"].items())]
    return head + _table(["algorithm", "final (test)", "95 % interval", "validation-chosen (test)", "seeds"], body)


def _baselines_table(baselines: Any) -> str:
    if isinstance(baselines, Mapping) and baselines and all(
            isinstance(v, Mapping) and isinstance(v.get("algos"), Mapping) for v in baselines.values()):
        return _suite_tables(baselines)
    if isinstance(baselines, Mapping):
        rows = [(k, v) for k, v in sorted(baselines.items())]
    else:
        rows = [(b.get("algorithm", b.get("name", "?")), b) for b in baselines if isinstance(b, Mapping)]
    cols: list[str] = []
    for _, v in rows:
        for k in (v if isinstance(v, Mapping) else {"value": v}):
            if k not in cols and k not in ("algorithm", "name"):
                cols.append(k)
    body = [[name] + [(v if isinstance(v, Mapping) else {"value": v}).get(c, "—") for c in cols]
            for name, v in rows]
    return _table(["algorithm"] + cols, body)


def render_env_card(env_id: str, datasets: Iterable[Any], others: Iterable[str] = ()) -> str:
    """The repo-root README.md of `<org>/<env-id>`: the environment and a table of its tiers.

    others: tier folders (`<tier>-v<N>`) of the repo whose datasets are not at hand (an earlier
    catalogue version): listed as configs and linked to their cards, without measures."""
    metas = [_metadata(d)[0] for d in datasets]
    others = sorted(set(others))
    by_folder = {}
    for m in metas:
        by_folder[_did(m)[2]] = m
    metas = [by_folder[k] for k in sorted(by_folder)]
    spec = _spec(env_id)
    first = metas[0] if metas else {"env_id": env_id}
    source = PRICE_SOURCES[price_source(first)]
    total = sum(int(m.get("num_transitions", 0)) for m in metas)
    fm = _front_matter({
        "license": source["license"],
        "pretty_name": f"ogdata {env_id}",
        "tags": _tags(metas or [first], spec),
        "task_categories": ["reinforcement-learning"],
        "size_categories": [size_category(total)],
        "viewer": False,
        "configs": [{"config_name": f, "data_files": [{"split": "train", "path": f"{f}/{METADATA_FILE}"}]}
                    for f in sorted(set(by_folder) | set(others))],
    })
    out = [fm, f"# ogdata: {env_id}\n"]
    out.append(f"Offline reinforcement-learning datasets of the `{env_id}` market environment, one folder per "
               f"tier. Part of [ogdata]({PROJECT_URL}).\n")
    out.append("## Environment and dynamics\n")
    out.append((spec.description if spec is not None and spec.description else
                f"`{env_id}` is not registered in the ogdata version that rendered this card.") + "\n")
    if spec is not None and spec.sources:
        out.append(f"Parameters and their sources: {spec.sources}\n")
    out.append("## Datasets\n")
    rows = []
    for m in metas:
        did, _, folder = _did(m)
        rows.append([f"[{did}]({folder}/README.md)", m.get("num_transitions", 0), m.get("num_episodes", 0),
                     *[_measure(m, k) if _measure(m, k) is not None else "—" for k in ("tq", "saco_coarse", "saco")]])
    out.append(_table(["dataset", "transitions", "episodes", "TQ", "SACo (coarse grid)", "SACo (100 bins)"], rows)
               + "\n" if rows else "No datasets yet.\n")
    if rows:
        out.append(ENV_COVERAGE_NOTE + "\n")
    others = [f for f in others if f not in by_folder]
    if others:
        out.append("Other catalogue versions of this environment (every version stays downloadable and rebuildable; "
                   "see each card): " + ", ".join(f"[{env_id}/{f}]({f}/README.md)" for f in others) + ".\n")
    out.append("## Download one tier\n")
    example = _did(metas[0])[0] if metas else f"{env_id}/good-v0"
    folder = example.split("/", 1)[1]
    out.append("```python\nimport ogdata\n"
               f"ds = ogdata.load(\"{example}\")\n```\n")
    out.append(f"or `snapshot_download(\"<org>/{env_id}\", repo_type=\"dataset\", allow_patterns=[\"{folder}/*\"])`.\n")
    out.append("## Licence and attribution\n")
    out.append(f"Price source: **{source['name']}**. {source['text']}\n")
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------ committed cards

def write_cards(src: str | os.PathLike, out: str | os.PathLike, check: bool = False) -> list[str]:
    """Render the card of every dataset under `src` into `out/<env-id>/<tier>-v<N>.md` (plus each
    env's `README.md`). Returns the card paths that changed (with check=True: that are stale,
    nothing written)."""
    src, out = Path(src), Path(out)
    by_env: dict[str, list[tuple[dict[str, Any], Path]]] = {}
    for meta_file in sorted(src.rglob(METADATA_FILE)):
        if any(part.startswith(".") for part in meta_file.relative_to(src).parts):
            continue  # staging and partial directories
        meta = read_metadata(meta_file.parent)
        if not meta.get("dataset_id"):
            continue
        by_env.setdefault(_did(meta)[1], []).append((meta, meta_file.parent))
    changed = []
    for env_id, items in sorted(by_env.items()):
        texts = {f"{_did(m)[2]}.md": render(p) for m, p in items}
        # tiers of other versions whose datasets are not under src keep their committed cards
        others = [f.stem for f in (out / env_id).glob("*-v*.md") if f.name not in texts]
        texts["README.md"] = render_env_card(env_id, [m for m, _ in items], others)
        for name, text in sorted(texts.items()):
            f = out / env_id / name
            if f.is_file() and f.read_text() == text:
                continue
            changed.append(str(f))
            if not check:
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text)
    return changed
