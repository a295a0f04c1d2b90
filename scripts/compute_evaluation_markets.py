"""Publish the v1 evaluation markets and score the reference policies on them: ogdata/envs/markets-v1.json.

    python scripts/compute_evaluation_markets.py                    # every id, writes the file
    python scripts/compute_evaluation_markets.py --env trading-synth --dry-run

Per env id a dataset can be made on, `ogdata.envs.markets.design` fixes a disjoint
validation and test set (rules in that module's docstring); this script checks they are
disjoint and scores on each the v1 reference policies of the id (references-v1.json: random,
the expert, the named baselines and the best trained checkpoint) with the same evaluator the
baselines use (baselines.evaluate), finance figures included. A baseline's score on a split is
normalised with that split's random and expert means: paired normalisation, the same markets.
Reference policies act with their own rng, `np.random.default_rng(ACTION_SEED)` per round.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines.evaluate import MarketEvaluator, concat_rounds, reference_policy, rollout, summarise  # noqa: E402
from ogdata.envs.markets import MARKETS_V1_FILE, SPLITS, check_disjoint, design, evaluation_ids  # noqa: E402
from ogdata.envs.registry import env_spec  # noqa: E402
from ogdata.errors import OgdataError  # noqa: E402
from ogdata.policies.evaluate import reference_returns_v1  # noqa: E402

ACTION_SEED = 0


def reference_policies(env_id: str) -> tuple[str, dict[str, dict]]:
    """(expert name, {name: {"label", "checkpoint"?}}) of the v1 references of `env_id`."""
    entry = reference_returns_v1(env_id)
    rows = {"random": {"label": entry["random"].get("label", "uniform random")}}
    for name, b in entry["baselines"].items():
        rows[name] = {"label": b.get("label", name), **({"checkpoint": b["checkpoint"]} if "checkpoint" in b else {})}
    return entry["expert"]["name"], rows


def score_split(ev: MarketEvaluator, ref_env: str, expert: str, rows: dict[str, dict]) -> dict:
    """Every reference row of `ref_env` (built by `reference_policy`) on `ev`'s markets; the random and expert
    means normalise the others."""
    raw = {}
    for name in rows:
        parts = []
        for core, seed in ev.cores():
            pol, rng = reference_policy(ref_env, name, core), np.random.default_rng(ACTION_SEED)
            parts.append(rollout(core, lambda o, p=pol, g=rng: p(o, g), seed))
        raw[name] = concat_rounds(parts)
    refs = {"random": float(raw["random"]["returns"].mean()), "expert": float(raw[expert]["returns"].mean())}
    out = {name: {"name": name, "label": row["label"], **summarise(raw[name], ev, references=refs)}
           for name, row in rows.items()}
    for v in out.values():
        v.pop("references", None)
    return {"random": out["random"], "expert": {**out[expert], "role": "expert"},
            "baselines": {k: v for k, v in out.items() if k != "random"}}


def compute_entry(env_id: str) -> dict:
    """Both splits of `env_id`, each scored with the v1 references of the id its markets are made of (a
    real-price test set is on the `-eval` id, whose expert is chosen by references-v1's held-out rule)."""
    sets = design(env_id)
    check_disjoint(sets)
    entry = {"rule": ("validation and test are disjoint: different reset seeds (synthetic) or start dates "
                      "(real prices: validation in the training years, test every start date of the held-out "
                      "years); each split is normalised with the v1 references of the id its markets are made of")}
    for split in SPLITS:
        ms = sets[split]
        expert, rows = reference_policies(ms.env_id)
        ev = MarketEvaluator.on(env_id, ms)  # no references to normalise with: they are what this computes
        entry[split] = {**ms.to_json(), "expert": expert, "references": score_split(ev, ms.env_id, expert, rows)}
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=[], help="an env id (repeatable); default: every id")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the file")
    args = ap.parse_args(argv)
    try:
        ids = [env_spec(i).id for i in (args.env or evaluation_ids())]
    except OgdataError as err:
        ap.error(str(err))
    from ogdata.progress import Progress

    envs, t0 = {}, time.perf_counter()
    bar = Progress(len(ids), "evaluation markets")
    for env_id in ids:
        t = time.perf_counter()
        envs[env_id] = e = compute_entry(env_id)
        r = e["test"]["references"]
        print(f"{env_id}: test {e['test']['episodes']} on {e['test']['env_id']}, validation "
              f"{e['validation']['episodes']}; random {r['random']['return_mean']:.4f}, expert "
              f"{r['expert']['return_mean']:.4f}; " + ", ".join(
                  f"{k} {v['normalised_score']:.1f}" for k, v in r["baselines"].items())
              + f" [{time.perf_counter() - t:.0f} s]", flush=True)
        bar.update(1)
    bar.close()
    doc = {"format": "ogdata-evaluation-markets", "version": 1, "script": "scripts/compute_evaluation_markets.py",
           "action_seed": ACTION_SEED, "envs": envs}
    if args.dry_run:
        return 0
    if args.env and MARKETS_V1_FILE.exists():  # update the given ids only
        old = json.loads(MARKETS_V1_FILE.read_text())
        old["envs"].update(envs)
        doc = {**old, "envs": dict(sorted(old["envs"].items()))}
    MARKETS_V1_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {MARKETS_V1_FILE} ({len(ids)} id(s) in {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
