"""Compute and record reference returns (R_random, R_expert) in ogdata/envs/references.json.

    python scripts/compute_references.py --env portfolio-sp500 --env trading-synth
    python scripts/compute_references.py            # every registered id
    python scripts/compute_references.py --episodes 200 --seed 1

Each id's return under its spec's "random" and "expert" reference policies is the mean over
`--episodes` episodes (default 100) from `ogdata.policies.evaluate.episode_returns` with a
fixed seed. Every other policy registered under the id's family ("<family>/<name>") is
recorded too, under "others", so the choice of expert can be checked. On a general-sum id (a core
with `general_sum`, each agent on its own reward) every policy also records each agent's own mean
return under `per_agent` (the joint return stays the mean over agents). The file is
read-modify-written under a lock and only the given ids' entries change (other workers
record other ids in the same file); keys stay sorted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ogdata.envs.registry import env_spec, list_envs  # noqa: E402
from ogdata.errors import MissingExtraError, OgdataError  # noqa: E402
from ogdata.policies.evaluate import REFERENCES_FILE, episode_returns  # noqa: E402
from ogdata.policies.reference import list_policies, make_policy  # noqa: E402


def compute(env_id: str, episodes: int = 100, seed: int = 0, num_envs: int | None = None) -> dict:
    """The reference entry of one id: mean/std return of each reference policy."""
    spec = env_spec(env_id)
    core = spec.make_core(num_envs=num_envs or min(episodes, 256))
    entry: dict = {"episodes": episodes, "seed": seed, "policies": {}}
    names = dict(spec.references)
    others = [p for p in list_policies() if spec.family and p.startswith(spec.family + "/")
              and p not in names.values()]
    for role, name in list(names.items()) + [(None, p) for p in others]:
        out = episode_returns(core, make_policy(name, core), episodes=episodes, seed=seed)
        ret = out["returns"]
        stats = {"mean": float(ret.mean()), "std": float(ret.std(ddof=1)) if len(ret) > 1 else 0.0,
                 "mean_length": float(out["lengths"].mean())}
        if "final_wealth" in out:
            stats["mean_final_wealth"] = float(out["final_wealth"].mean())
        if getattr(core, "general_sum", False):
            stats["per_agent"] = {a: float(out["agent_returns"][:, i].mean()) for i, a in enumerate(core.agents)}
        entry["policies"][name] = stats
        if role is not None:
            entry[role] = stats["mean"]
            entry[f"{role}_std"] = stats["std"]
            entry[f"{role}_policy"] = name
    return entry


def record(entries: dict[str, dict], path: Path = REFERENCES_FILE) -> None:
    """Merge entries into the references file (locked read-modify-write, sorted keys)."""
    lock = Path(tempfile.gettempdir()) / f"ogdata-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.lock"
    with FileLock(str(lock)):  # beside no package file: the lock file outlives the lock
        refs = json.loads(path.read_text()) if path.exists() else {}
        refs.update(entries)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(refs, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=[], help="an env id (repeatable); default: every id")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the file")
    args = ap.parse_args(argv)
    if args.episodes < 1:
        ap.error("--episodes must be >= 1")
    ids = args.env or list_envs()
    try:
        ids = [env_spec(i).id for i in ids]
    except OgdataError as err:
        ap.error(str(err))
    entries, failed = {}, []
    for env_id in tqdm(ids, desc="references", unit="env"):
        try:
            entries[env_spec(env_id).id] = e = compute(env_id, args.episodes, args.seed)
        except MissingExtraError as err:
            failed.append(env_id)
            tqdm.write(f"skip {env_id}: {err}")
            continue
        tqdm.write(f"{env_id}: R_random={e['random']:.4f} ({e['random_policy']}), "
                   f"R_expert={e['expert']:.4f} ({e['expert_policy']})"
                   + "".join(f", {p}={s['mean']:.4f}" for p, s in e["policies"].items()
                             if p not in (e["random_policy"], e["expert_policy"])))
        if not np.isfinite([e["random"], e["expert"]]).all():
            raise SystemExit(f"{env_id}: non-finite reference return; not recorded")
    if entries and not args.dry_run:
        record(entries)
        print(f"recorded {len(entries)} id(s) in {REFERENCES_FILE}")
    return 1 if failed and args.env else 0


if __name__ == "__main__":
    raise SystemExit(main())
