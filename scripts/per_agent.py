"""Each agent's own return under the learned joint policies of the many-agent datasets, from the run records.

    python scripts/per_agent.py --datasets 'lob-competing-makers-*' [--runs-dir results/runs/v1-lite]

A general-sum id is scored jointly (the mean of the agents' returns, normalised with the joint
references), which hides how the agents split it: two makers at 30 and 30 score as one at 50 and one
at 10. The records keep each agent's mean return on the test markets (`final.per_agent`, written since
2026-12-02); this prints, per dataset and algorithm, the mean over seeds [95 % bootstrap interval] of
each agent's return and of the gap between the best- and worst-paid agent of a run, beside the
references' own split (`ogdata/envs/references-v1.json`, `per_agent`).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baselines.stats import mean_ci  # noqa: E402
from ogdata.envs import make_env  # noqa: E402


def collect(runs_dir: Path, pattern: str) -> dict[tuple[str, str], list[list[float]]]:
    """(dataset, algo) -> one list of per-agent mean returns per seed that recorded them."""
    out: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for path in sorted(runs_dir.glob("*/*/seed*/result.json")):
        rec = json.loads(path.read_text())
        per = rec.get("final", {}).get("per_agent")
        if per is None or not fnmatch.fnmatch(rec["dataset"], pattern):
            continue
        out[(rec["dataset"], rec["algo"])].append(per["return_mean"])
    return out


def _cell(x) -> str:
    m, lo, hi = mean_ci(x)
    text = f"{m:.2f}" if np.isnan(lo) else f"{m:.2f} [{lo:.2f}, {hi:.2f}]"
    return text.replace("-", "−")


@functools.cache
def agent_names(env_id: str) -> tuple[str, ...]:
    """The env's agents in its own order, the order the run records list their returns in."""
    return tuple(make_env(env_id).possible_agents)


def rows(runs: dict[tuple[str, str], list[list[float]]]) -> list[str]:
    lines = ["| dataset | algo | seeds | each agent's return | best − worst agent |", "|---|---|---:|---|---:|"]
    for (did, algo), per in sorted(runs.items()):
        a = np.asarray(per, dtype=np.float64)              # (seeds, agents)
        names = agent_names(did.split("/")[0])
        agents = " · ".join(f"{n} {_cell(a[:, i])}" for i, n in enumerate(names))
        lines.append(f"| {did} | {algo} | {len(a)} | {agents} | {_cell(a.max(axis=1) - a.min(axis=1))} |")
    return lines


def reference_rows(pattern: str) -> list[str]:
    refs = json.loads((ROOT / "ogdata" / "envs" / "references-v1.json").read_text())["envs"]
    lines = []
    for env, e in sorted(refs.items()):
        if not fnmatch.fnmatch(env, pattern.split("/")[0]):
            continue
        others = [(k, b) for k, b in e.get("baselines", {}).items() if k != e["expert"].get("name")]
        for role, row in [("expert", e["expert"]), *others]:      # the expert once, not again as a baseline
            per = row.get("per_agent")                               # agent -> {mean, se}
            if per:
                names = agent_names(env)                              # the env's order, as the runs'
                means = [per[n]["mean"] for n in names]
                lines.append(f"| {env} (reference) | {row.get('label', role)} | — | "
                             + " · ".join(f"{n} {m:.2f}" for n, m in zip(names, means)).replace("-", "−")
                             + f" | {max(means) - min(means):.2f} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "results" / "runs" / "v1-lite")
    ap.add_argument("--datasets", default="*", help="glob over dataset ids")
    a = ap.parse_args(argv)
    runs = collect(a.runs_dir, a.datasets)
    if not runs:
        print(f"no run under {a.runs_dir} for {a.datasets!r} recorded per-agent returns", file=sys.stderr)
        return 1
    print("\n".join(rows(runs) + reference_rows(a.datasets)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
