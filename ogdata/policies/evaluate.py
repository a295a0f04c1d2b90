"""Roll a batched policy through a vectorised core and collect episode returns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ogdata.errors import EnvError, ReferenceMissingError

REFERENCES_FILE = Path(__file__).resolve().parent.parent / "envs" / "references.json"
# v1 (issue #14): random, the expert by kind and the named baselines, 2,048 episodes each, with
# standard errors; written by scripts/compute_references_v1.py. The v0 file above stays as it is.
REFERENCES_V1_FILE = REFERENCES_FILE.with_name("references-v1.json")


def check_agents_end_together(core, term, trunc, alive: np.ndarray, t: int) -> None:
    """Multi-agent returns are per-step team means up to the joint end: an env whose agents end at different
    steps has no such end, so it is refused rather than scored (by the reference rollouts here and by the
    baselines' evaluator alike)."""
    ends = np.asarray(term, dtype=bool) | np.asarray(trunc, dtype=bool)
    split = alive & (ends.any(axis=1) != ends.all(axis=1))
    if split.any():
        b = int(np.flatnonzero(split)[0])
        raise EnvError(f"{type(core).__name__}: at step {t + 1} of market {b}, agents "
                       f"{np.flatnonzero(ends[b]).tolist()} ended and agents {np.flatnonzero(~ends[b]).tolist()} "
                       "did not; ogdata's multi-agent envs end an episode for all agents at the same step — "
                       "fix the env's core")


def episode_returns(core, policy, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Run `episodes` episodes (the first episode of each of `core.num_envs` markets, repeated
    in rounds) and return per-episode `returns` and `lengths`, plus the per-episode sum of every
    numeric `info` key at the final step under `final_<key>`.

    Multi-agent return = sum over steps of the mean reward across agents; each agent's own return
    (sum over steps of its reward) is under `agent_returns` (episodes, n).
    """
    rng = np.random.default_rng(seed)
    B = core.num_envs
    rounds = -(-episodes // B)
    rets, lens, finals, agent_rets = [], [], {}, []
    for _r in range(rounds):
        obs, _ = core.reset(seed=int(rng.integers(2**63)))
        ret = np.zeros(B)
        length = np.zeros(B, dtype=np.int64)
        alive = np.ones(B, dtype=bool)
        final: dict[str, np.ndarray] = {}
        agent_ret = np.zeros((B, len(core.agents))) if core.multi_agent else None
        t = 0
        while alive.any():
            act = policy(obs, rng)
            obs, rew, term, trunc, info = core.step(act)
            if core.multi_agent:
                check_agents_end_together(core, term, trunc, alive, t)
                agent_ret += np.where(alive[:, None], rew, 0.0)
                rew = rew.mean(axis=1)
                term, trunc = term.all(axis=1), trunc.all(axis=1)
            t += 1
            ret += np.where(alive, rew, 0.0)
            length += alive
            done = alive & (term | trunc)
            for k, v in info.items():
                v = np.asarray(v)
                if v.dtype.kind in "fiu" and v.shape[:1] == (B,):
                    cur = final.setdefault(k, np.zeros(v.shape, dtype=np.float64))
                    cur[done] = v[done]
            alive &= ~done
        rets.append(ret)
        lens.append(length)
        if agent_ret is not None:
            agent_rets.append(agent_ret)
        for k, v in final.items():
            finals.setdefault(f"final_{k}", []).append(v)
    out = {"returns": np.concatenate(rets)[:episodes], "lengths": np.concatenate(lens)[:episodes]}
    if agent_rets:
        out["agent_returns"] = np.concatenate(agent_rets)[:episodes]
    out.update({k: np.concatenate(v)[:episodes] for k, v in finals.items()})
    return out


def load_references() -> dict[str, Any]:
    if not REFERENCES_FILE.exists():
        return {}
    return json.loads(REFERENCES_FILE.read_text())


def reference_returns(env_id: str) -> dict[str, float]:
    """The recorded {"random": R_random, "expert": R_expert} of an env (scripts/compute_references.py)."""
    refs = load_references()
    if env_id not in refs:
        raise ReferenceMissingError(
            f"no reference returns recorded for {env_id!r}; run `python scripts/compute_references.py "
            f"--env {env_id}` to compute and record them")
    return {"random": float(refs[env_id]["random"]), "expert": float(refs[env_id]["expert"])}


def load_references_v1() -> dict[str, Any]:
    """The whole v1 references document ({} when the file is absent)."""
    if not REFERENCES_V1_FILE.exists():
        return {}
    return json.loads(REFERENCES_V1_FILE.read_text())


def reference_returns_v1(env_id: str) -> dict[str, Any]:
    """The v1 references of an env: {"random", "expert" (kind, name, mean, std, se, episodes, ...),
    "baselines" {name: stats}, "gap", "markets"} (see scripts/compute_references_v1.py).

    Plain "random" / "expert" means are `entry["random"]["mean"]` / `entry["expert"]["mean"]`."""
    from ogdata.envs.registry import env_spec

    env_id = env_spec(env_id).id
    entry = load_references_v1().get("envs", {}).get(env_id)
    if entry is None:
        raise ReferenceMissingError(
            f"no v1 references recorded for {env_id!r}; run `python scripts/compute_references_v1.py "
            f"--env {env_id}` to compute and record them")
    return entry


def agent_reference_returns(env_id: str, refs: dict[str, float] | None) -> dict[str, dict[str, float]] | None:
    """Each agent's own {"random", "expert"} return on a general-sum id: that agent's mean return under the
    joint random and expert reference policies whose joint (mean-over-agents) returns are `refs` — the v0
    references when `refs` are the v0 ones, the v1 references when they are v1's. None on an id without
    per-agent references (cooperative ids) or when `refs` are neither (another scale)."""
    if not refs or refs.get("random") is None or refs.get("expert") is None:
        return None

    def same(a, b) -> bool:
        return a is not None and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)

    v0 = load_references().get(env_id) or {}
    pol = v0.get("policies") or {}
    r0, e0 = pol.get(v0.get("random_policy"), {}), pol.get(v0.get("expert_policy"), {})
    if "per_agent" in r0 and "per_agent" in e0 and same(v0.get("random"), refs["random"]) \
            and same(v0.get("expert"), refs["expert"]):
        return {a: {"random": float(r0["per_agent"][a]), "expert": float(e0["per_agent"][a])} for a in r0["per_agent"]}
    v1 = load_references_v1().get("envs", {}).get(env_id) or {}
    r1, e1 = v1.get("random") or {}, v1.get("expert") or {}
    if "per_agent" in r1 and "per_agent" in e1 and same(r1.get("mean"), refs["random"]) \
            and same(e1.get("mean"), refs["expert"]):
        return {a: {"random": float(r1["per_agent"][a]["mean"]), "expert": float(e1["per_agent"][a]["mean"])}
                for a in r1["per_agent"]}
    return None


def normalised_score(ret: float | np.ndarray, env_id: str | None = None, *, random: float | None = None,
                     expert: float | None = None):
    """100 × (R − R_random) / (R_expert − R_random)."""
    if random is None or expert is None:
        refs = reference_returns(env_id)
        random, expert = refs["random"], refs["expert"]
    return 100.0 * (np.asarray(ret) - random) / (expert - random)
