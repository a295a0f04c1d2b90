"""Sensitivity of the coarse SACo to its two free choices, on locally generated datasets.

    python scripts/saco_sensitivity.py [--data DIR] [--single N] [--multi N] [--out results/saco_sensitivity]

For each env (execution-ac, market-making-as, multi-market-making-2, joint-execution-2) the five tiers are generated
at a reduced size from the committed catalogue recipe (the Replay tier re-trains the recipe's PPO
seeds once, minutes per env; OGDATA_HOME/training caches the runs; existing datasets under DIR
are reused). Then the coarse SACo of every tier is computed for

- the number of principal components, state + action: (2+1), (4+2) = the default, (6+3), (8+4);
- the saturation target: the Replay tier fills at most 25 % / 50 % (default) / 75 % of its
  transitions' worth of cells (the rule that picks the number of bins b);

the full grid of the two. For every setting: the tier values, the tier order (highest coverage
first) and Kendall's tau-b of that order against the default setting's. The paper's 100-bin SACo
is listed next to it for contrast. Writes results/saco_sensitivity.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ogdata.ids import TIERS  # noqa: E402
from ogdata.measures.coarse import COARSE_ACTION_K, COARSE_K, COARSE_SATURATION  # noqa: E402

ENVS = ("execution-ac", "market-making-as", "multi-market-making-2", "joint-execution-2")
# (state components, action components); the default is (COARSE_K - COARSE_ACTION_K, COARSE_ACTION_K)
COMPONENTS = ((2, 1), (4, 2), (6, 3), (8, 4))
SATURATIONS = (0.25, 0.5, 0.75)
DEFAULT = (COARSE_K - COARSE_ACTION_K, COARSE_ACTION_K, COARSE_SATURATION)


# -- pure core (tested in tests/test_saco_sensitivity.py) ---------------------------------------------

def tier_order(values: Mapping[str, float]) -> list[str]:
    """Tiers from the highest coverage to the lowest (ties keep the TIERS order, then the name)."""
    pos = {t: i for i, t in enumerate(TIERS)}
    return sorted(values, key=lambda t: (-float(values[t]), pos.get(t, len(pos)), t))


def kendall_tau(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Kendall's tau-b between two scorings of the same tiers (1 = same order, −1 = reversed).

    Pairs tied in one scoring count as neither concordant nor discordant (tau-b's tie correction);
    nan when either scoring is constant.
    """
    keys = sorted(set(a) & set(b))
    conc = disc = ties_a = ties_b = 0
    for i, p in enumerate(keys):
        for q in keys[i + 1:]:
            da, db = float(a[p]) - float(a[q]), float(b[p]) - float(b[q])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    den = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / den if den else float("nan")


def swapped_pairs(order: Sequence[str], base: Sequence[str]) -> list[str]:
    """Pairs of tiers that `order` ranks the other way round from `base`, each named "a/b" in TIERS order."""
    pos, tiers = {t: i for i, t in enumerate(order)}, {t: i for i, t in enumerate(TIERS)}
    pairs = [(a, b) for i, a in enumerate(base) for b in base[i + 1:] if pos[a] > pos[b]]
    return ["/".join(sorted(p, key=lambda t: (tiers.get(t, len(tiers)), t))) for p in pairs]


def largest_gap_split(values: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(broad, narrow): the tiers above and below the largest gap between consecutive values."""
    order = tier_order(values)
    gaps = [float(values[a]) - float(values[b]) for a, b in zip(order, order[1:])]
    i = max(range(len(gaps)), key=lambda j: (gaps[j], -j)) + 1
    return order[:i], order[i:]


def split_holds(values: Mapping[str, float], broad: Sequence[str], narrow: Sequence[str]) -> bool:
    """Every `broad` tier covers strictly more than every `narrow` tier."""
    return min(values[t] for t in broad) > max(values[t] for t in narrow)


def stability(values: Mapping[tuple[int, int, float], Mapping[str, float]],
              default: tuple[int, int, float] = DEFAULT) -> list[dict]:
    """One row per setting (state_k, action_k, saturation): its tier values, order, and tau vs `default`."""
    base = values[default]
    base_order = tier_order(base)
    rows = []
    for (ks, ka, sat), v in values.items():
        order = tier_order(v)
        rows.append({"state_k": ks, "action_k": ka, "saturation": sat, "default": (ks, ka, sat) == default,
                     "values": {t: float(v[t]) for t in v}, "order": order,
                     "same_order": order == base_order, "kendall_tau": kendall_tau(v, base)})
    return rows


# -- data ---------------------------------------------------------------------------------------------

def datasets(env_id: str, root: Path, single: int, multi: int) -> dict:
    """The five tiers of env_id at the reduced size, generated from the catalogue recipe when missing."""
    import ogdata
    from ogdata.catalogue import recipe as catalogue_recipe
    from ogdata.generate import generate

    recipe = catalogue_recipe(env_id)
    n = multi if recipe.get("multi_agent") else single
    out = {}
    for tier in ("replay", *[t for t in TIERS if t != "replay"]):
        path = root / env_id / f"{tier}-n{n}"
        if not (path / "metadata.json").is_file():
            t0 = time.perf_counter()
            generate(env_id, tier, n, path, recipe=recipe, profile=False, progress=False, overwrite=True)
            print(f"  generated {env_id}/{tier}: {time.perf_counter() - t0:.0f} s", flush=True)
        out[tier] = ogdata.load(path)
    return out


def measure(tiers: Mapping, components=COMPONENTS, saturations=SATURATIONS) -> tuple[dict, dict]:
    """({(state_k, action_k, saturation): {tier: coarse SACo}}, {setting: {"bins", "dims", "reference_cells"}}).

    `tiers` maps tier names to datasets and must hold "replay", the reference every grid is fitted on.
    """
    from ogdata.measures.coarse import coarse_coverage

    ref = tiers["replay"]
    values, grids = {}, {}
    for ks, ka in components:
        for sat in saturations:
            key = (ks, ka, sat)
            values[key] = {}
            for tier, ds in tiers.items():
                r = coarse_coverage(ds, ref, k=ks + ka, action_k=ka, saturation=sat)
                values[key][tier] = r["saco_coarse"]
            joint = r["saco_coarse_params"]["views"]["joint"]
            act = joint.get("action") or {}
            grids[key] = {"bins": r["coarse_bins"], "dims": r["coarse_dims"],
                          "state_dims": len(joint["state"]["variance"]),
                          "action_dims": len(act["variance"]) if act.get("kind") == "continuous" else len(act.get("low", [])),
                          "reference_cells": r["reference_unique_coarse_cells"]}
    return values, grids


def catalogue_values(env_id: str, cards_dir: Path = ROOT / "dataset_cards") -> dict[str, float] | None:
    """The full-size catalogue's coarse SACo per tier (default setting), read from the committed cards."""
    import re

    out = {}
    for f in sorted(cards_dir.glob(f"{env_id}/*-v0.md")):
        m = re.search(r"^\| SACo \(coarse grid\) \| ([-\d.e]+) \|$", f.read_text(), re.M)
        if m:
            out[f.stem.rsplit("-v", 1)[0]] = float(m.group(1))
    return out if set(out) == set(TIERS) else None


def saco_100(tiers: Mapping) -> dict[str, float]:
    from ogdata.measures import saco

    return {t: float(saco(ds, tiers["replay"])) for t, ds in tiers.items()}


# -- report -------------------------------------------------------------------------------------------

def _setting(r: Mapping) -> str:
    s = f"({r['state_k']}+{r['action_k']}), {int(round(100 * r['saturation']))} %"
    return f"**{s}** (default)" if r["default"] else s


def markdown(report: Mapping) -> str:
    fmt = lambda x: f"{x:.2f}"  # noqa: E731
    short = {"good": "G", "medium": "M", "poor": "P", "replay": "Re", "random": "Ra"}
    lines = ["# Coarse SACo: sensitivity to its parameters", "",
             "Written by `scripts/saco_sensitivity.py`. Coarse SACo = unique cells of a tier ÷ those of the env's "
             "Replay tier, on a grid fitted on the Replay tier: state and action standardised and projected on their "
             "own top principal components (state + action components below; the default is 4 + 2), each cut into b "
             "bins over ±3 standard deviations, b the largest candidate at which the Replay tier fills at most "
             "*saturation* × its transitions' worth of cells (default 50 %). Datasets: generated locally from the "
             "committed catalogue recipes at a reduced size — " + report["sizes"] + " — so the values differ from the "
             "catalogue's (the grid adapts to the Replay tier's size); the question here is only how the *order* of "
             "the tiers moves. Order: highest coverage first (G good, M medium, P poor, Re replay, Ra random). "
             "τ = Kendall's tau-b of the tier values against the default setting's (1 = same order). A block never "
             "gets more components than it has columns (a 1-d action keeps 1 and the state takes the rest of the "
             "total), so 'grid used' can differ from the setting asked and two settings can give the same grid.", "",
             "## Headline", ""]
    lines += [f"- {h}" for h in report["headline"]]
    for env, e in report["envs"].items():
        lines += ["", f"## `{env}`", "",
                  f"{e['transitions']} transitions per tier ({'joint, multi-agent' if e['multi_agent'] else 'single-agent'}); "
                  f"the paper's SACo (100 bins, saturated): "
                  + ", ".join(f"{t} {fmt(v)}" for t, v in e["saco_100"].items()) + ".", "",
                  "| components asked (state+action), saturation | grid used (state+action, bins) | " + " | ".join(TIERS) + " | order | τ |",
                  "|---|---|" + "---:|" * len(TIERS) + "---|---:|"]
        if e.get("catalogue"):
            c = e["catalogue"]
            lines.append("| catalogue v0 at full size, default | (committed cards) | "
                         + " | ".join(fmt(c["values"][t]) for t in TIERS)
                         + f" | {' > '.join(short[t] for t in c['order'])} | {c['kendall_tau']:.2f} |")
        for r in e["rows"]:
            g = r["grid"]
            lines.append(f"| {_setting(r)} | {g['state_dims']}+{g['action_dims']}, b = {g['bins']} | "
                         + " | ".join(fmt(r["values"][t]) for t in TIERS)
                         + f" | {' > '.join(short[t] for t in r['order'])} | {r['kendall_tau']:.2f} |")
    return "\n".join(lines) + "\n"


def headline(envs: Mapping) -> list[str]:
    out = []
    n_all = sum(len(e["rows"]) for e in envs.values())
    n_same = sum(r["same_order"] for e in envs.values() for r in e["rows"])
    taus = [r["kendall_tau"] for e in envs.values() for r in e["rows"] if not r["default"]]
    out.append(f"The full tier order equals the default's in {n_same} of {n_all} (env, setting) cases "
               f"(defaults included); Kendall τ vs the default: min {min(taus):.2f}, mean {sum(taus) / len(taus):.2f} "
               "over the non-default settings.")
    swaps: dict[str, int] = {}
    for e in envs.values():
        base = next(r for r in e["rows"] if r["default"])["order"]
        for r in e["rows"]:
            for pair in swapped_pairs(r["order"], base):
                swaps[pair] = swaps.get(pair, 0) + 1
    splits = {env: largest_gap_split(next(r for r in e["rows"] if r["default"])["values"]) for env, e in envs.items()}
    n_split = sum(split_holds(r["values"], *splits[env]) for env, e in envs.items() for r in e["rows"])
    out.append(f"The default's split at its largest gap (per env below: broad tiers | narrow tiers) holds — every "
               f"broad tier covers more than every narrow one — in {n_split} of {n_all} cases: that split is what the "
               "measure says reliably; the order inside each group is not.")
    rows_all = [r for e in envs.values() for r in e["rows"]]
    crude = [r for r in rows_all if r["grid"]["bins"] <= 3]
    flips = [r for r in rows_all if not r["same_order"]]
    if crude:
        out.append(f"{len(crude)} of {n_all} cases leave a crude grid of b ≤ 3 bins per component (many components "
                   f"at these sizes); they hold {sum(not r['same_order'] for r in crude)} of the {len(flips)} changed "
                   "orders, and there the values jump between neighbouring saturation targets.")
    if swaps:
        out.append("Pairs of tiers whose order flips against the default (number of (env, setting) cases): "
                   + ", ".join(f"{p} ({n})" for p, n in sorted(swaps.items(), key=lambda x: -x[1])) + ".")
    for env, e in envs.items():
        rows = [r for r in e["rows"] if not r["default"]]
        cat = e.get("catalogue")
        if cat:
            rows_note = f"the full-size catalogue's order has τ = {cat['kendall_tau']:.2f} vs this size's default; "
        else:
            rows_note = ""
        out.append(f"`{env}`: {rows_note}order {' > '.join(next(r for r in e['rows'] if r['default'])['order'])} at the default; "
                   f"same in {sum(r['same_order'] for r in rows)}/{len(rows)} other settings, τ ≥ "
                   f"{min(r['kendall_tau'] for r in rows):.2f}; split {', '.join(splits[env][0])} | "
                   f"{', '.join(splits[env][1])} in {sum(split_holds(r['values'], *splits[env]) for r in e['rows'])}"
                   f"/{len(e['rows'])} settings.")
    return out


def plot(report: Mapping, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(report["envs"])
    fig, axes = plt.subplots(1, len(envs), figsize=(max(4.2 * len(envs), 6.5), 3.6), squeeze=False)
    axes = axes[0]
    for ax, env in zip(axes, envs):
        rows = report["envs"][env]["rows"]
        labels = [f"{r['state_k']}+{r['action_k']}\n{int(100 * r['saturation'])}%" for r in rows]
        for t in TIERS:
            ax.plot(range(len(rows)), [r["values"][t] for r in rows], marker="o", label=t)
        ax.set_xticks(range(len(rows)), labels, fontsize=6)
        ax.set_title(env, fontsize=9)
        ax.set_ylabel("coarse SACo")
        ax.axvline([i for i, r in enumerate(rows) if r["default"]][0], color="grey", lw=0.5, ls="--")
    axes[0].legend(fontsize=7)
    fig.suptitle("coarse SACo per tier; x: components asked (state+action), saturation; dashed: default",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="where the reduced datasets go (default: OGDATA_HOME/sensitivity)")
    p.add_argument("--single", type=int, default=20_000, help="transitions per single-agent tier")
    p.add_argument("--multi", type=int, default=10_000, help="joint transitions per multi-agent tier")
    p.add_argument("--envs", nargs="+", default=list(ENVS))
    p.add_argument("--out", default=str(ROOT / "results" / "saco_sensitivity"))
    p.add_argument("--generate-only", action="store_true")
    args = p.parse_args(argv)
    from ogdata import config

    root = Path(args.data) if args.data else config.home() / "sensitivity"
    t0 = time.perf_counter()
    envs, timing = {}, {}
    for env in args.envs:
        t = time.perf_counter()
        tiers = datasets(env, root, args.single, args.multi)
        timing[env] = {"data_s": round(time.perf_counter() - t, 1)}
        if args.generate_only:
            continue
        t = time.perf_counter()
        values, grids = measure(tiers)
        rows = stability(values)
        for r in rows:
            r["grid"] = grids[(r["state_k"], r["action_k"], r["saturation"])]
        envs[env] = {"multi_agent": bool(tiers["replay"].multi_agent),
                     "transitions": {t: len(ds) for t, ds in tiers.items()},
                     "saco_100": saco_100(tiers), "rows": rows}
        cat = catalogue_values(env)
        if cat is not None:
            base = next(r for r in rows if r["default"])["values"]
            envs[env]["catalogue"] = {"values": cat, "order": tier_order(cat), "kendall_tau": kendall_tau(cat, base)}
        envs[env]["transitions"] = f"{min(envs[env]['transitions'].values()):,}–" \
                                   f"{max(envs[env]['transitions'].values()):,}"
        timing[env]["measure_s"] = round(time.perf_counter() - t, 1)
        print(f"{env}: {timing[env]}", flush=True)
    if args.generate_only:
        print(f"generated in {time.perf_counter() - t0:.0f} s: {timing}")
        return 0
    report = {"sizes": f"{args.single:,} transitions per single-agent tier, {args.multi:,} joint transitions per "
                       "multi-agent tier (whole episodes, so a little more)",
              "default": {"state_k": DEFAULT[0], "action_k": DEFAULT[1], "saturation": DEFAULT[2]},
              "envs": envs, "timing_s": timing, "total_s": round(time.perf_counter() - t0, 1)}
    report["headline"] = headline(envs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    plot(report, out.with_suffix(".png"))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
