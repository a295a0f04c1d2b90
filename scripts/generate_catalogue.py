"""Build a catalogue version from the committed recipes: every env with a recipe × 5 tiers.

--version 0 (default) is the lite v0 catalogue (100k transitions per tier) that CI and the main job
use; --version 1 is catalogue v1 (1M transitions per tier, or 1M joint transitions multi-agent).

Each env's Replay tier is generated first (it is the SACo reference of the others), then
random, poor, medium and good; each dataset is profiled (TQ, SACo, return statistics) as it
is written. Resumable: a dataset already present under --out is skipped (its timing kept).
Wall time, size and headline measures of every dataset go to <out>/catalogue_generation.json.

    python scripts/generate_catalogue.py                       # v0, into OGDATA_HOME/datasets
    python scripts/generate_catalogue.py --version 1           # catalogue v1
    python scripts/generate_catalogue.py --workers 2 --out /data/ogdata --cards dataset_cards
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ogdata.catalogue import catalogue_envs, recipe  # noqa: E402
from ogdata.config import datasets_dir  # noqa: E402
from ogdata.generate import generate  # noqa: E402
from ogdata.progress import progress_bar  # noqa: E402
from ogdata.storage.format import METADATA_FILE  # noqa: E402

ORDER = ("replay", "random", "poor", "medium", "good")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", type=int, default=0, help="catalogue version (default 0, the lite catalogue)")
    ap.add_argument("--out", type=Path, default=None, help="root directory (default: OGDATA_HOME/datasets)")
    ap.add_argument("--env", action="append", default=[], help="only these envs (repeatable)")
    ap.add_argument("--tier", action="append", default=[], choices=ORDER, help="only these tiers (repeatable)")
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--ray", metavar="ADDRESS", help="run the rollouts on a Ray cluster")
    ap.add_argument("--transitions", type=int, help="override every tier's size (for a quick trial)")
    ap.add_argument("--force", action="store_true", help="regenerate datasets that already exist")
    ap.add_argument("--cards", type=Path, help="also write the dataset cards into this directory")
    a = ap.parse_args(argv)
    out = a.out or datasets_dir()
    envs = a.env or catalogue_envs(a.version)
    tiers = [t for t in ORDER if not a.tier or t in a.tier]
    log_file = out / "catalogue_generation.json"
    log = json.loads(log_file.read_text()) if log_file.is_file() else {}
    jobs = []
    for env in envs:
        r = recipe(env, a.version)
        jobs += [(env, t, r) for t in tiers if t in r["tiers"]]
    total_t0 = time.perf_counter()
    bar = progress_bar(jobs, desc="catalogue", unit="dataset")
    for env, tier, r in bar:
        did = f"{env}/{tier}-v{int(r.get('version', 0))}"
        path = out / env / f"{tier}-v{int(r.get('version', 0))}"
        if (path / METADATA_FILE).is_file() and not a.force:
            bar.write(f"skip {did}: already at {path}")
            continue
        t = r["tiers"][tier]
        n = int(a.transitions or t["transitions"])   # with --transitions the datasets get no catalogue id
        t0 = time.perf_counter()
        ds = generate(env, tier, n, path, workers=a.workers, seed=int(t.get("seed", 0)), ray_address=a.ray,
                      recipe=r, overwrite=a.force)
        wall = time.perf_counter() - t0
        m = ds.measures
        log[did] = {"path": str(path), "wall_s": round(wall, 2), "transitions": len(ds),
                    "episodes": ds.num_episodes, "transitions_per_s": round(len(ds) / max(wall, 1e-9)),
                    "workers": a.workers, "tq": m.get("tq"), "saco": m.get("saco"),
                    "behaviour_normalised_score": m.get("behaviour_normalised_score"),
                    "note": t.get("note")}
        out.mkdir(parents=True, exist_ok=True)
        log_file.write_text(json.dumps(log, indent=1, sort_keys=True) + "\n")
        bar.write(f"{did}: {len(ds):,} transitions in {wall:.1f} s, TQ={_f(m.get('tq'))} SACo={_f(m.get('saco'))}")
    log_total = sum(v["wall_s"] for k, v in log.items() if k.endswith(f"-v{a.version}"))
    print(f"catalogue v{a.version}: {len(jobs)} datasets under {out} ({time.perf_counter() - total_t0:.0f} s this run, "
          f"{log_total:.0f} s summed over every dataset's generation); "
          f"timings in {log_file}")
    if a.cards:
        from ogdata.cards import write_cards

        changed = write_cards(out, a.cards)
        print(f"cards: {len(changed)} written under {a.cards}")
    return 0


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
