"""Why ARSQ fails on a dataset: its greedy decode against the data's own digit-by-digit modes.

ARSQ (baselines/arsq.py) acts by taking the argmax of each decision in turn (level 0: dims 1..D, then level 1,
...). With a strong conservative term (−α·log π(a_data|s), weight 10) its softmaxes are close to the data's
conditional digit frequencies, so at a state the greedy action follows the data's *per-digit* modes: the modal
coarse bin, then the modal sub-bin inside it, and so on. A point mass at a bound of the action space (a clipped
Gaussian behaviour policy) can win every level below the first and pull the decode to the extreme cell.

For each dataset this prints and records, from the data's first steps (one per episode) and each ARSQ run's
checkpoint (gitignored: only on the machine that trained it):
- the share of the data's actions exactly at a bound of the action space, at every step and at the first step;
- the data's modal digit path at the first step (the decision order ARSQ uses) and each level's winning share;
- each seed's greedy digits and action at the env's first observation (reset seed 0), and over that one
  episode, where the env reports an `inventory` (execution), the share of it sold before the final step.

    python scripts/arsq_decode.py --datasets execution-ac/replay-v1,execution-ac-highvol/replay-v1
writes results/arsq_decode.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ogdata  # noqa: E402
from baselines.arsq import CoarseToFine  # noqa: E402
from baselines.train import load_learner  # noqa: E402
from ogdata.envs.registry import make_env  # noqa: E402


def modal_path(digits: np.ndarray) -> list[dict]:
    """Digits (N, L, D) -> the conditional modes in ARSQ's decision order: at each decision the most frequent
    digit among the rows that agree with every earlier modal choice, its share there, and the rows left."""
    n, levels, dims = digits.shape
    keep = np.ones(n, bool)
    out = []
    for level in range(levels):
        for dim in range(dims):
            col = digits[keep, level, dim]
            counts = np.bincount(col, minlength=int(digits.max()) + 1)
            best = int(counts.argmax())
            out.append({"level": level, "dim": dim, "digit": best, "share": float(counts[best] / len(col)),
                        "rows": int(len(col))})
            keep &= digits[:, level, dim] == best
    return out


def analyse(did: str, runs_root: Path) -> dict:
    ds = ogdata.load(did)
    arr = ds.arrays()
    lo, hi = ds.action_space.low.reshape(-1), ds.action_space.high.reshape(-1)
    act = arr["actions"].reshape(len(arr["actions"]), -1).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(arr["episode_lengths"])[:-1]])
    at_bound = (act == lo) | (act == hi)
    runs = sorted(runs_root.glob(f"{did.replace('/', '__')}/arsq/seed*/checkpoint"))
    if not runs:
        raise SystemExit(f"no ARSQ checkpoint of {did} under {runs_root}: train it first "
                         f"(scripts/reproduce.py --algos arsq --datasets {did})")
    first_run = load_learner(runs[0])
    cfg = first_run.algo.config
    grid = CoarseToFine(act.shape[1], cfg.levels, cfg.bins)
    unit = first_run.scaling.action_to_unit(act[starts].astype(np.float32)).astype(np.float64)
    digits = grid.encode(torch.from_numpy(unit)).numpy()
    seeds = []
    for ck in runs:
        learner = load_learner(ck)
        env = make_env(ds.env_id)
        obs, info = env.reset(seed=0)
        inventory = [info.get("inventory")]  # the env's own record of what is left, where it keeps one
        a0 = None
        for _ in range(10_000):
            a = learner.policy(obs[None].astype(np.float32))[0]
            a0 = np.asarray(a, np.float64).reshape(-1) if a0 is None else a0
            obs, _, term, trunc, info = env.step(a)
            inventory.append(info.get("inventory"))
            if term or trunc:
                break
        u0 = learner.scaling.action_to_unit(a0[None].astype(np.float32)).astype(np.float64)
        rec = {"run": str(ck.parent.relative_to(ROOT) if ck.is_relative_to(ROOT) else ck.parent),
               "first_action": a0.tolist(), "first_digits": grid.encode(torch.from_numpy(u0))[0].T.tolist()}
        if inventory[0] is not None and len(inventory) > 1:  # execution: the share sold before the final step
            rec["moved_before_last_step"] = float(1.0 - np.sum(inventory[-2]) / np.sum(inventory[0]))
        seeds.append(rec)
    return {"dataset": did, "transitions": int(len(act)), "episodes": int(len(starts)),
            "share_at_a_bound": float(at_bound.any(1).mean()),
            "share_at_a_bound_first_step": float(at_bound[starts].any(1).mean()),
            "levels": cfg.levels, "bins": cfg.bins, "data_modal_path_first_step": modal_path(digits),
            "seeds": seeds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="execution-ac/replay-v1,execution-ac-highvol/replay-v1")
    p.add_argument("--runs-dir", default=str(ROOT / "results/runs/v1-lite"))
    p.add_argument("--out", default=str(ROOT / "results/arsq_decode.json"))
    args = p.parse_args(argv)
    out = [analyse(d, Path(args.runs_dir)) for d in args.datasets.split(",")]
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in out:
        path = " → ".join(f"L{m['level']}d{m['dim']}:{m['digit']} ({m['share']:.0%} of {m['rows']:,})"
                          for m in r["data_modal_path_first_step"])
        print(f"{r['dataset']}: {r['share_at_a_bound']:.1%} of actions at a bound "
              f"({r['share_at_a_bound_first_step']:.1%} of first steps); data's modal first-step path {path}")
        for s in r["seeds"]:
            moved = s.get("moved_before_last_step")
            print(f"  {s['run']}: first action {np.round(s['first_action'], 4).tolist()} digits {s['first_digits']}"
                  + (f", {moved:.1%} moved before the last step" if moved is not None else ""))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
