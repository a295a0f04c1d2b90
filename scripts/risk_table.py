"""Issue #22's two tables, from training runs under evaluation protocol v1 (fixed validation/test markets):

- the risk table: BC, IQL, the distributional learner (qriql) acting for the mean and for CVaR_5%, and the
  stock-augmented learner (sqriql, CVaR_5% of the episode return) on v1 datasets — per run, the final
  checkpoint's test-market mean return, CVaR_5% of the episode return and (capital envs) mean max drawdown;
  mean over seeds with a 95 % percentile-bootstrap interval (rliable); beside them the reference policies
  (the expert, and the CVaR-optimal one where known) on the same test markets;
- the ablation: the d3rlpy critics (IQL, TD3+BC, CQL) with value_loss "mse" against "hl_gauss", the same
  figures plus the seed-paired difference of the mean return and of CVaR_5% with its interval.

    python scripts/risk_table.py --plan                 # the runs, nothing run
    python scripts/risk_table.py --jobs 2               # run what is missing, then write the tables
    python scripts/risk_table.py --aggregate-only       # the tables from the committed run records
    python scripts/risk_table.py --suite-table          # the risk table of the v1-lite suite's own records
    python scripts/risk_table.py --suite-ablation       # MSE vs HL-Gauss across the v1-lite suite (paired by seed)
    python scripts/risk_table.py --task-table           # each risk task's objective for the suite's learners
    python scripts/risk_table.py --ablation-readme README.md  # rewrite the README's ablation tables, counts and
                                                        # not-run list from the committed record (no aggregation)

The suite table needs no runs of its own: for the base ids of the risk tasks (`ogdata.envs.risk`) it reads the
v1-lite suite's records (results/runs/v1-lite: 5,000 updates, 5 seeds, the full 1M-transition datasets, final
checkpoint on the test markets) of BC, IQL, the discrete learners and qriql for the mean (its CVaR_5% mode from
results/runs/v1-lite-qriql-cvar5, the same suite run with --set risk=cvar --set alpha=0.05; the stock-augmented
sqriql's from results/runs/v1-lite-sqriql-cvar5 where it has run), and puts the same
figures with their intervals beside the references: results/risk_table_v1_lite.{json,md}.

The suite ablation reads the same suite run again with HL-Gauss critics,
`reproduce.py --suite v1-lite --runs-dir results/runs/v1-lite-hlgauss --set value_loss=hl_gauss --algos iql,...`,
and pairs each run by seed with the suite's own: results/hlgauss_ablation_v1_lite.{json,md}.

Datasets are the v1 catalogue's, generated from their recipes into OGDATA_HOME (without the coverage
profile, which would retrain the Replay tier's PPO); sqriql's copy carries the stock features
(`ogdata.augment_stock`). Run records: results/runs/risk/<dataset>/<label>/seed<S>/.
Tables: results/risk_table.{json,md}, results/hlgauss_ablation.{json,md}. Short training budgets
(SETTINGS) — stated in the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ogdata.envs.registry import env_spec  # noqa: E402
from ogdata.envs.risk import risk_task  # noqa: E402
from ogdata.ids import TIERS  # noqa: E402

RUNS = ROOT / "results" / "runs" / "risk"
OUT = ROOT / "results"
# The budget this could afford: 2 shared CPU cores (load ~15 from other jobs), ~1 h of wall time. The datasets are
# the first EPISODES episodes of the v1 datasets (building a learner on 1M transitions took ~1 min there).
SETTINGS = dict(steps=500, hidden=64, layers=2, batch_size=256, evals=2, seeds=5)
EPISODES = {"execution-ac/medium-v1": 5_000, "portfolio-synth/medium-v1": 400}  # ~100k transitions each
DATASETS = tuple(EPISODES)
ALPHA = 0.05
# label -> (algo, overrides, stock-augmented data)
RISK = {
    "bc": ("bc", {}, False),
    "iql": ("iql", {}, False),
    "qriql-mean": ("qriql", {"risk": "mean"}, False),
    "qriql-cvar5": ("qriql", {"risk": "cvar", "alpha": ALPHA}, False),
    "sqriql-cvar5": ("sqriql", {"risk": "cvar", "alpha": ALPHA}, True),
    # V's expectile τ_e near 1 (qriql.py: with the default 0.7 the worse actions' tails leak into V's CVaR)
    "qriql-cvar5-e99": ("qriql", {"risk": "cvar", "alpha": ALPHA, "expectile": 0.99}, False),
    "sqriql-cvar5-e99": ("sqriql", {"risk": "cvar", "alpha": ALPHA, "expectile": 0.99}, True),
}
ABLATION = {
    "iql": ("iql", {}, False), "iql+hl_gauss": ("iql", {"value_loss": "hl_gauss"}, False),
    "td3bc": ("td3bc", {}, False), "td3bc+hl_gauss": ("td3bc", {"value_loss": "hl_gauss"}, False),
    "cql": ("cql", {}, False), "cql+hl_gauss": ("cql", {"value_loss": "hl_gauss"}, False),
}


def reference_names(env_id: str) -> tuple[str, ...]:
    """The reference rows of an env: its v1 expert and the policies its CVaR_α risk task names
    (`ogdata.envs.risk`: the CVaR-optimal schedule where one is known, e.g. execution/ac-cvar5)."""
    return ("expert", *risk_task(f"{env_id}-cvar{round(ALPHA * 100)}").references.values())


def dataset_path(did: str, stock: bool, part: bool = True) -> Path:
    home = Path(os.environ.get("OGDATA_HOME", Path.home() / ".cache" / "ogdata"))
    name = did.replace("/", "__") + (f"-first{EPISODES[did]}" if part else "") + ("+stock" if stock else "")
    return home / "data" / name


def first_episodes(ds, path: Path, episodes: int):
    """The first `episodes` episodes of a single-agent dataset, as a dataset (its env and kwargs kept)."""
    import ogdata

    eps = [ep for _, ep in zip(range(episodes), ds.iter_episodes())]
    meta = {k: v for k, v in ds.metadata.items() if k in ("env_id", "env_kwargs", "tier")}
    meta.update(dataset_id=None, subset_of=ds.dataset_id, subset=f"the first {len(eps)} episodes")
    return ogdata.create_dataset(
        path, observations=np.concatenate([e.observations for e in eps]),
        actions=np.concatenate([e.actions for e in eps]), rewards=np.concatenate([e.rewards for e in eps]),
        terminations=np.concatenate([e.terminations for e in eps]),
        truncations=np.concatenate([e.truncations for e in eps]), episode_lengths=np.array([len(e) for e in eps]),
        observation_space=ds.observation_space, action_space=ds.action_space, metadata=meta)


def prepare(did: str, stock: bool) -> Path:
    """The v1 dataset from its recipe (no coverage profile), its first episodes, and their stock-augmented copy."""
    import ogdata
    from ogdata.generate import generate, tier_recipe

    full = dataset_path(did, False, part=False)
    if not (full / "metadata.json").exists():
        recipe, tier = tier_recipe(did)
        env, name = did.split("/")
        print(f"generating {did} into {full}", flush=True)
        generate(env, name.split("-")[0], int(tier["transitions"]), full, seed=int(tier.get("seed", 0)),
                 recipe=recipe, profile=False, progress=False)
    plain = dataset_path(did, False)
    if not (plain / "metadata.json").exists():
        first_episodes(ogdata.load(full), plain, EPISODES[did])
    if not stock:
        return plain
    aug = dataset_path(did, True)
    if not (aug / "metadata.json").exists():
        print(f"adding the stock features: {aug}", flush=True)
        ogdata.augment_stock(ogdata.load(plain), aug)
    return aug


def run_dir(did: str, label: str, seed: int) -> Path:
    return RUNS / did.replace("/", "__") / label / f"seed{seed}"


def planned(tables: list[str]) -> list[tuple[str, str, int, str, dict, bool]]:
    """Seed by seed (then dataset, table, label): a run cut short leaves every label with as many seeds."""
    runs, seen = [], set()
    for seed in range(SETTINGS["seeds"]):
        for did in DATASETS:
            for table in tables:
                for label, (algo, over, stock) in (RISK if table == "risk" else ABLATION).items():
                    if (did, label, seed) not in seen:
                        seen.add((did, label, seed))
                        runs.append((did, label, seed, algo, over, stock))
    return runs


def run_one(did: str, label: str, seed: int, algo: str, overrides: dict, stock: bool) -> dict:
    from baselines.train import RunSettings, train

    s = RunSettings(algo=algo, dataset=str(dataset_path(did, stock)), steps=SETTINGS["steps"], seed=seed,
                    hidden=SETTINGS["hidden"], layers=SETTINGS["layers"], batch_size=SETTINGS["batch_size"],
                    eval_episodes=0, evals=SETTINGS["evals"], out=str(run_dir(did, label, seed)), progress=False,
                    threads=1, overrides=dict(overrides), protocol="v1")
    t = time.perf_counter()
    res = train(s)
    return {"label": label, "dataset": did, "seed": seed, "wall_s": time.perf_counter() - t,
            "score": res["final"].get("normalised_score")}


# -- aggregation ---------------------------------------------------------------------------------------------------
def figures(rec: dict) -> dict[str, float | None]:
    """The per-run figures of a v1 final-checkpoint record (the env's units; see baselines/finance.py)."""
    fin = rec.get("finance", {})
    return {"return_mean": rec["return_mean"], "return_cvar5": fin.get("return_cvar5"),
            "max_drawdown": fin.get("max_drawdown"), "shortfall_bp_cvar95": fin.get("shortfall_bp_cvar95"),
            "score": rec.get("normalised_score")}


FIGURES = ("return_mean", "return_cvar5", "max_drawdown", "shortfall_bp_cvar95", "score")


def ci(values) -> dict:
    from baselines.stats import mean_ci

    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "low": None, "high": None, "n": 0}
    m, lo, hi = mean_ci(v)  # one value has no interval: None there, so the records stay strict JSON (no NaN)
    return {"mean": m, "low": lo if len(v) > 1 else None, "high": hi if len(v) > 1 else None, "n": len(v)}


def reference_figures(env_id: str) -> dict[str, dict]:
    """The reference policies on the same test markets (one rollout each; deterministic policies)."""
    from baselines.evaluate import MarketEvaluator, summarise

    ev = MarketEvaluator(env_id, "test")
    out = {}
    for name in reference_names(env_id):
        ref = ev.references["expert_name"] if name == "expert" else name
        out[ref] = figures(summarise(ev.reference_returns(ref), ev))
    return out


def aggregate(table: str) -> dict:
    labels = RISK if table == "risk" else ABLATION
    doc: dict = {"table": table, "settings": SETTINGS, "episodes": EPISODES, "protocol": "v1: final checkpoint on the fixed test markets",
                 "interval": "95 % percentile bootstrap over seeds (rliable)", "datasets": {}}
    for did in DATASETS:
        rows, per_seed = {}, {}
        for label in labels:
            recs = []
            for seed in range(SETTINGS["seeds"]):
                f = run_dir(did, label, seed) / "result.json"
                if f.exists():
                    recs.append((seed, figures(json.loads(f.read_text())["final"])))
            if not recs:
                continue
            per_seed[label] = dict(recs)
            rows[label] = {k: ci([r[k] for _, r in recs]) for k in FIGURES}
            rows[label]["seeds"] = [s for s, _ in recs]
        if not rows:
            continue
        entry = {"runs": rows, "episodes": EPISODES[did]}
        if table == "ablation":
            entry["hl_gauss_minus_mse"] = {}
            for base in ("iql", "td3bc", "cql"):
                a, b = per_seed.get(base), per_seed.get(base + "+hl_gauss")
                if not a or not b:
                    continue
                common = sorted(set(a) & set(b))
                entry["hl_gauss_minus_mse"][base] = {
                    k: ci([b[s][k] - a[s][k] for s in common]) for k in ("return_mean", "return_cvar5")}
        else:
            entry["references"] = reference_figures(did.split("/")[0])
        doc["datasets"][did] = entry
    return doc


def _fmt(c: dict | None, digits: int = 3) -> str:
    if not c or c.get("mean") is None:
        return "—"
    if c["n"] < 2:
        return f"{c['mean']:.{digits}g}"
    return f"{c['mean']:.{digits}g} [{c['low']:.{digits}g}, {c['high']:.{digits}g}]"


def markdown(doc: dict) -> str:
    s = doc["settings"]
    lines = [f"Protocol v1 (final checkpoint, fixed test markets); the first episodes of each dataset (below); "
             f"{s['steps']} updates, {s['layers']}x{s['hidden']}, "
             f"batch {s['batch_size']}, {s['seeds']} seeds; mean [95 % bootstrap interval over seeds]. Units: the "
             "env's, per episode: execution-ac's return is −(implementation shortfall + the Almgren–Chriss "
             "inventory-risk charge) in bp of the order's arrival value, over 20 steps (¼ trading day each); "
             "portfolio-synth's return is a year's summed daily log growth. CVaR 5 %: the mean of the worst 5 % of the test "
             "episodes' returns. Max drawdown (capital envs): mean over test episodes of the relative peak-to-trough "
             "fall of wealth; execution has no wealth path to draw down, so the shortfall's CVaR 95 % (the mean "
             "of the worst 5 % of shortfalls, bp, without the risk charge) stands beside it.", ""]
    for did, entry in doc["datasets"].items():
        lines += [f"**{did}**, its first {entry['episodes']} episodes", "", "| policy | mean return | CVaR 5 % | max drawdown | shortfall CVaR 95 % (bp) "
                  "| score |", "|---|---|---|---|---|---|"]
        for label, r in entry["runs"].items():
            lines.append("| " + " | ".join([label] + [_fmt(r[k]) for k in FIGURES]) + " |")
        for name, f in entry.get("references", {}).items():
            cells = ["—" if f.get(k) is None else f"{f[k]:.3g}" for k in FIGURES]
            lines.append("| " + " | ".join([f"reference: {name}"] + cells) + " |")
        if entry.get("hl_gauss_minus_mse"):
            lines += ["", "| HL-Gauss − MSE (paired by seed) | Δ mean return | Δ CVaR 5 % |", "|---|---|---|"]
            for base, d in entry["hl_gauss_minus_mse"].items():
                lines.append(f"| {base} | {_fmt(d['return_mean'])} | {_fmt(d['return_cvar5'])} |")
        lines.append("")
    return "\n".join(lines)


SUITE_RUNS = ROOT / "results" / "runs" / "v1-lite"
# label -> (runs directory beside the suite's, algorithm, the `--set` overrides its records must carry). qriql's
# CVaR mode is a suite run of its own: reproduce.py --runs-dir results/runs/v1-lite-qriql-cvar5 --set risk=cvar
# --set alpha=0.05 (same settings otherwise); sqriql's likewise (--algos sqriql, its own runs directory: each run
# trains on the stock-augmented copy of the suite's dataset, baselines.data.with_stock_features).
SUITE_SOURCES = {
    "bc": ("v1-lite", "bc", {}), "iql": ("v1-lite", "iql", {}), "cql": ("v1-lite", "cql", {}),
    "bcq": ("v1-lite", "bcq", {}), "qriql-mean": ("v1-lite", "qriql", {}),
    "qriql-cvar5": ("v1-lite-qriql-cvar5", "qriql", {"risk": "cvar", "alpha": ALPHA}),
    "sqriql-cvar5": ("v1-lite-sqriql-cvar5", "sqriql", {"risk": "cvar", "alpha": ALPHA}),
    "sqriql-cvar10": ("v1-lite-sqriql-cvar10", "sqriql", {"risk": "cvar", "alpha": 0.1}),  # --set alpha=0.1
    # the mean-CVaR task's own objective, ½·mean + ½·CVaR 10 % (cvar_weight's default): --set risk=mean-cvar
    "sqriql-meancvar10": ("v1-lite-sqriql-meancvar10", "sqriql", {"risk": "mean-cvar", "alpha": 0.1}),
    # 32-step critic targets (QRIQL's n_step): --set n_step=32, its own runs directory likewise
    "sqriql-cvar5-n32": ("v1-lite-sqriql-cvar5-nstep32", "sqriql", {"risk": "cvar", "alpha": ALPHA, "n_step": 32}),
    # and acting greedily on the critic's ρ among the actions the policy supports: --set acting=greedy
    "sqriql-cvar5-n32-greedy": ("v1-lite-sqriql-cvar5-n32-greedy", "sqriql",
                                {"risk": "cvar", "alpha": ALPHA, "n_step": 32, "acting": "greedy"}),
}


SUITE_FIELDS = {"target_update_interval"}  # the suite's own per-run override (reproduce.py's target_sync), not a label's


def seed_dirs(algo_dir: Path, want: dict, label: str) -> dict[int, Path]:
    """{seed: run directory} of the finished records under one dataset's algorithm directory; a record made with
    other overrides than `want` (the suite's own sync aside) is an error: a CVaR-mode or HL-Gauss run filed beside
    the plain ones would otherwise be averaged in silently."""
    out = {}
    for f in sorted(algo_dir.glob("seed*/result.json")):
        rec = json.loads(f.read_text())
        got = {k: v for k, v in ((rec.get("settings") or {}).get("overrides") or {}).items() if k not in SUITE_FIELDS}
        if got != want:
            raise ValueError(f"{f}: made with overrides {got}, but {label!r} means {want}; move the run to the "
                             f"runs directory of its label (scripts/risk_table.py)")
        out[int(f.parent.name.removeprefix("seed"))] = f.parent
    return out


def seed_records(algo_dir: Path, want: dict, label: str) -> dict[int, dict]:
    """{seed: final figures} of the records under one dataset's algorithm directory (`seed_dirs`)."""
    return {s: figures(json.loads((d / "result.json").read_text())["final"])
            for s, d in seed_dirs(algo_dir, want, label).items()}


def suite_records(runs_root: Path, did: str, label: str) -> list[dict]:
    """The final figures of a suite label's records on one dataset (SUITE_SOURCES says where they are)."""
    sub, algo, want = SUITE_SOURCES[label]
    return list(seed_records(runs_root.parent / sub / did.replace("/", "__") / algo, want, label).values())


def aggregate_suite(runs_root: Path = SUITE_RUNS) -> dict:
    """The risk figures of the v1-lite suite's own records, per dataset of a risk task's base id (qriql's CVaR
    mode from its runs directory beside `runs_root`)."""
    from ogdata.envs.risk import TASKS

    envs = list(dict.fromkeys(t.env_id for t in TASKS))
    doc: dict = {"table": "suite", "suite": "v1-lite", "runs": str(runs_root.relative_to(ROOT) if runs_root.is_relative_to(ROOT) else runs_root),
                 "sources": {k: v[0] for k, v in SUITE_SOURCES.items()},
                 "protocol": "v1: final checkpoint on the fixed test markets",
                 "interval": "95 % percentile bootstrap over seeds (rliable)", "datasets": {}}

    for env in envs:
        for run_key in sorted(runs_root.glob(f"{env}__*-v1"), key=lambda d: TIERS.index(d.name.split("__")[1][:-3])):
            did = run_key.name.replace("__", "/")
            rows = {}
            for label in SUITE_SOURCES:
                recs = suite_records(runs_root, did, label)
                if recs:
                    rows[label] = {k: ci([r[k] for r in recs]) for k in FIGURES}
            if rows:
                doc["datasets"][did] = {"runs": rows}
        if any(d.startswith(env + "/") for d in doc["datasets"]):
            doc.setdefault("references", {})[env] = reference_figures(env)
    return doc


def suite_markdown(doc: dict) -> str:
    """One table per base id: each dataset's learners (mean [interval] over seeds), then the references."""
    lines = ["v1-lite suite records (5,000 updates, MLP 2×64, batch 256, 5 seeds, the full v1 datasets); final "
             "checkpoint on the fixed test markets; mean [95 % bootstrap interval over seeds]. Figures and units as in "
             "results/risk_table.md.", ""]
    for env, refs in doc.get("references", {}).items():
        lines += [f"**{env}**", "", "| dataset | policy | mean return | CVaR 5 % | max drawdown | "
                  "shortfall CVaR 95 % (bp) | score |", "|---|---|---|---|---|---|---|"]
        for did, entry in doc["datasets"].items():
            if did.startswith(env + "/"):
                for name, r in entry["runs"].items():
                    n = r["score"]["n"]
                    label = name if n >= SETTINGS["seeds"] else f"{name} ({n} seeds)"
                    lines.append("| " + " | ".join([did.split("/")[1], label] + [_fmt(r[k]) for k in FIGURES]) + " |")
        for name, f in refs.items():
            cells = ["—" if f.get(k) is None else f"{f[k]:.3g}" for k in FIGURES]
            lines.append("| " + " | ".join(["reference", name] + cells) + " |")
        lines.append("")
    return "\n".join(lines)


def task_sources(runs_root: Path, did: str) -> dict[str, tuple[Path, dict]]:
    """label -> (algorithm directory, the overrides its records must carry) of every learner with records on one
    dataset: SUITE_SOURCES' labels, then any other suite learner (td3bc, arsq, mopo, ...) under its own name."""
    key = did.replace("/", "__")
    out = {label: (runs_root.parent / sub / key / algo, want) for label, (sub, algo, want) in SUITE_SOURCES.items()}
    named = {algo for sub, algo, _ in SUITE_SOURCES.values() if sub == runs_root.name}
    for d in sorted((runs_root / key).iterdir()) if (runs_root / key).is_dir() else ():
        if d.is_dir() and d.name not in named:
            out[d.name] = (d, {})
    return out


def aggregate_tasks(runs_root: Path = SUITE_RUNS, references: Path = OUT / "risk_references.json") -> dict:
    """Each risk task's objective ((1 − w)·mean + w·CVaR_α of the episode return, `baselines.finance.task_objective`)
    for every learner of the v1-lite suite on every tier of the task's base id: per seed, the objective of the final
    checkpoint's returns on the fixed test markets (test_returns.npz, the same markets the references were scored
    on); mean [bootstrap interval] over seeds, beside the task's reference and the v1 expert
    (results/risk_references.json, `scripts/risk_references.py`). None of these learners was trained for the
    task's objective except where the label says so (qriql-cvar5, sqriql-cvar5(-n32, -n32-greedy) for the CVaR 5 % tasks,
    sqriql-cvar10 for the CVaR 10 % ones, sqriql-meancvar10 for the mean-CVaR ones)."""
    from baselines.finance import task_objective
    from ogdata.envs.risk import TASKS

    refs = json.loads(references.read_text())["tasks"]
    doc: dict = {"table": "tasks", "suite": "v1-lite", "protocol": "v1: final checkpoint on the fixed test markets",
                 "interval": "learners: 95 % percentile bootstrap over seeds (rliable); references: over the markets "
                             "(results/risk_references.json)", "tasks": {}}
    tasks = {t.id: {"env_id": t.env_id, "objective": t.objective, "alpha": t.alpha, "weight": t.weight,
                    "references": {}, "datasets": {}} for t in TASKS}
    for env in dict.fromkeys(t.env_id for t in TASKS):  # each run's test returns read once, scored for every task
        env_tasks = [t for t in TASKS if t.env_id == env]
        for run_key in sorted(runs_root.glob(f"{env}__*-v1"), key=lambda d: TIERS.index(d.name.split("__")[1][:-3])):
            did = run_key.name.replace("__", "/")
            for label, (algo_dir, want) in task_sources(runs_root, did).items():
                returns = []
                for d in seed_dirs(algo_dir, want, label).values():
                    with np.load(d / "test_returns.npz", allow_pickle=False) as z:
                        returns.append(z["final"])
                for t in env_tasks if returns else ():
                    tasks[t.id]["datasets"].setdefault(did, {})[label] = ci([task_objective(t, r) for r in returns])
    for tid, entry in tasks.items():
        if entry["datasets"]:
            if tid not in refs:
                raise ValueError(f"{references} has no references for {tid}: run scripts/risk_references.py")
            entry["references"] = {name: {"role": p["role"], **p["objective"]} for name, p in refs[tid]["policies"].items()}
    doc["tasks"] = tasks
    return doc


def task_reference(entry: dict) -> tuple[str, dict]:
    """(name, objective) of the task's own reference (its role says so), else of the expert."""
    for name, r in entry["references"].items():
        if r["role"] == "the task's reference":
            return name, r
    return next(iter(entry["references"].items()))


def _in_order(doc: dict) -> dict:
    """The task table's entries in catalogue order — tasks as `ogdata.envs.risk.TASKS`, tiers as the catalogue's,
    learners SUITE_SOURCES' first, then by name, references by name — however the JSON was keyed."""
    from ogdata.envs.risk import TASKS

    rank = {t.id: i for i, t in enumerate(TASKS)}
    labels = list(SUITE_SOURCES)
    out = {}
    for tid in sorted(doc["tasks"], key=lambda t: rank.get(t, len(rank))):
        e = doc["tasks"][tid]
        datasets = {did: {lab: rows[lab] for lab in sorted(rows, key=lambda x: (labels.index(x) if x in labels
                                                                                  else len(labels), x))}
                    for did, rows in sorted(e["datasets"].items(), key=lambda kv: TIERS.index(kv[0].split("/")[1][:-3]))}
        out[tid] = {**e, "datasets": datasets, "references": dict(sorted(e["references"].items()))}
    return out


def _cell(c: dict) -> str:
    """mean [interval], with the seed count where it is short of the protocol's."""
    return _fmt(c, 4) + (f" ({c['n']} seed{'s' if c['n'] > 1 else ''})" if c["n"] < SETTINGS["seeds"] else "")


def tasks_markdown(doc: dict) -> str:
    """A summary (per task: its reference, the best learner cell, the cells whose interval lies above the
    reference), then one table per task: tiers × learners."""
    tasks = _in_order(doc)
    lines = ["Each risk task's objective for the v1-lite suite's learners (5,000 updates, MLP 2×64, batch 256, 5 seeds, "
             "the full v1 datasets; final checkpoint on the fixed test markets): mean [95 % bootstrap interval over "
             "seeds]. References: once on the same markets, interval over the markets. Units: the env's episode "
             "return (execution: currency; portfolio/trading: log growth; lob: bp).", "",
             "| task | reference | objective | best learner (tier) | its objective | cells above the reference |",
             "|---|---|---|---|---|---|"]
    for tid, e in tasks.items():
        name, ref = task_reference(e)
        cells = [(lab, did.split("/")[1], c) for did, rows in e["datasets"].items() for lab, c in rows.items()]
        if not cells:
            continue
        lab, tier, best = max(cells, key=lambda x: x[2]["mean"])
        above = sum(1 for *_, c in cells if c["n"] > 1 and c["low"] > ref["value"])
        lines.append(f"| {tid} | `{name}` | {ref['value']:.4g} | {lab} ({tier}) | {_cell(best)} | {above} of {len(cells)} |")
    lines.append("")
    for tid, e in tasks.items():
        if not e["datasets"]:
            continue
        labels = list(dict.fromkeys(lab for rows in e["datasets"].values() for lab in rows))
        lines += [f"**{tid}**", "", "| dataset | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for did, rows in e["datasets"].items():
            lines.append(f"| {did.split('/')[1]} | " + " | ".join(_cell(rows[lab]) if lab in rows else "—"
                                                               for lab in labels) + " |")
        refs = "; ".join(f"`{n}` ({r['role']}) {r['value']:.4g}" for n, r in e["references"].items())
        lines += ["", f"References: {refs}.", ""]
    return "\n".join(lines)


HLGAUSS_RUNS = ROOT / "results" / "runs" / "v1-lite-hlgauss"
HLGAUSS = {"value_loss": "hl_gauss"}


def aggregate_suite_ablation(hl_root: Path = HLGAUSS_RUNS, mse_root: Path = SUITE_RUNS) -> dict:
    """MSE vs HL-Gauss across the lite suite: every (dataset, algorithm) run with `--set value_loss=hl_gauss`
    under `hl_root`, paired by seed with the suite's own (MSE) runs of it. Per cell both sides' figures and the
    seed-paired difference (HL-Gauss − MSE) of the score, mean return and CVaR_5% with bootstrap intervals; per
    algorithm the IQM of each side over the cells where both have the protocol's seeds, and how many cells'
    score difference is above, below or across 0; the same counts and the median difference per algorithm and
    env family (what helps where)."""
    from baselines.stats import iqm_ci

    doc: dict = {"table": "hlgauss-suite", "suite": "v1-lite", "protocol": "v1: final checkpoint on the fixed test markets",
                 "interval": "95 % percentile bootstrap over seeds (rliable); IQM: stratified bootstrap",
                 "cells": {}, "algorithms": {}, "families": {}}
    for algo_dir in sorted(hl_root.glob("*/*")):
        did, algo = algo_dir.parent.name.replace("__", "/"), algo_dir.name
        hl = seed_records(algo_dir, HLGAUSS, f"{algo}+hl_gauss")
        mse = seed_records(mse_root / algo_dir.parent.name / algo, {}, algo)
        common = sorted(set(hl) & set(mse))
        if not common:
            continue
        cell = {"seeds": common, "mse": {k: ci([mse[s][k] for s in common]) for k in FIGURES},
                "hl_gauss": {k: ci([hl[s][k] for s in common]) for k in FIGURES},
                "hl_gauss_minus_mse": {k: ci([None if hl[s][k] is None or mse[s][k] is None else hl[s][k] - mse[s][k]
                                              for s in common]) for k in ("score", "return_mean", "return_cvar5")},
                "scores": {"mse": [mse[s]["score"] for s in common], "hl_gauss": [hl[s]["score"] for s in common]}}
        doc["cells"].setdefault(algo, {})[did] = cell
    for algo, cells in doc["cells"].items():
        full = {d: c for d, c in cells.items() if len(c["seeds"]) >= SETTINGS["seeds"]}
        d = [c["hl_gauss_minus_mse"]["score"] for c in cells.values()]
        entry = {"cells": len(cells), "full_cells": len(full), **_up_down(d)}
        entry["score_across_0"] = len(d) - entry["score_up"] - entry["score_down"]
        moves = [_side(c["hl_gauss_minus_mse"]["return_mean"]) * _side(c["hl_gauss_minus_mse"]["return_cvar5"])
                 for c in cells.values()]
        entry["tail_with_mean"], entry["tail_against_mean"] = moves.count(1), moves.count(-1)
        if full:
            mats = {side: [[c["scores"][side][i] for c in full.values()] for i in range(SETTINGS["seeds"])]
                    for side in ("mse", "hl_gauss")}
            entry["iqm"] = {k: dict(zip(("iqm", "low", "high"), v)) for k, v in iqm_ci(mats).items()}
        doc["algorithms"][algo] = entry
        by_family: dict[str, list[dict]] = {}
        for did, c in cells.items():
            by_family.setdefault(env_spec(did.split("/")[0]).family, []).append(c["hl_gauss_minus_mse"]["score"])
        doc["families"][algo] = {f: {"cells": len(d), **_up_down(d), "median_score_change": float(np.median([x["mean"] for x in d]))}
                                 for f, d in sorted(by_family.items())}
    doc["not_run"] = ablation_not_run(mse_root, doc["cells"])
    return doc


def ablation_not_run(mse_root: Path, cells: dict) -> dict:
    """What the ablation lacks: the suite's seeds, of each (dataset, learner) whose learner takes an HL-Gauss
    critic, that are not among the seeds its record `cells` pairs (not a second read of the HL-Gauss runs: a run
    finishing while the record is built is then either counted or listed here, never neither). Per tier the cells
    and runs to go and, per learner, the env ids."""
    from baselines.registry import ALGORITHMS, takes_hl_gauss

    out: dict = {"cells": 0, "runs": 0, "tiers": {}}
    for algo_dir in sorted(mse_root.glob("*/*")):
        algo, (env, tier) = algo_dir.name, algo_dir.parent.name.split("__")
        if algo not in ALGORITHMS or not takes_hl_gauss(algo):
            continue
        paired = cells.get(algo, {}).get(f"{env}/{tier}", {}).get("seeds", [])
        todo = set(seed_dirs(algo_dir, {}, algo)) - set(paired)
        if todo:
            t = out["tiers"].setdefault(tier.removesuffix("-v1"), {"cells": 0, "runs": 0, "learners": {}})
            t["cells"], t["runs"] = t["cells"] + 1, t["runs"] + len(todo)
            t["learners"].setdefault(algo, []).append(env)
            out["cells"], out["runs"] = out["cells"] + 1, out["runs"] + len(todo)
    return out


def not_run_lines(doc: dict) -> list[str]:
    """The markdown of `ablation_not_run`: one line per tier, in catalogue order (a JSON record's keys are sorted)."""
    nr = doc["not_run"]
    if not nr["cells"]:
        return ["Every cell of the suite whose learner takes an HL-Gauss critic has its HL-Gauss runs."]
    def count(e: dict) -> str:
        return f"{e['cells']} cell{'s' * (e['cells'] != 1)}, {e['runs']} run{'s' * (e['runs'] != 1)}"

    lines = [f"Not yet run: {count(nr)} (the suite's seeds without an HL-Gauss run):", ""]
    for tier, t in sorted(nr["tiers"].items(), key=lambda kv: TIERS.index(kv[0])):
        who = "; ".join(f"{algo}: {', '.join(envs)}" for algo, envs in sorted(t["learners"].items()))
        lines.append(f"- {tier}: {count(t)} — {who}")
    return lines


def _side(x: dict) -> int:
    """+1 / -1 where a difference's interval lies above / below 0, else 0 (across 0, or no interval)."""
    return 1 if x["low"] is not None and x["low"] > 0 else -1 if x["high"] is not None and x["high"] < 0 else 0


def _up_down(diffs: list[dict]) -> dict:
    sides = [_side(x) for x in diffs]
    return {"score_up": sides.count(1), "score_down": sides.count(-1)}


LEARNER_ORDER = ("td3bc", "itd3bc", "matd3bc", "iql", "iiql", "cql", "bcq")  # the actor-critics, then the rest


def _learners(doc: dict) -> list[str]:
    known = [a for a in LEARNER_ORDER if a in doc["algorithms"]]
    return known + sorted(set(doc["algorithms"]) - set(known))


def suite_ablation_summary(doc: dict) -> list[str]:
    """The two summary tables (README and the top of the markdown): per learner the IQM of each side over its
    full cells (the better side bold where the intervals are apart) and its cells up / down / across 0; then per
    learner and env family the cells up / down of all and the median Δ score."""
    def iqm(e: dict, side: str, other: str) -> str:
        if "iqm" not in e:
            return "—"
        m, o = e["iqm"][side], e["iqm"][other]
        text = f"{m['iqm']:.1f} [{m['low']:.1f}, {m['high']:.1f}]"
        return f"**{text}**" if m["low"] > o["high"] else text

    lines = ["| learner | cells | MSE | HL-Gauss | up / down / across 0 | mean and CVaR 5 %: together / against |",
             "|---|---:|---:|---:|---:|---:|"]
    for algo in _learners(doc):
        e = doc["algorithms"][algo]
        lines.append(f"| {algo} | {e['cells']} | {iqm(e, 'mse', 'hl_gauss')} | {iqm(e, 'hl_gauss', 'mse')} "
                     f"| {e['score_up']} / {e['score_down']} / {e['score_across_0']} "
                     f"| {e['tail_with_mean']} / {e['tail_against_mean']} |")
    families = sorted({f for fam in doc["families"].values() for f in fam})
    lines += ["", "| learner | " + " | ".join(families) + " |", "|---|" + "---|" * len(families)]
    for algo in _learners(doc):
        fam = doc["families"][algo]
        lines.append(f"| {algo} | " + " | ".join(
            f"{e['score_up']}↑ {e['score_down']}↓ of {e['cells']} ({e['median_score_change']:+.1f})" if (e := fam.get(f))
            else "—" for f in families) + " |")
    return lines


PLOT_FLOOR = -150.0  # scores below are drawn on the floor (open markers): MSE collapses reach −1,330


def ablation_counts(doc: dict) -> tuple[int, int]:
    """(dataset × learner cells, HL-Gauss runs paired with an MSE run) of a suite-ablation record."""
    cells = [c for by_did in doc["cells"].values() for c in by_did.values()]
    return len(cells), sum(len(c["seeds"]) for c in cells)


COUNTS = re.compile(r"[\d,]+ dataset × learner(\s+)cells, [\d,]+ HL-Gauss runs")


def counts_text(doc: dict, sep: str = " ") -> str:
    cells, runs = ablation_counts(doc)
    return f"{cells:,} dataset × learner{sep}cells, {runs:,} HL-Gauss runs"


def _block_end(lines: list[str], start: int, prefix: str, gaps: int) -> int:
    """The index after the block at `start`: lines starting with `prefix` (the first line whatever it is), crossing
    up to `gaps` single blank lines that are followed by more of them."""
    end = start + 1
    while True:
        while end < len(lines) and lines[end].startswith(prefix):
            end += 1
        if gaps and end + 1 < len(lines) and not lines[end].strip() and lines[end + 1].startswith(prefix):
            gaps, end = gaps - 1, end + 1
            continue
        return end


def update_readme_ablation(text: str, doc: dict) -> tuple[str, int]:
    """`text` with the suite ablation's summary tables, its not-run list and its cell and run counts rewritten
    from `doc`, and how many lines changed. A README without them is an error (nothing to rewrite)."""
    lines = text.split("\n")
    changed = 0
    for new, starts, prefix, gaps in ((suite_ablation_summary(doc), ("| learner | cells | MSE | HL-Gauss",), "|", 1),
                                      (not_run_lines(doc), ("Not yet run:", "Every cell of the suite"), "- ", 1)):
        at = next((i for i, line in enumerate(lines) if line.startswith(starts)), None)
        if at is None:
            raise ValueError(f"the README has no line starting {starts[0]!r}: put the block back (risk_table.py "
                             "--suite-ablation prints it in results/hlgauss_ablation_v1_lite.md) and run again")
        end = _block_end(lines, at, prefix, gaps)
        changed += sum(a != b for a, b in zip(lines[at:end], new)) + abs(end - at - len(new))
        lines[at:end] = new
    joined = "\n".join(lines)
    if not COUNTS.search(joined):
        raise ValueError("the README does not say '<n> dataset × learner cells, <n> HL-Gauss runs': "
                         "put the sentence back and run again")
    out = COUNTS.sub(lambda m: counts_text(doc, m.group(1)), joined)
    return out, changed + sum(a != b for a, b in zip(joined.split("\n"), out.split("\n")))


def suite_ablation_plot(doc: dict, path: Path) -> None:
    """One panel per learner: each cell's mean score with MSE (x) against HL-Gauss (y), the diagonal, and the
    cells whose seed-paired difference lies above / below 0 filled green / red (grey: across 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learners = _learners(doc)
    cols = 4
    rows = -(-len(learners) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    colour = {1: "tab:green", -1: "tab:red", 0: "0.6"}
    for ax, algo in zip(axes.flat, learners):
        cells = doc["cells"][algo].values()
        for c in cells:
            x, y = c["mse"]["score"]["mean"], c["hl_gauss"]["score"]["mean"]
            floored = min(x, y) < PLOT_FLOOR
            edge = colour[_side(c["hl_gauss_minus_mse"]["score"])]
            ax.scatter(max(x, PLOT_FLOOR), max(y, PLOT_FLOOR), s=18, marker="v" if floored else "o",
                       facecolors="none" if floored else edge, edgecolors=edge, linewidths=0.8)
        ax.plot([PLOT_FLOOR, 110], [PLOT_FLOOR, 110], color="0.3", lw=0.6, ls="--")
        e = doc["algorithms"][algo]
        ax.set_title(f"{algo}: {e['score_up']} up, {e['score_down']} down of {e['cells']}", fontsize=9)
        ax.set_xlim(PLOT_FLOOR - 8, 112)
        ax.set_ylim(PLOT_FLOOR - 8, 112)
        ax.set_xlabel("score, MSE critic", fontsize=8)
        ax.set_ylabel("score, HL-Gauss critic", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(learners):]:
        ax.axis("off")
    fig.suptitle(f"MSE vs HL-Gauss critics, v1-lite suite (normalised score, each cell's mean over its paired seeds; "
                 f"open triangles: below {PLOT_FLOOR:.0f}, drawn at it)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def suite_ablation_markdown(doc: dict) -> str:
    """The summary tables, then per algorithm its summary line and one row per dataset (MSE, HL-Gauss, paired
    differences)."""
    lines = ["MSE vs HL-Gauss critics on the v1-lite suite (5,000 updates, MLP 2×64, batch 256; final checkpoint on "
             "the fixed test markets): the suite's own runs (MSE) against the same runs with `--set value_loss=hl_gauss` "
             "(results/runs/v1-lite-hlgauss), paired by seed. Mean [95 % bootstrap interval]; Δ = HL-Gauss − MSE.", "",
             "Per learner: the IQM over its cells with 5 seeds a side [95 % stratified bootstrap]; the cells whose "
             "seed-paired Δ score is above / below / across 0; the cells whose Δ mean return and Δ CVaR 5 % both lie "
             "off 0, on the same side (together) or on opposite sides (against). Per env family: the cells whose Δ score is above (↑) / "
             "below (↓) 0, of all, and the median Δ score.", "", *suite_ablation_summary(doc), ""]
    for algo in _learners(doc):
        entry = doc["algorithms"][algo]
        summary = (f"**{algo}**: {entry['cells']} dataset{'' if entry['cells'] == 1 else 's'}; the score rose on "
                   f"{entry['score_up']}, fell on "
                   f"{entry['score_down']}, and its interval spans 0 on {entry['score_across_0']}")
        if "iqm" in entry:
            m, h = entry["iqm"]["mse"], entry["iqm"]["hl_gauss"]
            summary += (f". IQM over the {entry['full_cells']} with {SETTINGS['seeds']} seeds each: MSE {m['iqm']:.1f} [{m['low']:.1f}, "
                        f"{m['high']:.1f}], HL-Gauss {h['iqm']:.1f} [{h['low']:.1f}, {h['high']:.1f}]")
        lines += [summary + ".", "", "| dataset | score, MSE | score, HL-Gauss | Δ score | Δ mean return | Δ CVaR 5 % |",
                  "|---|---|---|---|---|---|"]
        for did, c in doc["cells"][algo].items():
            n = len(c["seeds"])
            name = did if n >= SETTINGS["seeds"] else f"{did} ({n} seed{'' if n == 1 else 's'})"
            dd = c["hl_gauss_minus_mse"]
            lines.append(f"| {name} | {_fmt(c['mse']['score'])} | {_fmt(c['hl_gauss']['score'])} | {_fmt(dd['score'])} "
                         f"| {_fmt(dd['return_mean'])} | {_fmt(dd['return_cvar5'])} |")
        lines.append("")
    return "\n".join(lines + not_run_lines(doc))


def write(table: str) -> None:
    doc = aggregate(table)
    name = "risk_table" if table == "risk" else "hlgauss_ablation"
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    (OUT / f"{name}.md").write_text(markdown(doc) + "\n")
    print(f"wrote results/{name}.json/.md")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", default="risk,ablation", help="risk, ablation or both (comma-separated)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--plan", action="store_true")
    p.add_argument("--aggregate-only", action="store_true")
    p.add_argument("--seeds", type=int, default=SETTINGS["seeds"])
    p.add_argument("--labels", default=None, help="only these labels (comma-separated)")
    p.add_argument("--suite-table", action="store_true", help="only the table of the v1-lite suite's records")
    p.add_argument("--task-table", action="store_true",
                   help="only each risk task's objective for the v1-lite suite's learners, beside its references")
    p.add_argument("--suite-ablation", action="store_true",
                   help="only MSE vs HL-Gauss on the v1-lite suite (results/runs/v1-lite-hlgauss against the suite's runs)")
    p.add_argument("--ablation-readme", type=Path, metavar="README",
                   help="rewrite this README's ablation tables, counts and not-run list from the committed "
                        "results/hlgauss_ablation_v1_lite.json (run --suite-ablation first to refresh it)")
    args = p.parse_args(argv)
    if args.ablation_readme:
        doc = json.loads((OUT / "hlgauss_ablation_v1_lite.json").read_text())
        try:
            text, changed = update_readme_ablation(args.ablation_readme.read_text(), doc)
        except ValueError as e:
            print(f"risk_table: {e}", file=sys.stderr)
            return 1
        args.ablation_readme.write_text(text)
        print(f"{args.ablation_readme}: {changed} lines rewritten from results/hlgauss_ablation_v1_lite.json")
        return 0
    for flag, name, build, render in ((args.suite_ablation, "hlgauss_ablation_v1_lite", aggregate_suite_ablation,
                                       suite_ablation_markdown),
                                      (args.suite_table, "risk_table_v1_lite", aggregate_suite, suite_markdown),
                                      (args.task_table, "risk_tasks_v1_lite", aggregate_tasks, tasks_markdown)):
        if flag:
            doc = build()
            (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
            (OUT / f"{name}.md").write_text(render(doc) + "\n")
            print(f"wrote results/{name}.json/.md")
            if args.suite_ablation:
                suite_ablation_plot(doc, OUT / f"{name}.png")
                print(f"wrote results/{name}.png")
            return 0
    SETTINGS["seeds"] = args.seeds
    tables = args.tables.split(",")
    runs = planned(tables)
    if args.labels:
        runs = [r for r in runs if r[1] in args.labels.split(",")]
    todo = [r for r in runs if not (run_dir(r[0], r[1], r[2]) / "result.json").exists()]
    print(f"{len(runs)} runs, {len(todo)} to do")
    if args.plan:
        for r in todo:
            print(" ", r[0], r[1], f"seed{r[2]}", r[3], r[4])
        return 0
    if not args.aggregate_only:
        for did in DATASETS:
            for stock in sorted({r[5] for r in todo if r[0] == did}):
                prepare(did, stock)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futs = {pool.submit(run_one, *r): r for r in todo}
            for f in as_completed(futs):
                r = futs[f]
                try:
                    out = f.result()
                    print(f"done {r[0]} {r[1]} seed{r[2]}: score {out['score']:.1f}, {out['wall_s']:.0f} s", flush=True)
                except Exception as e:  # a failed run is reported and left out of the tables
                    print(f"FAILED {r[0]} {r[1]} seed{r[2]}: {type(e).__name__}: {e}", flush=True)
    for table in tables:
        write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
