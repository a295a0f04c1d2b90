"""Choose one config field of a learner on the validation markets alone, never the test markets.

Every candidate value × tuning dataset × seed is trained at the v1-lite settings with protocol
"v1-validation" (baselines/train.py): the test markets are not even built. The choice is the value
whose final checkpoint (the headline's checkpoint) has the highest validation score, averaged over
the tuning datasets and seeds; each cell is a mean over seeds with a 95 % bootstrap interval.
Resumable: a finished run (its result.json) is kept. Writes <out>/selection.json (every run's final
validation score and curve), <out>/selection.md and <out>/selection.png.

    python scripts/select_config.py --algo arsq --field conservative --values 0.5,1,2,5,10,20 \\
        --datasets execution-ac/medium-v1,market-making-as/medium-v1 --seeds 3 \\
        --out results/selection/arsq-conservative
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from reproduce import SUITES, run_one, run_overrides  # noqa: E402  (scripts/reproduce.py: the suite and its runner)

from baselines import stats  # noqa: E402
from baselines.train import RESULT  # noqa: E402
from ogdata.progress import progress_bar  # noqa: E402

SUITE = "v1-lite"
SETTINGS = ("steps", "hidden", "layers", "batch_size", "evals", "threads", "device")


def run_settings(algo: str, dataset: str, field: str, value, seed: int, out: Path, fixed: dict) -> dict:
    """The RunSettings fields of one selection run: the suite's settings and overrides (e.g. the discrete
    Q-learners' target sync), the fixed fields, the candidate value; protocol v1-validation."""
    cfg = SUITES[SUITE]
    overrides = {**run_overrides(cfg, dataset, algo), **fixed, field: value}
    return dict(algo=algo, dataset=dataset, seed=seed, **{k: cfg[k] for k in SETTINGS}, eval_episodes=0,
                out=str(out), progress=False, protocol="v1-validation", overrides=overrides)


def finished(settings: dict) -> dict | None:
    """The record of a finished run with these settings; None if it has not run. A record of another
    algorithm or other overrides under the same path (another selection in the same --out) is refused."""
    f = Path(settings["out"]) / RESULT
    if not f.is_file():
        return None
    r = json.loads(f.read_text())
    if r.get("algo") != settings["algo"] or (r.get("settings") or {}).get("overrides") != settings["overrides"]:
        raise SystemExit(f"{f} holds a run of {r.get('algo')} with overrides {(r.get('settings') or {}).get('overrides')}, "
                         f"not {settings['algo']} with {settings['overrides']}: give this selection its own --out")
    return r


def run_path(out: Path, dataset: str, field: str, value, seed: int) -> Path:
    return out / "runs" / dataset.replace("/", "__") / f"{field}={value}" / f"seed{seed}"


def summarise(algo: str, field: str, values: list, datasets: list[str], seeds: int, out: Path,
              fixed: dict | None = None) -> dict:
    """The selection record from the finished runs: per (value, dataset) and per value over datasets. A value
    is ranked only when every tuning dataset has all its seeds (failed runs would leave unequal samples)."""
    cells, per_value = {}, {}
    for v in values:
        pooled = []
        for d in datasets:
            runs = [finished(run_settings(algo, d, field, v, s, run_path(out, d, field, v, s), fixed or {}))
                    for s in range(seeds)]
            scores = [r["final_validation"] for r in runs if r is not None]
            if scores:
                m, lo, hi = stats.mean_ci(scores)
                cells[f"{v}|{d}"] = {"value": v, "dataset": d, "mean": m, "ci95": [lo, hi], "n": len(scores),
                                     "scores": scores}
            if len(scores) == seeds:
                pooled.append(cells[f"{v}|{d}"]["mean"])
        if len(pooled) == len(datasets):
            per_value[str(v)] = float(np.mean(pooled))
    chosen = max(per_value, key=per_value.get) if per_value else None
    return {"algo": algo, "field": field, "values": values, "datasets": datasets, "seeds": seeds,
            "criterion": "mean over tuning datasets of the mean over seeds of the final checkpoint's "
                         "normalised score on the validation markets (test markets never built)",
            "settings": {k: SUITES[SUITE][k] for k in SETTINGS}, "cells": cells, "mean_over_datasets": per_value,
            "chosen": chosen}


def markdown(doc: dict) -> str:
    head = "| " + doc["field"] + " | " + " | ".join(doc["datasets"]) + " | mean |"
    lines = [f"## {doc['algo']}: `{doc['field']}` chosen on the validation markets", "",
             f"Criterion: {doc['criterion']}. Seeds per cell: {doc['seeds']}. Chosen: **{doc['chosen']}**.", "",
             head, "| ---: " * (len(doc["datasets"]) + 2) + "|"]
    for v in doc["values"]:
        row = [str(v)]
        for d in doc["datasets"]:
            c = doc["cells"].get(f"{v}|{d}")
            row.append(f"{c['mean']:.1f} [{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}] ({c['n']})" if c else "—")
        m = doc["mean_over_datasets"].get(str(v))
        row.append("—" if m is None else f"**{m:.1f}**" if str(v) == doc["chosen"] else f"{m:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(path: Path, doc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    xs = np.arange(len(doc["values"]))
    for i, d in enumerate(doc["datasets"]):
        cs = [doc["cells"].get(f"{v}|{d}") for v in doc["values"]]
        idx = [k for k, c in enumerate(cs) if c]
        m = np.array([cs[k]["mean"] for k in idx])
        err = np.array([[cs[k]["mean"] - cs[k]["ci95"][0], cs[k]["ci95"][1] - cs[k]["mean"]] for k in idx]).T
        ax.errorbar(xs[idx] + 0.06 * (i - (len(doc["datasets"]) - 1) / 2), m, yerr=err, marker="o", capsize=3,
                    label=d)
    ax.set_xticks(xs, [str(v) for v in doc["values"]])
    ax.set_xlabel(f"{doc['field']} (chosen: {doc['chosen']})")
    ax.set_ylabel("final validation score (100 = v1 expert)")
    ax.set_title(f"{doc['algo']}: {doc['field']} on the validation markets (mean, 95 % CI)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algo", required=True)
    ap.add_argument("--field", required=True, help="the algorithm config field to choose")
    ap.add_argument("--values", required=True, help="comma-separated candidates (read as JSON where they parse)")
    ap.add_argument("--datasets", required=True, help="comma-separated tuning dataset ids")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=SUITES[SUITE]["jobs"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="other fields held fixed")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    values = [parse_value(v) for v in a.values.split(",")]
    datasets = a.datasets.split(",")
    fixed = {k: parse_value(v) for k, _, v in (p.partition("=") for p in a.set)}
    todo = [run_settings(a.algo, d, a.field, v, s, run_path(a.out, d, a.field, v, s), fixed)
            for v in values for d in datasets for s in range(a.seeds)]
    todo = [t for t in todo if finished(t) is None]
    failures = []
    bar = progress_bar(total=len(todo), desc=f"select {a.algo}.{a.field}", unit="run")
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(run_one, t) for t in todo]):
            r = fut.result()
            if not r["ok"]:
                failures.append(f"{r['settings']['out']}: {r['error']}")
            bar.update(1)
    bar.close()
    doc = summarise(a.algo, a.field, values, datasets, a.seeds, a.out, fixed)
    (a.out / "selection.json").write_text(json.dumps(doc, indent=1) + "\n")
    (a.out / "selection.md").write_text(markdown(doc))
    plot(a.out / "selection.png", doc)
    print(markdown(doc))
    for f in failures:
        print("FAILED", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
