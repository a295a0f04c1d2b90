"""Do the dataset measures predict the baselines? The dataset-perspective paper's two claims, checked.

Schweighofer et al. found that BC's score tracks a dataset's trajectory quality (TQ), and that
off-policy offline RL gains over BC where state-action coverage (SACo) is high. Over every
dataset of a reproduction this module measures both as Spearman rank correlations (ranks, so
one outlier such as trading-sp500's TQ of 2.5 cannot carry the result) and draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MEASURES = ("tq", "saco", "saco_coarse")
BC = {False: "bc", True: "mabc"}  # the behaviour-cloning algorithm of single- and multi-agent datasets


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (as Spearman's coefficient needs)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    return sums[inv] / counts[inv]


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equal-length samples (NaN if fewer than 3 or a constant one)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-d samples of equal length, got {x.shape} and {y.shape}")
    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def measure_links(table: Mapping[str, Any], measures: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per dataset: its measures, BC's score and the best offline-RL score; and the correlations.

    `table` is reproduce.py's aggregate ({dataset: {"multi_agent", "tier", "algos": {algo: {"last_mean"}}}});
    `measures` maps dataset ids to their measures. Datasets without BC or without measures are left out.
    """
    rows = []
    for did, v in sorted(table.items()):
        m = measures.get(did)
        bc = v["algos"].get(BC[bool(v["multi_agent"])])
        rl = {a: s["last_mean"] for a, s in v["algos"].items() if a != BC[bool(v["multi_agent"])]}
        if m is None or bc is None or not rl or any(m.get(k) is None for k in MEASURES):
            continue
        best = max(rl, key=rl.get)
        rows.append({"dataset": did, "tier": v["tier"], **{k: float(m[k]) for k in MEASURES},
                     "bc": float(bc["last_mean"]), "best_rl": float(rl[best]), "best_rl_algo": best,
                     "gain": float(rl[best] - bc["last_mean"])})
    col = {k: np.array([r[k] for r in rows]) for k in (*MEASURES, "bc", "gain")} if rows else {}
    corr = {}
    if rows:
        corr = {"bc_vs_tq": spearman(col["tq"], col["bc"]),
                "gain_vs_saco_coarse": spearman(col["saco_coarse"], col["gain"]),
                "gain_vs_saco": spearman(col["saco"], col["gain"]),
                "gain_vs_tq": spearman(col["tq"], col["gain"])}
    return {"n_datasets": len(rows), "spearman": corr, "datasets": rows}


def markdown(links: Mapping[str, Any]) -> str:
    c, n = links["spearman"], links["n_datasets"]
    if not n:
        return ""
    f = lambda x: "n/a" if x is None or not np.isfinite(x) else f"{x:+.2f}"  # noqa: E731
    return "\n".join([
        "### Do the measures predict the baselines?", "",
        f"Spearman rank correlations over the {n} datasets with a BC result (last scores):", "",
        "| claim (Schweighofer et al.) | Spearman ρ |", "| --- | ---: |",
        f"| BC's score tracks TQ | {f(c['bc_vs_tq'])} |",
        f"| offline RL's gain over BC grows with coverage: coarse SACo | {f(c['gain_vs_saco_coarse'])} |",
        f"| … with the paper's SACo (100 bins) | {f(c['gain_vs_saco'])} |",
        f"| … and with TQ (for contrast) | {f(c['gain_vs_tq'])} |", ""])


def plot(path: Path, links: Mapping[str, Any], title: str) -> None:
    """Two scatter plots: BC score against TQ, best offline-RL gain over BC against coarse SACo."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ogdata.ids import TIERS

    rows = links["datasets"]
    if not rows:
        return
    colours = dict(zip(TIERS, ("tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:grey")))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = ((axes[0], "tq", "bc", "TQ (0 random, 1 expert)", "BC last normalised score",
               f"BC tracks TQ: Spearman ρ = {links['spearman']['bc_vs_tq']:+.2f}"),
              (axes[1], "saco_coarse", "gain", "coarse SACo (Replay = 1)", "best offline RL − BC (score points)",
               f"gain vs coverage: Spearman ρ = {links['spearman']['gain_vs_saco_coarse']:+.2f}"))
    for ax, xk, yk, xl, yl, t in panels:
        for tier in TIERS:
            pts = [(r[xk], r[yk]) for r in rows if r["tier"] == tier]
            if pts:
                x, y = zip(*pts)
                ax.scatter(x, np.clip(y, -150, 150), s=22, alpha=0.8, color=colours[tier], label=tier)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl + " (clipped at ±150)")
        ax.set_title(t, fontsize=10)
    axes[0].plot([0, 1.2], [0, 120], color="grey", lw=0.6, ls="--")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
