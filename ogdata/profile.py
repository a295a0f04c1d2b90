"""What `ogdata profile` and `ogdata show` do (the CLI in ogdata/cli.py only parses arguments).

profile: TQ, SACo (OACo), coarse SACo (OACo), return / episode / action statistics of one dataset, as a table or
JSON, plus a figure with the return distributions of every tier of the env side by side and
the TQ-versus-SACo scatter of every dataset of the env found locally (the main figure of
"A Dataset Perspective on Offline RL").
show: the summary a user needs before downloading — read from metadata alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ogdata import catalogue, hub
from ogdata import measures as M
from ogdata.cards import saco_100_label
from ogdata.config import datasets_dir
from ogdata.console import esc
from ogdata.dataset import Dataset
from ogdata.envs.registry import env_spec
from ogdata.errors import (
    DatasetNotFoundError,
    MetadataError,
    NotOnHubError,
    OfflineError,
    OgdataError,
    ReferenceMissingError,
)
from ogdata.ids import installed_path, looks_like_id
from ogdata.policies.evaluate import reference_returns
from ogdata.resolve import as_dataset_id, check_known_env, resolve
from ogdata.spaces import space_to_json
from ogdata.storage.format import METADATA_FILE, read_metadata

TIER_ORDER = ("random", "poor", "medium", "good", "replay")
_FOLDER = re.compile(r"^(?P<tier>[a-z]+)-v(?P<version>\d+)$")


# ----------------------------------------------------------------------------------------
# finding datasets
# ----------------------------------------------------------------------------------------

def _load(target: str | os.PathLike) -> Dataset:
    return Dataset(resolve(target))


def _version(ds) -> int:
    m = re.search(r"-v(\d+)$", ds.dataset_id or "") or re.search(r"-v(\d+)$", ds.path.name)
    return int(m.group(1)) if m else 0


def _env_dirs(ds) -> list[Path]:
    """Folders that may hold sibling datasets of the same env: beside the dataset, and the cache."""
    dirs = [ds.path.resolve().parent]
    if ds.env_id:
        cache = datasets_dir() / ds.env_id
        if cache.is_dir() and cache.resolve() not in dirs:
            dirs.append(cache.resolve())
    return dirs


def _read_meta(p: Path) -> dict[str, Any] | None:
    try:
        return read_metadata(p)
    except (MetadataError, DatasetNotFoundError, OSError):
        return None


def env_datasets(ds) -> list[Path]:
    """Every dataset of the same env found locally (beside `ds` and in the cache), `ds` included."""
    seen: dict[Path, None] = {ds.path.resolve(): None}
    for d in _env_dirs(ds):
        for sub in sorted(d.iterdir()):
            if sub.name.startswith(".") or not (sub / METADATA_FILE).is_file():
                continue
            meta = _read_meta(sub)
            if meta is None or bool(meta.get("multi_agent")) != ds.multi_agent:
                continue
            if ds.env_id and meta.get("env_id") != ds.env_id:
                continue
            seen.setdefault(sub.resolve(), None)
    return list(seen)


def resolve_reference(ds, reference: str | None = None):
    """The SACo reference: `reference` if given, else the env's replay tier beside `ds` or in the cache."""
    if reference is not None:
        return _load(reference)
    if ds.metadata.get("tier") == "replay":
        return ds
    version = _version(ds)
    env = ds.env_id
    ref_id = f"{env}/replay-v{version}" if env else f"replay-v{version}"
    looked = []
    found: list[tuple[int, Path]] = []
    for d in _env_dirs(ds):
        looked.append(str(d))
        for sub in d.glob("replay-v*"):
            m = _FOLDER.match(sub.name)
            meta = _read_meta(sub) if m else None
            if meta is None or (env and meta.get("env_id") not in (None, env)):
                continue
            if bool(meta.get("multi_agent")) != ds.multi_agent:
                continue
            found.append((int(m["version"]), sub))
    if found:
        exact = [p for v, p in found if v == version]
        return _load(exact[0] if exact else max(found)[1])
    how = (f"`ogdata download {ref_id}` or `ogdata generate {env} --tier replay`" if env else
           "generate the env's replay tier")
    raise ReferenceMissingError(
        f"SACo of {ds.dataset_id or ds.path} needs the env's Replay dataset {ref_id}, which is not beside it or in "
        f"the cache (looked in {', '.join(looked)}); get it with {how}, or pass --reference ID|PATH")


# ----------------------------------------------------------------------------------------
# profile
# ----------------------------------------------------------------------------------------

def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:,.0f}"
    return str(x)


def _table(prof: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"ogdata profile · {prof.get('dataset_id') or prof.get('path')}", show_header=True)
    t.add_column("measure", style="bold")
    t.add_column("value")
    rs, ls = prof["return_stats"], prof["episode_length_stats"]
    rows = [
        ("env", prof.get("env_id") or "–"),
        ("tier", prof.get("tier") or "–"),
        ("agents", ", ".join(prof["agents"]) if prof.get("agents") else "single"),
        ("transitions", _fmt(prof["num_transitions"])),
        ("episodes", _fmt(prof["num_episodes"])),
        ("episode length", f"mean {_fmt(ls['mean'])} · min {_fmt(ls['min'])} · max {_fmt(ls['max'])}"),
        ("return mean ± std", f"{_fmt(rs['mean'])} ± {_fmt(rs['std'])}"),
        ("return min / median / max", f"{_fmt(rs['min'])} / {_fmt(rs['median'])} / {_fmt(rs['max'])}"),
        ("return IQR · skew · kurtosis", f"{_fmt(rs['iqr'])} · {_fmt(rs['skew'])} · {_fmt(rs['kurtosis'])}"),
    ]
    if prof.get("agent_return_stats"):
        rows.append(("return mean per agent", ", ".join(f"{k} {_fmt(v['mean'])}"
                                                        for k, v in prof["agent_return_stats"].items())))
    refs = prof.get("reference_returns")
    rows.append(("TQ", _fmt(prof.get("tq")) + (f"  (R_random {_fmt(refs['random'])}, R_expert {_fmt(refs['expert'])})"
                                               if refs else "  (no reference returns recorded)")))
    if prof.get("agent_tq"):
        rows.append(("own TQ per agent (general-sum)", ", ".join(f"{k} {_fmt(v)}" for k, v in prof["agent_tq"].items())))
    if prof.get("saco_coarse") is not None:
        rows.append(("SACo (coarse grid)", f"{_fmt(prof['saco_coarse'])}  ({_fmt(prof['unique_coarse_cells'])} / "
                                    f"{_fmt(prof['reference_unique_coarse_cells'])} unique cells, "
                                    f"{prof['coarse_bins']} bins × {prof['coarse_dims']} dims of the reference's "
                                    "principal components)"))
    if prof.get("oaco_coarse") is not None:
        per = ", ".join(f"{k} {_fmt(v)}" for k, v in prof["oaco_coarse_per_agent"].items())
        rows.append(("OACo coarse (mean over agents)", f"{_fmt(prof['oaco_coarse'])}  ({per})"))
    if prof.get("saco") is not None:
        rows.append((saco_100_label({"measures": prof, "num_transitions": prof.get("num_transitions")}),
                     f"{_fmt(prof['saco'])}  ({_fmt(prof['unique_state_actions'])} / "
                     f"{_fmt(prof['reference_unique_state_actions'])} unique state-actions, "
                     f"{prof['bins']} bins, reference {prof.get('reference')})"))
    if prof.get("oaco") is not None:
        per = ", ".join(f"{k} {_fmt(v)}" for k, v in prof["oaco_per_agent"].items())
        rows.append(("OACo (mean over agents)", f"{_fmt(prof['oaco'])}  ({per})"))
    rows.append(("behaviour normalised score", _fmt(prof.get("behaviour_normalised_score"))))
    rows.append(("actions", _action_summary(prof["action_stats"])))
    for k, v in rows:
        t.add_row(k, v)
    return t


def _action_summary(a: dict[str, Any]) -> str:
    if "per_agent" in a:
        return "; ".join(f"{k}: {_action_summary(v)}" for k, v in a["per_agent"].items())
    if a.get("type") == "discrete":
        return "entropy " + ", ".join(f"{_fmt(d['entropy'])} nats ({_fmt(d['normalised_entropy'], 3)} of max)"
                                      for d in a["dims"])
    if not a.get("count"):
        return "–"
    return f"continuous, {len(a['std'])} dims, mean per-dim std {_fmt(a.get('mean_std'))}"


def run_profile(target: str, reference: str | None, as_json: bool, plot: str | None) -> int:
    """`ogdata profile`: print the table (or JSON) of a dataset's measures; optionally write the plots."""
    from rich.console import Console

    ds = _load(target)
    ref = resolve_reference(ds, reference)
    prof = M.profile(ds, ref, progress=not as_json, reference_returns=_registered_returns(ds.env_id))
    prof["path"] = str(ds.path)
    prof["agents"] = ds.agents if ds.multi_agent else None
    if plot:
        prof["plot"] = str(write_plots(ds, ref, plot, prof))
    if as_json:
        print(json.dumps(prof, indent=1, allow_nan=False))
        return 0
    con = Console()
    con.print(_table(prof))
    if plot:
        con.print(f"wrote {prof['plot']}")
    return 0


def _registered_returns(env_id: str | None) -> dict[str, float] | None:
    """The env's registered reference returns, the TQ fallback for a dataset that records none."""
    if not env_id:
        return None
    try:
        return reference_returns(env_id)
    except ReferenceMissingError:
        return None


def _tier_key(tier: str | None) -> tuple[int, str]:
    t = tier or "?"
    return (TIER_ORDER.index(t) if t in TIER_ORDER else len(TIER_ORDER), t)


def env_points(ds, ref, limits: dict | None = None, coarse_params: dict | None = None) -> list[dict[str, Any]]:
    """Returns, TQ, SACo and coarse SACo of every local dataset of the env (two streaming passes each)."""
    pts = []
    for p in env_datasets(ds):
        d = ds if p == ds.path.resolve() else _load(p)
        rets = d.episode_returns()
        try:
            r_rand, r_exp = M.reference_returns_for(d, fallback=_registered_returns(d.env_id))
            q = M.tq(rets, r_rand, r_exp) if len(rets) else None
        except ReferenceMissingError:
            q = None
        cov = M.coverage(d, ref, limits=limits)
        cc = M.coarse_coverage(d, ref, coarse_params)
        coarse_params = cc["saco_coarse_params"]                  # fitted once, reused for the env
        pts.append({"label": d.dataset_id or d.path.name, "tier": d.metadata.get("tier"), "returns": rets,
                    "tq": q, "saco": cov["saco"], "oaco": cov.get("oaco"), "saco_coarse": cc["saco_coarse"],
                    "oaco_coarse": cc.get("oaco_coarse")})
    pts.sort(key=lambda x: (_tier_key(x["tier"]), x["label"]))
    return pts


def write_plots(ds, ref, out: str | os.PathLike, prof: dict[str, Any] | None = None) -> Path:
    """One PNG, three panels: return distributions of every tier of the env, TQ versus SACo, and TQ
    versus the coarse SACo (SACo saturates at ≈ 1 on high-dimensional continuous data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = env_points(ds, ref, limits=(prof or {}).get("saco_limits"),
                     coarse_params=(prof or {}).get("saco_coarse_params"))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(19, 5), constrained_layout=True)
    data = [p["returns"] if len(p["returns"]) else np.zeros(1) for p in pts]
    labels = [p["tier"] or p["label"] for p in pts]
    parts = ax1.violinplot(data, showmedians=True)
    for body in parts["bodies"]:
        body.set_alpha(0.5)
    ax1.set_xticks(range(1, len(pts) + 1), labels, rotation=20)
    ax1.set_ylabel("episode return")
    ax1.set_title(f"Return distribution per dataset · {ds.env_id or ds.path.name}")
    refs = (prof or {}).get("reference_returns")
    if refs:
        ax1.axhline(refs["random"], color="grey", ls="--", lw=1, label="R_random")
        ax1.axhline(refs["expert"], color="black", ls=":", lw=1, label="R_expert")
        ax1.legend(loc="best", fontsize=8)
    have = [p for p in pts if p["tq"] is not None]
    for ax, key, name in ((ax2, "saco", "SACo"), (ax3, "saco_coarse", "coarse SACo")):
        for p in have:
            ax.scatter(p[key], p["tq"], s=60)
            ax.annotate(p["tier"] or p["label"], (p[key], p["tq"]), textcoords="offset points", xytext=(5, 5),
                        fontsize=9)
        ax.set_xlabel(f"{name} (state-action coverage vs. replay)")
        ax.set_ylabel("TQ (trajectory quality)")
        ax.set_title(f"TQ vs {name}" + ("" if have else " — no reference returns recorded, TQ unavailable"))
        ax.grid(alpha=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------
# show
# ----------------------------------------------------------------------------------------

def _recipe_metadata(dataset_id: str) -> dict[str, Any]:
    """What the committed catalogue recipe says of a dataset that is neither installed nor reachable."""
    r, t = catalogue.tier_recipe(dataset_id)
    did = as_dataset_id(dataset_id)
    spec = env_spec(did.env_id)
    core = spec.make_core(1, **(r.get("env_kwargs") or {}))
    ms = t.get("policies") or []
    scores = [p["score"] for p in ms if p.get("score") is not None]
    return {
        "dataset_id": str(did), "env_id": did.env_id, "env_kwargs": r.get("env_kwargs") or {}, "tier": did.tier,
        "multi_agent": bool(core.multi_agent), "agents": list(core.agents) if core.multi_agent else [],
        "observation_space": space_to_json(core.observation_space),
        "action_space": space_to_json(core.action_space),
        "state_space": space_to_json(core.state_space) if core.multi_agent else None,
        "num_transitions": f"≈{int(t['transitions']):,} (whole episodes)" if "transitions" in t else None,
        "recipe": {k: v for k, v in t.items() if k != "policies"} | (
            {"behaviour": {"normalised_score": float(np.mean(scores))}} if scores else {}),
        "reference_returns": r.get("reference_returns"),
    }


def _show_metadata(target: str) -> tuple[dict[str, Any], str]:
    """(metadata, where it came from): a path, an installed id, the Hub, else the catalogue recipe."""
    p = Path(target)
    if (p / METADATA_FILE).is_file() or not looks_like_id(target):
        if p.exists():
            return read_metadata(p), str(p)
        resolve(target)  # raises the helpful not-a-path / malformed-id error
    did = str(as_dataset_id(target))
    local = installed_path(did)
    if (local / METADATA_FILE).is_file():
        return read_metadata(local), f"{local} (installed)"
    try:
        return hub.remote_metadata(did), "Hub (not installed)"
    except (OfflineError, NotOnHubError) as e:
        check_known_env(as_dataset_id(did), str(e))
        if not catalogue.is_catalogue_id(did):
            if isinstance(e, OfflineError):
                raise OfflineError(f"{e}; cannot show {did}: it is not installed and not in the catalogue") from None
            raise DatasetNotFoundError(f"{did} is not installed and not on the Hub ({e}). Check the id "
                                       "with `ogdata list --remote`") from None
        return _recipe_metadata(did), (f"catalogue recipe (not installed; {e}); measures appear once it is "
                                       f"installed: `ogdata download {did}` rebuilds it offline")


def _space_str(js: Any) -> str:
    """A space from its JSON description, without building it (remote metadata may declare anything)."""
    if not js:
        return "–"
    if not isinstance(js, dict):
        return json.dumps(js)[:200]
    kind = js.get("type")
    if kind == "Box":
        return f"Box({js.get('low')}, {js.get('high')}, {tuple(js.get('shape') or ())}, {js.get('dtype')})"[:300]
    if kind == "Discrete":
        return f"Discrete({js.get('n')}" + (f", start={js['start']})" if js.get("start") else ")")
    if kind in ("Dict", "Tuple"):
        subs = js.get("spaces")
        items = subs.items() if isinstance(subs, dict) else enumerate(subs or [])
        return f"{kind}(" + ", ".join(f"{k}: {_space_str(v)}" for k, v in items)[:300] + ")"
    return json.dumps(js)[:300]


def _size(meta: dict[str, Any]) -> int:
    sizes = [e.get("size") for e in (meta.get("manifest") or {}).values() if isinstance(e, dict)]
    return int(sum(x for x in sizes if isinstance(x, int) and not isinstance(x, bool) and x >= 0))


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def show_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The pre-download summary of a dataset, from its metadata alone."""
    ms = meta.get("measures") or {}
    rs = ms.get("return_stats") or {}
    return {
        "dataset_id": meta.get("dataset_id"),
        "env_id": meta.get("env_id"),
        "env_kwargs": meta.get("env_kwargs") or {},
        "tier": meta.get("tier"),
        "multi_agent": bool(meta.get("multi_agent")),
        "agents": meta.get("agents") or None,
        "observation_space": _space_str(meta.get("observation_space")),
        "action_space": _space_str(meta.get("action_space")),
        "state_space": _space_str(meta.get("state_space")) if meta.get("state_space") else None,
        "num_transitions": meta.get("num_transitions"),
        "num_episodes": meta.get("num_episodes"),
        "size_bytes": _size(meta),
        "files": len(meta.get("manifest") or {}),
        "recipe": meta.get("recipe") or {},
        "reference_returns": meta.get("reference_returns"),
        "measures": {k: ms.get(k) for k in ("tq", "saco", "oaco", "saco_coarse", "oaco_coarse",
                                            "unique_state_actions", "bins") if k in ms}
        | ({"return_mean": rs.get("mean"), "return_std": rs.get("std")} if rs else {}),
        "behaviour_normalised_score": _behaviour_score(meta),
    }


def _behaviour_score(meta: dict[str, Any]) -> float | None:
    try:
        return M.behaviour_score(meta)
    except (OgdataError, TypeError, ValueError, KeyError, AttributeError):
        return None  # malformed remote recipe: shown as '–', never a crash


def run_show(target: str) -> int:
    """`ogdata show`: env, spaces, tier recipe, size and measures, from metadata alone (no data download).

    Every value is printed as literal text (remote metadata is untrusted: no Rich markup, no links).
    """
    from rich.console import Console
    from rich.table import Table

    meta, where = _show_metadata(target)
    s = show_summary(meta)
    rr = s["reference_returns"]
    meas = s["measures"]
    rows = [
        ("source", where),
        ("env", f"{s['env_id'] or '–'}" + (f"  {json.dumps(s['env_kwargs'], default=str)}" if s["env_kwargs"] else "")),
        ("tier", s["tier"] or "–"),
        ("agents", ", ".join(str(a) for a in s["agents"]) if s["agents"] else "single-agent"),
        ("observation space", s["observation_space"] + ("  (per agent)" if s["multi_agent"] else "")),
        ("action space", s["action_space"] + ("  (per agent)" if s["multi_agent"] else "")),
        *([("state space", s["state_space"])] if s["state_space"] else []),
        ("transitions · episodes", f"{_fmt(s['num_transitions'])} · {_fmt(s['num_episodes'])}"),
        ("size", f"{_human(s['size_bytes'])} in {s['files']} files" if s["files"] else "–"),
        ("recipe", json.dumps(s["recipe"], indent=1, sort_keys=True, default=str) if s["recipe"] else "–"),
        ("reference returns", f"random {_fmt(rr.get('random'))} · expert {_fmt(rr.get('expert'))}"
         if isinstance(rr, dict) else "–"),
        ("measures", " · ".join(f"{k} {_fmt(v)}" for k, v in meas.items()) if meas else
         "not computed (run `ogdata profile` after downloading)"),
        ("behaviour normalised score", _fmt(s["behaviour_normalised_score"])),
    ]
    t = Table(title=esc(f"ogdata show · {s['dataset_id'] or target}"), show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for field, value in rows:
        t.add_row(esc(field), esc(value))
    Console(highlight=False).print(t)
    return 0
