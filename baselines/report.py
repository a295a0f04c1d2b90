"""The protocol-v1 results tables, rebuilt from run records alone.

Input: the `result.json` of every v1 run (baselines.train with protocol "v1": settings, versions,
the final checkpoint's test record with every episode's return, the checkpoint chosen on
validation, the validation curve) and the reference rows published with the test markets
(ogdata/envs/markets-v1.json). Output: one document (JSON), its markdown, and plots with
interval bars. Headline = the final checkpoint on the test markets; "best on validation" is a
separate, labelled column. Per dataset: mean over seeds with a 95 % bootstrap interval and a
sample std (ddof = 1); across datasets: IQM with stratified-bootstrap intervals and
performance profiles (baselines.stats, rliable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from baselines import analysis, stats
from baselines.registry import ALGORITHMS
from ogdata.envs.markets import market_references
from ogdata.envs.registry import env_spec
from ogdata.ids import TIERS

MIN_SEEDS = 5
FINANCE_COLUMNS = {  # family -> (figure key, header) shown in the finance tables
    "capital": (("annualised_log_return", "ann. log return"), ("annualised_volatility", "ann. vol"),
                ("sharpe", "Sharpe"), ("sortino", "Sortino"), ("max_drawdown", "max DD"),
                ("return_cvar5", "CVaR 5 % (episode return)"), ("annual_turnover", "ann. turnover"),
                ("score_gross", "score gross"), ("score_costs", "score lost to costs")),
    "execution": (("shortfall_bp_mean", "IS bp mean"), ("shortfall_bp_std", "IS bp std"),
                  ("shortfall_bp_cvar95", "IS bp CVaR 95 %"), ("share_dumped_mean", "share left for the dump")),
    "making": (("pnl_mean", "PnL / episode"), ("pnl_std", "PnL std"), ("inventory_std", "inventory std"),
               ("terminal_abs_inventory", "|terminal inventory|"), ("fill_rate", "fill rate")),
    "spread": (("pnl_mean", "P&L / episode"), ("pnl_std", "P&L std"), ("annualised_sharpe", "ann. Sharpe"),
               ("max_drawdown", "max DD ($)"), ("turnover_per_step", "turnover / step"),
               ("score_gross", "score gross"), ("score_costs", "score lost to costs")),
    "option": (("return_mean", "discounted payoff"), ("return_cvar5", "CVaR 5 % (payoff)"),
               ("early_exercise_rate", "early-exercise rate"), ("mean_steps_held", "steps held")),
}


def finance_kind(family: str) -> str:
    return {"portfolio": "capital", "trading": "capital", "execution": "execution", "stat-arb": "spread",
            "option-exercise": "option"}.get(family, "making")


def load_records(runs_root: str | Path) -> list[dict[str, Any]]:
    """Every finished v1 run record under `runs_root` (result.json with protocol "v1")."""
    out = []
    for f in sorted(Path(runs_root).rglob("result.json")):
        r = json.loads(f.read_text())
        if r.get("protocol") == "v1" and "final" in r:
            r["run_dir"] = str(f.parent)
            out.append(r)
    return out


def _ci(x) -> dict[str, Any]:
    m, lo, hi = stats.mean_ci(x)
    return {"mean": m, "ci95": [lo, hi], "std": stats.std1(x), "n": len(x)}


def build(records: list[dict[str, Any]], min_seeds: int = MIN_SEEDS, planned: int | None = None,
          measures: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The v1 results document from run records (see the module docstring); with `measures` (dataset id ->
    TQ, SACo, coarse SACo), the dataset-perspective re-check (`measures_vs_scores`, baselines.analysis)."""
    runs: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        runs.setdefault(r["dataset"], {}).setdefault(r["algo"], []).append(r)
    datasets: dict[str, Any] = {}
    for did, by_algo in sorted(runs.items()):
        first = next(iter(by_algo.values()))[0]
        spec = env_spec(first["env_id"])
        d = datasets[did] = {"env_id": spec.id, "tier": first.get("tier"), "family": spec.family,
                             "time_scale": {"step": spec.step, "periods_per_year": spec.periods_per_year},
                             "algos": {}}
        for algo, rs in sorted(by_algo.items()):
            rs = sorted(rs, key=lambda r: r["seed"])
            final = [r["final"]["normalised_score"] for r in rs]
            best = [r["best_on_validation"]["test"]["normalised_score"] for r in rs if "best_on_validation" in r]
            fin_keys = set().union(*(r["final"].get("finance", {}) for r in rs))
            finance = {k: float(np.mean([r["final"]["finance"][k] for r in rs
                                         if isinstance(r["final"]["finance"].get(k), (int, float))]))
                       for k in sorted(fin_keys)
                       if any(isinstance(r["final"]["finance"].get(k), (int, float)) for r in rs)}
            steps = [c["step"] for c in rs[0].get("curve", [])]
            curve = np.array([[c["validation_score"] for c in r["curve"]] for r in rs
                              if [c["step"] for c in r["curve"]] == steps]) if steps else np.zeros((0, 0))
            d["algos"][algo] = {
                "seeds": [r["seed"] for r in rs], "n_seeds": len(rs), "enough_seeds": len(rs) >= min_seeds,
                "multi_agent": ALGORITHMS[algo].multi_agent if algo in ALGORITHMS else None,
                "final": {**_ci(final), "scores": final},
                "best_on_validation": ({**_ci(best), "scores": best,
                                        "steps": [r["best_on_validation"]["step"] for r in rs],
                                        "label": "checkpoint chosen on the validation markets, scored on test"}
                                       if best else None),
                "finance": finance,
                "curve": {"steps": steps, "mean": curve.mean(axis=0).tolist() if curve.size else [],
                          "min": curve.min(axis=0).tolist() if curve.size else [],
                          "max": curve.max(axis=0).tolist() if curve.size else []},
                "episodes": rs[0]["final"]["episodes"], "markets": rs[0]["final"]["markets"],
            }
    references = {}
    for env in sorted({d["env_id"] for d in datasets.values()}):
        refs = market_references(env, "test")
        references[env] = {name: {"label": v["label"], "normalised_score": v["normalised_score"],
                                  "return_mean": v["return_mean"], "finance": v.get("finance", {})}
                           for name, v in {"random": refs["random"], **refs["baselines"]}.items()}
    doc = {"protocol": "v1", "runs": len(records), "planned_runs": planned, "min_seeds": min_seeds,
           "datasets": datasets, "references": references, "aggregate": aggregate(datasets),
           "aggregate_paired": paired_aggregate(datasets), "improvement": improvement(datasets)}
    if measures:
        doc["measures_vs_scores"] = measure_links(datasets, measures)
    return doc


def measure_links(datasets: dict[str, Any], measures: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The dataset-perspective paper's two claims on the v1 final scores (baselines.analysis: BC vs TQ,
    best offline RL's gain over BC vs coverage), each dataset's row tagged with its env family, plus the
    gain per family (median and range over its datasets)."""
    table = {did: {"multi_agent": any(c["multi_agent"] for c in d["algos"].values()), "tier": d["tier"],
                   "algos": {a: {"last_mean": c["final"]["mean"]} for a, c in d["algos"].items()}}
             for did, d in datasets.items()}
    links = analysis.measure_links(table, measures)
    by_family: dict[str, list[float]] = {}
    for row in links["datasets"]:
        row["family"] = datasets[row["dataset"]]["family"]
        by_family.setdefault(row["family"], []).append(row["gain"])
    links["gain_by_family"] = {f: {"datasets": len(g), "median": float(np.median(g)), "min": float(min(g)),
                                   "max": float(max(g))} for f, g in sorted(by_family.items())}
    return links


def aggregate(datasets: dict[str, Any]) -> dict[str, Any]:
    """Per algorithm across its datasets: IQM of the final scores with a stratified-bootstrap interval and
    its performance profile. Only cells with the full seed count (`enough_seeds`) enter while an algorithm has
    any (a cell still running would otherwise cut every cell to its few seeds); seeds are then truncated to
    the fewest any of those cells has (a full matrix)."""
    mats: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for algo in sorted({a for d in datasets.values() for a in d["algos"]}):
        cells = [(did, d["algos"][algo]) for did, d in datasets.items() if algo in d["algos"]]
        full = [(did, c) for did, c in cells if c.get("enough_seeds")]
        cells = [(did, c["final"]["scores"]) for did, c in (full or cells)]
        k = min(len(s) for _, s in cells)
        mats[algo] = np.array([s[:k] for _, s in cells]).T  # (runs, datasets)
        names[algo] = [did for did, _ in cells]
    if not mats:
        return {}
    iqm = stats.iqm_ci(mats)
    taus = np.linspace(-50, 150, 41)
    prof = stats.performance_profiles(mats, taus)
    return {a: {"iqm": iqm[a][0], "ci95": [iqm[a][1], iqm[a][2]], "datasets": len(names[a]),
                "runs_per_dataset": int(mats[a].shape[0]), "profile": prof[a]} for a in mats}


def _finite(x):
    """A number as metadata may hold it: a one-seed cell's missing interval (NaN) becomes None."""
    return x if isinstance(x, (int, float)) and np.isfinite(x) else None


def card_entries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per dataset, what its card's results table shows of a v1 suite (`build`'s doc): the final checkpoint on
    the test markets (mean and 95 % interval over seeds), the validation-chosen checkpoint's mean, the settings."""
    settings = {k: v for k, v in (doc.get("settings") or {}).items() if k not in ("jobs", "threads")}
    return {did: {"protocol": "v1", "settings": settings, "markets": next(iter(d["algos"].values()))["markets"],
                  "algos": {a: {"final_mean": s["final"]["mean"], "final_ci95": [_finite(x) for x in s["final"]["ci95"]],
                                "n_seeds": s["n_seeds"],
                                "best_on_validation_mean": (s["best_on_validation"] or {}).get("mean")}
                            for a, s in d["algos"].items()}}
            for did, d in doc["datasets"].items() if d.get("algos")}


# Algorithms compared on the very same datasets: each group's IQMs are taken over the datasets where every
# member has its full seed count, so they are comparable within the group (the per-algorithm IQMs are not).
PAIRED_GROUPS = {"single-agent, continuous actions": ("bc", "iql", "td3bc"),
                 "single-agent, continuous actions, with ARSQ": ("bc", "iql", "td3bc", "arsq"),
                 "single-agent, continuous actions, with the distributional IQL": ("bc", "iql", "qriql"),
                 "single-agent, continuous actions, with the model-based learners": ("bc", "iql", "td3bc", "mopo",
                                                                                     "lmopo"),
                 "single-agent, continuous actions, with CQL": ("bc", "iql", "td3bc", "cql"),
                 "single-agent, discrete actions": ("bc", "cql", "bcq"),
                 "multi-agent": ("mabc", "iiql", "itd3bc", "matd3bc")}


def paired_aggregate(datasets: dict[str, Any], groups: dict[str, tuple[str, ...]] = PAIRED_GROUPS,
                     min_datasets: int = 3) -> dict[str, Any]:
    """Per group of algorithms, the IQM [stratified-bootstrap interval] of each over the same datasets: those
    on which every member has the full seed count (seeds truncated to the fewest, a full matrix)."""
    out = {}
    for group, algos in groups.items():
        common = sorted(did for did, d in datasets.items()
                        if all((d["algos"].get(a) or {}).get("enough_seeds") for a in algos))
        if len(common) < min_datasets:
            continue
        k = min(len(datasets[did]["algos"][a]["final"]["scores"]) for did in common for a in algos)
        mats = {a: np.array([datasets[did]["algos"][a]["final"]["scores"][:k] for did in common]).T for a in algos}
        iqm = stats.iqm_ci(mats)
        out[group] = {"datasets": common, "runs_per_dataset": k,
                      "algos": {a: {"iqm": iqm[a][0], "ci95": [iqm[a][1], iqm[a][2]]} for a in algos}}
    return out


# Who beats whom, dataset by dataset: P(first > second) over the datasets where both have their full seeds.
IMPROVEMENT_PAIRS = (("iql", "bc"), ("td3bc", "bc"), ("cql", "bc"), ("bcq", "bc"), ("cql", "iql"), ("arsq", "iql"),
                     ("mopo", "iql"), ("lmopo", "iql"), ("mopo", "bc"), ("lmopo", "bc"), ("lmopo", "mopo"),
                     ("qriql", "iql"), ("iiql", "mabc"))


def improvement(datasets: dict[str, Any], pairs=IMPROVEMENT_PAIRS, min_datasets: int = 3) -> list[dict[str, Any]]:
    """Per pair (x, y): the probability of improvement P(X > Y) [stratified-bootstrap interval] (`stats.improvement_ci`)
    over the datasets where both have the full seed count, seeds truncated to the fewest (a full matrix); with the
    number of datasets where X's mean is above Y's. Unlike an IQM it needs no common score scale across datasets."""
    out = []
    for x, y in pairs:
        common = sorted(did for did, d in datasets.items()
                        if all((d["algos"].get(a) or {}).get("enough_seeds") for a in (x, y)))
        if len(common) < min_datasets:
            continue
        k = min(len(datasets[did]["algos"][a]["final"]["scores"]) for did in common for a in (x, y))
        mx, my = ([datasets[did]["algos"][a]["final"]["scores"][:k] for did in common] for a in (x, y))
        p, lo, hi = stats.improvement_ci(np.array(mx).T, np.array(my).T)
        above = sum(datasets[did]["algos"][x]["final"]["mean"] > datasets[did]["algos"][y]["final"]["mean"]
                    for did in common)
        out.append({"x": x, "y": y, "datasets": len(common), "runs_per_dataset": k, "p": p, "ci95": [lo, hi],
                    "x_mean_above": int(above)})
    return out


# -- markdown ---------------------------------------------------------------------------------------
def _f(x, nd=1) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def markdown(doc: dict[str, Any], settings: str = "") -> str:
    ds, refs = doc["datasets"], doc["references"]
    n_cells = sum(len(d["algos"]) for d in ds.values())
    planned = f" of {doc['planned_runs']} planned" if doc.get("planned_runs") else ""
    lines = ["## Baselines — evaluation protocol v1", "",
             f"{doc['runs']} runs{planned}, {n_cells} dataset × algorithm cells. {settings}".strip(), "",
             "Headline: the **final checkpoint** on each env's fixed **test markets** (ogdata/envs/markets-v1.json), "
             "normalised with the random and expert references scored on the same markets (100 = expert, 0 = random). "
             f"Cells: mean over training seeds [95 % bootstrap interval] (seeds); cells with fewer than "
             f"{doc['min_seeds']} seeds are marked *. Nothing is selected on the test markets.", ""]
    for ma in (False, True):
        rows = {k: v for k, v in ds.items() if any(c["multi_agent"] == ma for c in v["algos"].values())}
        if not rows:
            continue
        algos = sorted({a for v in rows.values() for a in v["algos"]})
        lines += [f"### {'Multi' if ma else 'Single'}-agent: final checkpoint, test markets", "",
                  "| dataset | " + " | ".join(algos) + " |", "| --- |" + " ---: |" * len(algos)]
        for did, v in rows.items():
            cells = []
            for a in algos:
                c = v["algos"].get(a)
                if c is None:
                    cells.append("—")
                    continue
                f = c["final"]
                cells.append(f"{_f(f['mean'])} [{_f(f['ci95'][0])}, {_f(f['ci95'][1])}] ({c['n_seeds']})"
                             + ("" if c["enough_seeds"] else "*"))
            lines.append(f"| {did} | " + " | ".join(cells) + " |")
        lines += ["", "Best checkpoint **chosen on the validation markets**, then scored on test (mean over seeds):",
                  "", "| dataset | " + " | ".join(algos) + " |", "| --- |" + " ---: |" * len(algos)]
        for did, v in rows.items():
            bov = [(v["algos"].get(a) or {}).get("best_on_validation") for a in algos]
            lines.append(f"| {did} | " + " | ".join(_f(b["mean"]) if b else "—" for b in bov) + " |")
        lines.append("")
    if doc.get("aggregate"):
        lines += ["### Across datasets", "", "| algorithm | IQM | 95 % stratified-bootstrap interval | datasets | "
                  "seeds per dataset |", "| --- | ---: | ---: | ---: | ---: |"]
        for a, g in doc["aggregate"].items():
            lines.append(f"| {a} | {_f(g['iqm'])} | [{_f(g['ci95'][0])}, {_f(g['ci95'][1])}] | {g['datasets']} | "
                         f"{g['runs_per_dataset']} |")
        lines += ["", "IQMs of algorithms run on different sets of datasets are not directly comparable.", ""]
    if doc.get("aggregate_paired"):
        lines += ["### Across datasets, paired", "", "Each group's algorithms on the same datasets (every member "
                  "with its full seeds there): IQM [95 % stratified-bootstrap interval].", ""]
        for group, g in doc["aggregate_paired"].items():
            algos = list(g["algos"])
            lines += [f"**{group}** ({len(g['datasets'])} datasets, {g['runs_per_dataset']} seeds each)", "",
                      "| " + " | ".join(algos) + " |", "|" + " ---: |" * len(algos),
                      "| " + " | ".join(f"{_f(v['iqm'])} [{_f(v['ci95'][0])}, {_f(v['ci95'][1])}]"
                                       for v in g["algos"].values()) + " |", ""]
    if doc.get("improvement"):
        lines += ["### Probability of improvement", "", "P(X > Y): the chance that a run of X scores above a run of Y "
                  "on a dataset drawn at random from those where both have their full seeds (ties count half; "
                  "0.5 = no difference) [95 % stratified-bootstrap interval].", "",
                  *improvement_table(doc["improvement"]), ""]
    lines += ["### Reference policies on the same test markets", ""]
    for env, rows in refs.items():
        lines.append(f"- **{env}**: " + "; ".join(f"{v['label']} {_f(v['normalised_score'])}" for v in rows.values()))
    lines.append("")
    links = doc.get("measures_vs_scores")
    if links and links["n_datasets"]:
        lines += [analysis.markdown(links), "Best offline RL's gain over BC (final checkpoint, score points) by env "
                  "family:", "", "| family | datasets | median gain | range |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {f} | {g['datasets']} | {_f(g['median'])} | [{_f(g['min'])}, {_f(g['max'])}] |"
                  for f, g in links["gain_by_family"].items()]
        lines.append("")
    lines += finance_markdown(doc)
    return "\n".join(lines)


def improvement_table(items: list[dict[str, Any]]) -> list[str]:
    """The probability-of-improvement table (`improvement`'s entries), as the results document and README show it."""
    return ["| X | Y | P(X > Y) | datasets | X's mean above Y's on |", "| --- | --- | ---: | ---: | ---: |"] + [
        f"| {g['x']} | {g['y']} | {g['p']:.2f} [{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}] | {g['datasets']} | "
        f"{g['x_mean_above']} |" for g in items]


def _time_scales(ds: dict[str, Any]) -> str:
    """How the finance figures of these datasets' envs are scaled, from each env's spec (steps a year)."""
    by_scale: dict[tuple, list[str]] = {}
    for env in sorted({d["env_id"] for d in ds.values()}):
        spec = env_spec(env)
        by_scale.setdefault((spec.periods_per_year, spec.step), []).append(env)
    annual = [f"{', '.join(envs)} ({spec_step}) with {ppy:g} steps a year"
              for (ppy, spec_step), envs in sorted(by_scale.items(), key=lambda kv: -(kv[0][0] or 0)) if ppy]
    episode = sorted(e for (ppy, _), envs in by_scale.items() if not ppy for e in envs)
    text = ("Annualised: " + "; ".join(annual) + "." if annual else "")
    if episode:
        text += (" Per episode, never annualised (intraday steps, or one payoff an episode): "
                 + ", ".join(episode) + ".")
    return text.strip()


def finance_markdown(doc: dict[str, Any]) -> list[str]:
    """Per finance kind, one table: every dataset × algorithm (mean over seeds) and, per env, the references."""
    ds, refs = doc["datasets"], doc["references"]
    out = ["### Finance figures (final checkpoint, test markets)", "", _time_scales(ds) + " Stds are sample stds "
           "(ddof = 1). Score = score gross − score lost to costs.", ""]
    for kind, cols in FINANCE_COLUMNS.items():
        envs = sorted({d["env_id"] for d in ds.values() if finance_kind(d["family"]) == kind})
        if not envs:
            continue
        out += ["| policy | env / dataset | " + " | ".join(h for _, h in cols) + " |",
                "| --- | --- |" + " ---: |" * len(cols)]
        for env in envs:
            for _name, r in refs.get(env, {}).items():
                out.append(f"| *{r['label']}* (reference) | {env} | "
                           + " | ".join(_f(r["finance"].get(k), 3) for k, _ in cols) + " |")
            for did, d in ds.items():
                if d["env_id"] != env:
                    continue
                for a, c in d["algos"].items():
                    out.append(f"| {a} | {did} | " + " | ".join(_f(c["finance"].get(k), 3) for k, _ in cols) + " |")
        out.append("")
    return out


# -- plots ------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scores(path: Path, doc: dict[str, Any]) -> None:
    """Per env, the final test score of every algorithm per tier, with 95 % bootstrap interval bars,
    and the named reference policies as dotted lines."""
    plt = _plt()
    ds = doc["datasets"]
    envs = sorted({d["env_id"] for d in ds.values()})
    if not envs:
        return
    ncol = min(3, len(envs))
    nrow = -(-len(envs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(6.5, 5.2 * ncol), 3.4 * nrow + 0.6), squeeze=False)
    learners = sorted({a for d in ds.values() for a in d["algos"]})  # one colour per learner in every panel
    colour = dict(zip(learners, plt.get_cmap("tab10" if len(learners) <= 10 else "tab20").colors))
    for ax, env in zip(axes.ravel(), envs):
        rows = sorted(((did, d) for did, d in ds.items() if d["env_id"] == env),
                      key=lambda x: TIERS.index(x[1]["tier"]) if x[1]["tier"] in TIERS else 99)
        algos = sorted({a for _, d in rows for a in d["algos"]})
        w = 0.8 / max(1, len(algos))
        for j, a in enumerate(algos):
            xs, ys, lo, hi = [], [], [], []
            for i, (_, d) in enumerate(rows):
                c = d["algos"].get(a)
                if c is None:
                    continue
                f = c["final"]
                xs.append(i - 0.4 + w * (j + 0.5))
                ys.append(f["mean"])
                lo.append(f["mean"] - f["ci95"][0] if np.isfinite(f["ci95"][0]) else 0.0)
                hi.append(f["ci95"][1] - f["mean"] if np.isfinite(f["ci95"][1]) else 0.0)
            ax.bar(xs, ys, width=w, yerr=[lo, hi], capsize=2, label=a, color=colour[a])
        for name, r in doc["references"].get(env, {}).items():
            if name not in ("random",):
                ax.axhline(r["normalised_score"], ls=":", lw=0.8, color="grey")
        ax.axhline(0, color="black", lw=0.6)
        ax.axhline(100, color="black", lw=0.6, ls="--")
        ax.set_xticks(range(len(rows)), [d["tier"] for _, d in rows], fontsize=8)
        ax.set_title(env, fontsize=9)
        ax.set_ylabel("normalised score (test)", fontsize=8)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes.ravel()[len(envs):]:
        ax.axis("off")
    fig.suptitle("Final checkpoint on the test markets: mean over seeds, 95 % bootstrap intervals\n"
                 "dashed: expert (100); dotted: the named reference policies", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()))  # the top 0.55 inch for the two-line title
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_aggregate(path: Path, doc: dict[str, Any]) -> None:
    """IQM with stratified-bootstrap interval bars (left) and performance profiles (right)."""
    agg = doc.get("aggregate") or {}
    if not agg:
        return
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(agg) + 2.5))
    names = list(agg)
    iqm = np.array([agg[a]["iqm"] for a in names])
    lo = np.array([agg[a]["ci95"][0] for a in names])
    hi = np.array([agg[a]["ci95"][1] for a in names])
    a1.barh(range(len(names)), iqm, xerr=[iqm - lo, hi - iqm], capsize=3, color="tab:blue", alpha=0.7)
    a1.set_yticks(range(len(names)), [f"{a} ({agg[a]['datasets']} datasets)" for a in names], fontsize=8)
    a1.set_xlabel("IQM of final normalised test scores (95 % stratified bootstrap)")
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, 20))  # the default cycle repeats after 10 learners
    for i, a in enumerate(names):
        p = agg[a]["profile"]
        c = colours[(2 * i) % 20 + (i // 10) % 2]
        a2.plot(p["tau"], p["share"], label=a, color=c, ls="-" if i % 2 == 0 else "--")
        a2.fill_between(p["tau"], p["low"], p["high"], alpha=0.2, color=c)
    a2.set_xlabel("normalised score τ")
    a2.set_ylabel("share of runs with score > τ")
    a2.legend(fontsize=7)
    a2.set_title("performance profiles", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(path: Path, doc: dict[str, Any], env: str) -> None:
    """Validation score against updates for every dataset of `env` (mean over seeds, band: min–max)."""
    rows = sorted(((did, d) for did, d in doc["datasets"].items() if d["env_id"] == env),
                  key=lambda x: TIERS.index(x[1]["tier"]) if x[1]["tier"] in TIERS else 99)
    if not rows:
        return
    plt = _plt()
    fig, axes = plt.subplots(1, len(rows), figsize=(max(6.0, 3.6 * len(rows)), 3.4), squeeze=False)
    learners = sorted({a for _, d in rows for a in d["algos"]})  # one colour per learner in every panel
    colour = dict(zip(learners, plt.get_cmap("tab10" if len(learners) <= 10 else "tab20").colors))
    for ax, (did, d) in zip(axes[0], rows):
        for a, c in d["algos"].items():
            cv = c["curve"]
            if not cv["steps"]:
                continue
            ax.plot(cv["steps"], cv["mean"], marker="o", ms=3, label=a, color=colour[a])
            ax.fill_between(cv["steps"], cv["min"], cv["max"], alpha=0.2, color=colour[a])
        ax.set_title(did, fontsize=8)
        ax.set_xlabel("updates", fontsize=8)
        ax.set_ylabel("validation score", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(f"{env}: validation score against updates\n(mean over seeds; band: min–max)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(out_dir: str | Path, name: str, doc: dict[str, Any], settings: str = "") -> list[Path]:
    """results/<name>.json, .md, _scores.png, _aggregate.png, _measures.png (with measures) and
    <name>_curves/<env>.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md", out / f"{name}_scores.png", out / f"{name}_aggregate.png"]
    paths[0].write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    paths[1].write_text(markdown(doc, settings) + "\n")
    plot_scores(paths[2], doc)
    plot_aggregate(paths[3], doc)
    if (doc.get("measures_vs_scores") or {}).get("n_datasets"):
        paths.append(out / f"{name}_measures.png")
        analysis.plot(paths[-1], doc["measures_vs_scores"],
                      f"{name}: do the dataset measures predict the final scores? (protocol v1)")
    curves = out / f"{name}_curves"
    curves.mkdir(exist_ok=True)
    for env in sorted({d["env_id"] for d in doc["datasets"].values()}):
        p = curves / f"{env}.png"
        plot_curves(p, doc, env)
        paths.append(p)
    return [p for p in paths if p.exists()]
