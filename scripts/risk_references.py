"""The risk tasks' references on the protocol's fixed test markets (issue #22).

For every risk task (`ogdata.envs.risk`: <env>-cvar5, -cvar10, -meancvar10) the base id's v1 expert (the
mean's reference) and the policies the task names (its objective's best known policy: the optimal static
Almgren–Chriss schedule, the optimal constant portfolio mix under the calibration's Gaussian model, or
trading flat) are rolled once on the base id's test markets; per policy and task: the mean episode return,
CVaR_α and the task's objective, each with a 95 % percentile-bootstrap interval over the test markets
(arch, 2,000 resamples; for real prices, whose test markets are overlapping windows of one price path, a
circular block bootstrap in blocks of one episode). Deterministic policies on fixed markets: the interval
is the sampling error of the market set, not a training variance. The model's prediction for the constant-mix and
static-schedule references (`mean`, `std` of the Gaussian G they were optimised under) is printed beside them.

    python scripts/risk_references.py          # -> results/risk_references.{json,md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baselines.evaluate import MarketEvaluator  # noqa: E402
from baselines.finance import cvar, task_objective  # noqa: E402
from ogdata.envs.risk import TASKS  # noqa: E402
from ogdata.progress import progress_bar  # noqa: E402

OUT = ROOT / "results"
RESAMPLES = 2000


def interval(x: np.ndarray, stat, block: int = 1) -> dict:
    """stat(x) with its 95 % percentile-bootstrap interval over the test markets (arch). Synthetic markets are
    independent (block 1: the plain bootstrap). Real-price test markets are every start date of one price path,
    so neighbouring episodes share almost all their days: a circular block bootstrap with blocks of one
    episode's length resamples whole stretches of history instead (`block`)."""
    from arch.bootstrap import CircularBlockBootstrap, IIDBootstrap

    bs = IIDBootstrap(x, seed=0) if block <= 1 else CircularBlockBootstrap(block, x, seed=0)
    low, high = bs.conf_int(lambda v: np.array([stat(v)]), reps=RESAMPLES, method="percentile")[:, 0]
    return {"value": float(stat(x)), "ci95": [float(low), float(high)]}


def model_moments(env_id: str, name: str, core) -> dict | None:
    """The Gaussian model a risk reference was optimised under: (mean, std) of its episode return."""
    from baselines.evaluate import reference_policy

    pol = reference_policy(env_id, name, core)
    if hasattr(pol, "mean") and hasattr(pol, "std"):                       # portfolio mixes
        return {"mean": pol.mean, "std": pol.std}
    if hasattr(pol, "risk_aversion"):                                      # AC schedules
        from ogdata.policies.execution import ac_trajectory, static_return_moments

        m, s = static_return_moments(core, ac_trajectory(core, pol.risk_aversion))
        return {"mean": m, "std": s}
    return None


def build() -> dict:
    envs = list(dict.fromkeys(t.env_id for t in TASKS))
    evs = {e: MarketEvaluator(e, "test") for e in envs}
    wanted = {e: list(dict.fromkeys([evs[e].references["expert_name"]] +
                                    [n for t in TASKS if t.env_id == e for n in t.references.values()]))
              for e in envs}
    returns, models, blocks = {}, {}, {}
    bar = progress_bar(total=sum(map(len, wanted.values())), desc="risk references", unit="policy")
    for e in envs:
        core = evs[e].cores()[0][0]
        blocks[e] = int(core.max_steps) if evs[e].markets.kind == "start-dates" else 1
        for name in wanted[e]:
            returns[e, name] = evs[e].reference_returns(name)["returns"].astype(np.float64)
            models[e, name] = model_moments(e, name, core)
            bar.update(1)
    bar.close()
    doc = {"markets": "the base id's v1 test markets (ogdata/envs/markets-v1.json)",
           "interval": f"95 % percentile bootstrap over the test markets (arch, {RESAMPLES} resamples; real prices: "
                       "circular blocks of one episode's length, the start dates overlapping)",
           "cvar": "mean of the worst ceil(α·n) episode returns (baselines.finance.cvar)", "tasks": {}}
    for t in TASKS:
        rows = {}
        for name in dict.fromkeys([evs[t.env_id].references["expert_name"], *t.references.values()]):
            x = returns[t.env_id, name]
            role = "the task's reference" if name in t.references.values() else "the base id's v1 expert (the mean's)"
            rows[name] = {"role": role, "episodes": int(x.size),
                          "block": blocks[t.env_id], "mean": interval(x, np.mean, blocks[t.env_id]),
                          "cvar": interval(x, lambda v, a=t.alpha: cvar(v, a), blocks[t.env_id]),
                          "objective": interval(x, lambda v, task=t: task_objective(task, v), blocks[t.env_id]),
                          "model": models[t.env_id, name]}
        doc["tasks"][t.id] = {"env_id": t.env_id, "expert": evs[t.env_id].references["expert_name"],
                              "objective": t.objective, "alpha": t.alpha, "weight": t.weight,
                              "description": t.description, "policies": rows}
    return doc


def _c(c: dict, digits: int) -> str:
    return f"{c['value']:.{digits}f} [{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"


def markdown(doc: dict) -> str:
    """One row per task: its reference's mean, CVaR_α and objective, beside the v1 expert's objective."""
    lines = ["## Risk tasks: references on the fixed test markets", "",
             f"{doc['markets']}; {doc['interval']}; CVaR: {doc['cvar']}. Units: each base env's episode return "
             "(execution: −(shortfall + AC risk charge) in bp of arrival value; portfolio: a year's summed daily "
             "log growth; trading: the episode's summed reward). Model: the mean / std of G under the Gaussian "
             "model the reference was optimised in.", "",
             "| task | reference | mean | CVaR_α | objective | v1 expert's objective | model mean / std |",
             "|---|---|---|---|---|---|---|"]
    for tid, t in doc["tasks"].items():
        digits = 0 if t["env_id"].startswith("execution") else 3
        pols, expert = t["policies"], t["expert"]
        refs = [n for n, r in pols.items() if r["role"].startswith("the task")] or [None]
        for name in refs:
            e = f"{_c(pols[expert]['objective'], digits)} (`{expert}`)"
            if name is None:
                lines.append(f"| {tid} | — | | | | {e} | |")
                continue
            r, m = pols[name], pols[name]["model"]
            model = "—" if m is None else f"{m['mean']:.{digits}f} / {m['std']:.{digits}f}"
            lines.append(f"| {tid} | `{name}` | {_c(r['mean'], digits)} | {_c(r['cvar'], digits)} | "
                         f"{_c(r['objective'], digits)} | {e} | {model} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    doc = build()
    (OUT / "risk_references.json").write_text(json.dumps(doc, indent=1) + "\n")
    (OUT / "risk_references.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
