"""What sqriql's critic believes at the start of an episode, against what the data's episodes returned.

sqriql (baselines/sqriql.py) acts for CVaR_α of the whole episode's return through V(s, c) and Z(s, c, a),
distributions of the return to go. If at the initial states those are far narrower than the episode returns
they stand for, the CVaR term has nothing to act on and the learner follows the mean (and its actor the
data). For each sqriql run record (default: results/runs/v1-lite-sqriql-cvar5) this loads the final
checkpoint and, at the first observations of the run's stock-augmented dataset (up to 1,024 episodes):

- b*, the threshold it acts with, and V's quantiles at (s0, c = −b*) in the env's units: mean, CVaR_5 %
  (mean of the lowest 5 % of quantiles), 5 % and 95 % quantiles — against the same figures of the dataset's
  episode returns;
- for discrete actions, the share of initial states at which the actor picks each action, and at which the
  critic's ρ_c (the CVaR utility sqriql maximises) ranks it first.

    python scripts/diagnose_sqriql.py              # trading-sp500, -synth, portfolio-synth, execution-ac, lob-execution
    python scripts/diagnose_sqriql.py --datasets 'trading-*'

Writes results/sqriql_diagnosis_v1_lite.{json,md}. Needs the stock-augmented copies under
OGDATA_HOME/derived/stock/ (made by the runs themselves).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ogdata  # noqa: E402
from baselines.data import with_stock_features  # noqa: E402
from baselines.stats import mean_ci  # noqa: E402
from baselines.train import load_learner  # noqa: E402

RUNS = ROOT / "results" / "runs" / "v1-lite-sqriql-cvar5"
OUT = ROOT / "results" / "sqriql_diagnosis_v1_lite"
DATASETS = "trading-sp500/*,trading-synth/*,portfolio-synth/*,execution-ac/*,lob-execution/*"
EPISODES = 1024
ALPHA = 0.05


def tail_figures(x: np.ndarray, alpha: float = ALPHA) -> dict[str, float]:
    """Mean, CVaR_α (mean of the lowest ⌈α·n⌉ values), the α and 1 − α quantiles of a sample (or of a
    quantile vector: equally likely atoms)."""
    s = np.sort(np.asarray(x, dtype=np.float64).ravel())
    k = max(1, int(np.ceil(alpha * len(s))))
    return {"mean": float(s.mean()), "cvar": float(s[:k].mean()), "q_low": float(np.quantile(s, alpha)),
            "q_high": float(np.quantile(s, 1.0 - alpha))}


def initial_observations(ds, episodes: int = EPISODES) -> np.ndarray:
    """The first observation of each of the dataset's first `episodes` episodes, (M, d)."""
    return np.stack([np.asarray(ds.episode(i).observations[0], dtype=np.float32)
                     for i in range(min(episodes, ds.num_episodes))])


def diagnose_run(run_dir: Path, ds) -> dict:
    """The figures above for one run (its final checkpoint) on its dataset's stock-augmented copy."""
    learner = load_learner(run_dir / "checkpoint")
    algo, c = learner.algo, learner.algo.config
    o0 = initial_observations(ds)
    x = torch.from_numpy(learner.scaling.obs(o0.reshape(len(o0), 1, -1))).to(algo.device)
    b = algo.choose_threshold()  # the b* stored with the weights (no initial states seen since loading)
    zeta = algo.distribution(x)[:, 0].cpu().numpy() / c.reward_scale  # (M, N): V's return to go, the env's units
    out = {"b_star": b / c.reward_scale, "b_range": [c.b_low / c.reward_scale, c.b_high / c.reward_scale],
           "critic": {k: float(np.mean([tail_figures(z)[k] for z in zeta])) for k in ("mean", "cvar", "q_low", "q_high")}}
    if algo.spec.discrete:
        first = algo.action_utilities(x).argmax(1)
        chosen = algo.act(x).flatten()
        out["actor_share"] = [float((chosen == k).float().mean()) for k in range(algo.spec.act_dim)]
        out["critic_first_share"] = [float((first == k).float().mean()) for k in range(algo.spec.act_dim)]
    return out


def runs(runs_root: Path, patterns: str) -> list[tuple[str, Path]]:
    """(dataset id, seed directory) of the finished sqriql runs whose dataset matches a pattern, in order."""
    found = []
    for pattern in patterns.split(","):
        for d in sorted(runs_root.glob("*/sqriql/seed*")):
            did = d.parent.parent.name.replace("__", "/")
            if fnmatch.fnmatch(did, pattern) and (d / "result.json").exists() and (did, d) not in found:
                found.append((did, d))
    return found


def aggregate(per_run: dict[str, list[dict]], data: dict[str, dict]) -> dict:
    """Per dataset: the data's figures, and each run figure's mean over seeds with its interval."""
    doc = {"alpha": ALPHA, "episodes": EPISODES, "datasets": {}}
    for did, rs in per_run.items():
        cell = {"seeds": len(rs), "data": data[did], "b_star": mean_ci([r["b_star"] for r in rs]),
                "critic": {k: mean_ci([r["critic"][k] for r in rs]) for k in ("mean", "cvar", "q_low", "q_high")}}
        for key in ("actor_share", "critic_first_share"):
            if key in rs[0]:
                cell[key] = [float(np.mean([r[key][k] for r in rs])) for k in range(len(rs[0][key]))]
        doc["datasets"][did] = cell
    return doc


def markdown(doc: dict) -> str:
    ci = lambda t: f"{t[0]:.3g} [{t[1]:.3g}, {t[2]:.3g}]"  # noqa: E731
    lines = [f"sqriql (CVaR {doc['alpha']:.0%} of the episode return) at the first observations of up to "
             f"{doc['episodes']:,} episodes of its stock-augmented dataset: V's return-to-go quantiles at (s0, c = −b*) "
             "against the dataset's episode returns, the env's units; critic figures are means over seeds [95 % "
             "bootstrap interval]. steps: the data's mean episode length (γ = 1: V at s0 is the return over all of "
             "them). q5–q95: the 5 % and 95 % quantiles.", "",
             "| dataset | seeds | steps | data: mean | data: CVaR 5 % | data: q5–q95 | critic: mean | critic: CVaR 5 % "
             "| critic: q5–q95 | b* | actor's pick at s0 | critic's ρ ranks first |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for did, c in doc["datasets"].items():
        d, q = c["data"], c["critic"]
        share = lambda v: " / ".join(f"{x:.0%}" for x in v) if v else "—"  # noqa: E731
        lines.append(f"| {did} | {c['seeds']} | {d['length']:.0f} | {d['mean']:.3g} | {d['cvar']:.3g} | {d['q_low']:.3g} – {d['q_high']:.3g} "
                     f"| {ci(q['mean'])} | {ci(q['cvar'])} | {q['q_low'][0]:.3g} – {q['q_high'][0]:.3g} "
                     f"| {c['b_star'][0]:.3g} | {share(c.get('actor_share'))} | {share(c.get('critic_first_share'))} |")
    lines += ["", "Discrete actions in the env's order (trading: short / flat / long)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", type=Path, default=RUNS)
    p.add_argument("--datasets", default=DATASETS, help="comma-separated globs over dataset ids")
    args = p.parse_args(argv)
    todo = runs(args.runs_dir, args.datasets)
    if not todo:
        raise SystemExit(f"no finished sqriql runs under {args.runs_dir} match {args.datasets!r}")
    per_run: dict[str, list[dict]] = {}
    data: dict[str, dict] = {}
    cache: dict[str, object] = {}
    for did, seed_dir in tqdm(todo, desc="sqriql runs", unit="run"):
        if did not in cache:
            cache.clear()  # one dataset in memory at a time
            cache[did] = with_stock_features(ogdata.load(did))
            data[did] = {**tail_figures(cache[did].episode_returns()),
                         "length": float(np.mean(cache[did].episode_lengths))}
        per_run.setdefault(did, []).append(diagnose_run(seed_dir, cache[did]))
    doc = aggregate(per_run, data)
    out = OUT if args.runs_dir == RUNS else args.runs_dir / "sqriql_diagnosis"
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    out.with_suffix(".md").write_text(markdown(doc) + "\n")
    print(f"wrote {out.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
