"""Model return vs true return of the model-based learners (mopo, lmopo) on the same test markets.

For every finished protocol-v1 run of mopo / lmopo under --runs-dir: load its final checkpoint,
take the env's fixed v1 *test* markets (`baselines.evaluate.MarketEvaluator`), roll the policy
in the real env (`baselines.evaluate.rollout`: per-market returns and episode lengths) and, from
the very same initial observations and for the same number of steps, in its own learned model
(`baselines.mopo.model_returns`: sampled model steps, a fixed seed; once with the raw model
reward r̂, once with the penalised r̂ − λ·u the agent was trained on). Both are normalised with
the test markets' references. model − true > 0 is return the policy finds only in the model:
exploitation of the learned market.

    python scripts/model_gap.py --runs-dir results/runs/v1-lite-mb --out results/mb/model_gap

Each run's figures are kept beside it (<run>/model_gap.json) and reused. Writes <out>.json (per run and per dataset × algorithm: mean and 95 % bootstrap interval over
seeds) and <out>.md (the table for the README).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL_BASED = ("mopo", "lmopo")


def gap_of_run(run_dir: Path, seed: int = 0) -> dict:
    """One run's model vs true returns on its env's v1 test markets."""
    from baselines.evaluate import MarketEvaluator, rollout
    from baselines.mopo import model_returns
    from baselines.train import load_learner

    res = json.loads((run_dir / "result.json").read_text())
    learner = load_learner(run_dir / "checkpoint")
    ev = MarketEvaluator(res["env_id"], "test", (res.get("dataset_metadata") or {}).get("env_kwargs") or {})
    true, model, penalised = [], [], []
    for core, reset_seed in ev.cores():
        obs0, _ = core.reset(seed=int(reset_seed))
        obs0 = np.array(obs0, copy=True)
        out = rollout(core, learner.policy, reset_seed)
        true.append(out["returns"])
        model.append(model_returns(learner, obs0, out["lengths"], seed=seed))
        penalised.append(model_returns(learner, obs0, out["lengths"], seed=seed, penalised=True))
    true, model, penalised = (np.concatenate(x) for x in (true, model, penalised))
    refs = ev.references
    gap = refs["expert"] - refs["random"]

    def norm(x):
        return float(100.0 * (np.mean(x) - refs["random"]) / gap)

    return {"run_dir": str(run_dir), "algo": res["algo"], "dataset": res["dataset"], "seed": res["seed"],
            "markets": int(len(true)), "true_score": norm(true), "model_score": norm(model),
            "penalised_model_score": norm(penalised), "true_return": float(true.mean()),
            "model_return": float(model.mean()), "recorded_final_score": res["final"]["normalised_score"],
            "per_market_corr": float(np.corrcoef(true, model)[0, 1]) if true.std() > 0 and model.std() > 0 else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--out", default=str(ROOT / "results" / "mb" / "model_gap"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from baselines import stats

    runs = []
    for f in sorted(Path(args.runs_dir).rglob("result.json")):
        r = json.loads(f.read_text())
        if r.get("algo") in MODEL_BASED and r.get("protocol") == "v1":
            cached = f.parent / "model_gap.json"  # a run's gap is a function of its checkpoint: kept beside it
            if not cached.is_file():
                cached.write_text(json.dumps(gap_of_run(f.parent), indent=1, sort_keys=True))
            runs.append(json.loads(cached.read_text()))
            g = runs[-1]
            print(f"{g['dataset']} {g['algo']} s{g['seed']}: true {g['true_score']:.1f}, model {g['model_score']:.1f}, "
                  f"penalised model {g['penalised_model_score']:.1f}", flush=True)
    cells: dict[tuple[str, str], list[dict]] = {}
    for g in runs:
        cells.setdefault((g["dataset"], g["algo"]), []).append(g)
    table = []
    for (did, algo), gs in sorted(cells.items()):
        row = {"dataset": did, "algo": algo, "n_seeds": len(gs)}
        for k in ("true_score", "model_score", "penalised_model_score"):
            m, lo, hi = stats.mean_ci([g[k] for g in gs])
            row[k] = {"mean": m, "ci95": [lo, hi]}
        m, lo, hi = stats.mean_ci([g["model_score"] - g["true_score"] for g in gs])
        row["model_minus_true"] = {"mean": m, "ci95": [lo, hi]}
        table.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"runs": runs, "cells": table}, indent=1, sort_keys=True))

    def cell(d):
        lo, hi = d["ci95"]
        return f"{d['mean']:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{d['mean']:.1f}"

    lines = ["| dataset | algo | seeds | true (test markets) | model, raw reward | model, penalised | model − true |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in table:
        lines.append(f"| {r['dataset']} | {r['algo']} | {r['n_seeds']} | {cell(r['true_score'])} | "
                     f"{cell(r['model_score'])} | {cell(r['penalised_model_score'])} | {cell(r['model_minus_true'])} |")
    out.with_suffix(".md").write_text(
        "Normalised score (100 = v1 expert, 0 = random) of each run's final policy on its env's v1 test markets: in "
        "the real env, and in its own learned model from the same initial observations for the same number of "
        "steps; mean over seeds [95 % bootstrap interval].\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and .md ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
