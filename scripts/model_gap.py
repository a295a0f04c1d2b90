"""Model return vs true return of the model-based learners (mopo, lmopo) on the same test markets.

For every finished protocol-v1 run of mopo / lmopo under --runs-dir: load its final checkpoint,
take the env's fixed v1 *test* markets (`baselines.evaluate.MarketEvaluator`), roll the policy
in the real env (`baselines.evaluate.rollout`: per-market returns and episode lengths) and, from
the very same initial observations and for the same number of steps, in its own learned model
(`baselines.mopo.model_returns`: sampled model steps, a fixed seed; one trajectory, summing both the raw model
reward r̂ and the penalised r̂ − λ·u the agent was trained on). Both are normalised with
the test markets' references. model − true > 0 is return the policy finds only in the model:
exploitation of the learned market.

    python scripts/model_gap.py --runs-dir results/runs/v1-lite-mb --runs-dir results/runs/v1-lite-mb-penalty0.0 \
        --runs-dir results/runs/v1-lite-mb-penalty0.1 --out results/mb/model_gap
    python scripts/model_gap.py --runs-dir results/runs/v1-lite --out results/mb/model_gap_suite --summary-only

Each run's figures are kept beside it (<run>/model_gap.json) and reused. Writes <out>.json (per run and per
dataset × algorithm: mean and 95 % bootstrap interval over seeds), <out>.md (the table for the README, or with
--summary-only just the counts) and <out>.png (model score against true score, a point per run). The summary
counts the dataset × algorithm × λ cells whose model − true interval lies above 0 (the policy finds return only in
its model), below 0 (the model undersells it) or contains 0.
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
        raw, pen = model_returns(learner, obs0, out["lengths"], seed=seed)
        model.append(raw)
        penalised.append(pen)
    true, model, penalised = (np.concatenate(x) for x in (true, model, penalised))
    refs = ev.references
    gap = refs["expert"] - refs["random"]

    def norm(x):
        return float(100.0 * (np.mean(x) - refs["random"]) / gap)

    return {"run_dir": str(run_dir), "algo": res["algo"], "dataset": res["dataset"], "seed": res["seed"],
            "penalty": penalty_of(res),
            "markets": int(len(true)), "true_score": norm(true), "model_score": norm(model),
            "penalised_model_score": norm(penalised), "true_return": float(true.mean()),
            "model_return": float(model.mean()), "recorded_final_score": res["final"]["normalised_score"],
            "per_market_corr": float(np.corrcoef(true, model)[0, 1]) if true.std() > 0 and model.std() > 0 else None}


def penalty_of(record: dict) -> float:
    """The uncertainty penalty λ a run was trained with: its override, else the learner's default."""
    from baselines.mopo import Config

    return float(((record.get("settings") or {}).get("overrides") or {}).get("penalty", Config.penalty))


def gap_summary(cells: list[dict], key=lambda r: r["algo"]) -> dict[str, dict]:
    """Per group (`key` of a cell; the algorithm by default): how many cells have a model − true interval
    above 0, containing 0 or below 0, and the median gap over those cells (a one-seed cell has no interval
    and is left out)."""
    out: dict[str, dict] = {}
    for r in cells:
        lo, hi = r["model_minus_true"]["ci95"]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        c = out.setdefault(key(r), {"cells": 0, "above": 0, "contains": 0, "below": 0, "gaps": []})
        c["cells"] += 1
        c["above" if lo > 0 else "below" if hi < 0 else "contains"] += 1
        c["gaps"].append(r["model_minus_true"]["mean"])
    for c in out.values():
        c["median_gap"] = float(np.median(c.pop("gaps")))
    return dict(sorted(out.items()))


def plot_gaps(runs: list[dict], path: Path) -> None:
    """Model score against true score, a point per run: marker by algorithm, colour by penalty λ (by algorithm
    when all runs share one λ); the diagonal is an honest model. Axes span the 1–99 % range; runs outside it
    are counted in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = np.array([(g["true_score"], g["model_score"]) for g in runs])
    lo, hi = np.percentile(both, [1, 99])
    pad = 0.05 * (hi - lo + 1e-9)
    lo, hi = lo - pad, hi + pad
    outside = int(((both < lo) | (both > hi)).any(axis=1).sum())
    lams = sorted({g["penalty"] for g in runs})
    colours = dict(zip(lams, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(lams)))))
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    for algo, marker in zip(MODEL_BASED, "o^"):
        for lam in lams:
            pts = np.array([(g["true_score"], g["model_score"]) for g in runs
                            if g["algo"] == algo and g["penalty"] == lam])
            if len(pts):
                colour = colours[lam] if len(lams) > 1 else {"mopo": "tab:blue", "lmopo": "tab:orange"}[algo]
                ax.scatter(pts[:, 0], pts[:, 1], s=16, marker=marker, alpha=0.7, color=colour,
                           label=f"{algo}, λ = {lam:g} ({len(pts)} runs)")
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="model = true")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true score (real env, test markets)")
    ax.set_ylabel("score in its own learned model (same markets, same steps)")
    ax.set_title("Does the policy find return only in its model? (above the diagonal: the model oversells it)\n"
                 f"normalised scores, 100 = v1 expert; {outside} of {len(runs)} runs outside the axes", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", required=True, action="append",
                   help="a runs directory (repeatable: e.g. the same runs at other penalties λ)")
    p.add_argument("--out", default=str(ROOT / "results" / "mb" / "model_gap"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summary-only", action="store_true", help="the .md holds the counts (per env and λ, then "
                   "per algorithm), not a row per cell (a whole suite's cells are in the .json)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from baselines import stats

    runs = []
    for f in sorted(f for d in args.runs_dir for f in Path(d).rglob("result.json")):
        r = json.loads(f.read_text())
        if r.get("algo") in MODEL_BASED and r.get("protocol") == "v1":
            cached = f.parent / "model_gap.json"  # a run's gap is a function of its checkpoint: kept beside it
            if not cached.is_file():
                cached.write_text(json.dumps(gap_of_run(f.parent), indent=1, sort_keys=True))
            runs.append(json.loads(cached.read_text()))
            g = runs[-1]
            g.setdefault("penalty", penalty_of(r))  # figures cached before λ was recorded
            print(f"{g['dataset']} {g['algo']} s{g['seed']}: true {g['true_score']:.1f}, model {g['model_score']:.1f}, "
                  f"penalised model {g['penalised_model_score']:.1f}", flush=True)
    cells: dict[tuple[str, str, float], list[dict]] = {}
    for g in runs:
        cells.setdefault((g["dataset"], g["algo"], g["penalty"]), []).append(g)
    table = []
    for (did, algo, lam), gs in sorted(cells.items()):
        row = {"dataset": did, "algo": algo, "penalty": lam, "n_seeds": len(gs)}
        for k in ("true_score", "model_score", "penalised_model_score"):
            m, lo, hi = stats.mean_ci([g[k] for g in gs])
            row[k] = {"mean": m, "ci95": [lo, hi]}
        m, lo, hi = stats.mean_ci([g["model_score"] - g["true_score"] for g in gs])
        row["model_minus_true"] = {"mean": m, "ci95": [lo, hi]}
        table.append(row)
    summary = gap_summary(table)
    by_env = gap_summary(table, key=lambda r: (r["dataset"].split("/")[0], r["algo"], r["penalty"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"runs": runs, "cells": table, "summary": summary, "by_env": [
        {"env": k[0], "algo": k[1], "penalty": k[2], **v} for k, v in by_env.items()]}, indent=1, sort_keys=True))
    if runs:
        plot_gaps(runs, out.with_suffix(".png"))

    def cell(d):
        lo, hi = d["ci95"]
        return f"{d['mean']:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{d['mean']:.1f}"

    lines = ["| dataset | algo | λ | seeds | true (test markets) | model, raw reward | model, penalised | model − true |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in table:
        lines.append(f"| {r['dataset']} | {r['algo']} | {r['penalty']:g} | {r['n_seeds']} | {cell(r['true_score'])} | "
                     f"{cell(r['model_score'])} | {cell(r['penalised_model_score'])} | {cell(r['model_minus_true'])} |")
    counts = ["| env | algo | λ | cells | model − true above 0 | contains 0 | below 0 | median model − true |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (env, algo, lam), c in by_env.items():
        counts.append(f"| {env} | {algo} | {lam:g} | {c['cells']} | {c['above']} | {c['contains']} | {c['below']} | "
                      f"{c['median_gap']:.1f} |")
    for algo, c in summary.items():
        counts.append(f"| **all** | {algo} | | {c['cells']} | {c['above']} | {c['contains']} | {c['below']} | "
                      f"{c['median_gap']:.1f} |")
    body = "\n".join(counts if args.summary_only else lines + [""] + counts)
    out.with_suffix(".md").write_text(
        "Normalised score (100 = v1 expert, 0 = random) of each run's final policy on its env's v1 test markets: in "
        "the real env, and in its own learned model from the same initial observations for the same number of "
        "steps; mean over seeds [95 % bootstrap interval]. Cells counted by where the interval of model − true "
        "lies.\n\n" + body + "\n")
    print(f"wrote {out.with_suffix('.json')} and .md ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
