"""Build a catalogue version from the committed recipes: every env with a recipe × 5 tiers.

--version 0 (default) is the lite v0 catalogue (100k transitions per tier) that CI and the main job
use; --version 1 is catalogue v1 (1M transitions per tier, or 1M joint transitions multi-agent).

Each env's Replay tier is generated first (it is the SACo reference of the others), then
random, poor, medium and good; each dataset is profiled (TQ, SACo, return statistics) as it
is written. Resumable: a dataset already present under --out is skipped (its timing kept).
Wall time, size and headline measures of every dataset go to <out>/catalogue_generation.json, each
run's total wall time to <out>/catalogue_generation_runs.json. --jobs N generates N envs side by side.

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

from filelock import FileLock

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
    ap.add_argument("--jobs", type=int, default=1,
                    help="envs generated side by side in separate processes (each with --workers shard workers)")
    ap.add_argument("--ray", metavar="ADDRESS", help="run the rollouts on a Ray cluster")
    ap.add_argument("--transitions", type=int, help="override every tier's size (for a quick trial)")
    ap.add_argument("--force", action="store_true", help="regenerate datasets that already exist")
    ap.add_argument("--cards", type=Path, help="also write the dataset cards into this directory")
    a = ap.parse_args(argv)
    out = a.out or datasets_dir()
    envs = a.env or catalogue_envs(a.version)
    tiers = [t for t in ORDER if not a.tier or t in a.tier]
    log_file = out / "catalogue_generation.json"
    jobs: dict[str, list[str]] = {}
    for env in envs:
        r = recipe(env, a.version)
        todo = [t for t in tiers if t in r["tiers"]
                and (a.force or not (out / env / f"{t}-v{a.version}" / METADATA_FILE).is_file())]
        if todo:
            jobs[env] = todo
    skipped = sum(len([t for t in tiers if t in recipe(env, a.version)["tiers"]]) for env in envs) - sum(
        map(len, jobs.values()))
    if skipped:
        print(f"{skipped} dataset(s) already under {out}: kept (--force regenerates them)")
    total_t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    opts = {"version": a.version, "out": str(out), "workers": a.workers, "ray": a.ray,
            "transitions": a.transitions, "force": a.force, "parallel": a.jobs > 1}
    bar = progress_bar(total=sum(map(len, jobs.values())), desc=f"catalogue v{a.version}", unit="dataset")
    try:
        if a.jobs > 1:   # whole envs in parallel processes (each env's Replay tier first: it is their reference)
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool:
                futs = [pool.submit(build_env, env, todo, opts) for env, todo in jobs.items()]
                for f in as_completed(futs):
                    _record(f.result(), log_file, bar)
        else:
            for env, todo in jobs.items():
                for tier in todo:
                    _record(build_env(env, [tier], opts), log_file, bar)
    finally:
        bar.close()
    wall = time.perf_counter() - total_t0
    runs_file = out / "catalogue_generation_runs.json"
    run = {"version": a.version, "datasets": sum(map(len, jobs.values())), "wall_s": round(wall, 1),
           "jobs": a.jobs, "workers": a.workers, "cpus": os.cpu_count(),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _merge_json(runs_file, lambda runs: [*runs, run], [])
    print(f"catalogue v{a.version}: {sum(map(len, jobs.values()))} datasets generated under {out} in {wall:.0f} s "
          f"(jobs={a.jobs}, workers={a.workers}); per-dataset timings in {log_file}, runs in {runs_file}")
    if a.cards:
        from ogdata.cards import write_cards

        changed = write_cards(out, a.cards)
        print(f"cards: {len(changed)} written under {a.cards}")
    return 0


def build_env(env: str, tiers: list[str], opts: dict) -> dict[str, dict]:
    """Generate `tiers` of one env in order (Replay first); returns each dataset's log entry."""
    from threadpoolctl import threadpool_limits

    r = recipe(env, opts["version"])
    entries = {}
    # one BLAS thread when envs run side by side: the measures' matmuls would otherwise oversubscribe the cores
    with threadpool_limits(limits=1 if opts.get("parallel") else None):
        for tier in tiers:
            did, path = f"{env}/{tier}-v{opts['version']}", Path(opts["out"]) / env / f"{tier}-v{opts['version']}"
            t = r["tiers"][tier]
            n = int(opts["transitions"] or t["transitions"])   # with --transitions the datasets get no catalogue id
            t0 = time.perf_counter()
            ds = generate(env, tier, n, path, workers=opts["workers"], seed=int(t.get("seed", 0)),
                          ray_address=opts["ray"], recipe=r, overwrite=opts["force"], progress=not opts.get("parallel"))
            wall = time.perf_counter() - t0
            m = ds.measures
            entries[did] = {"path": str(path), "wall_s": round(wall, 2), "transitions": len(ds),
                            "episodes": ds.num_episodes, "transitions_per_s": round(len(ds) / max(wall, 1e-9)),
                            "workers": opts["workers"], "tq": m.get("tq"), "saco": m.get("saco"),
                            "saco_coarse": m.get("saco_coarse"),
                            "behaviour_normalised_score": m.get("behaviour_normalised_score"), "note": t.get("note")}
    return entries


def _merge_json(path: Path, update, empty):
    """Read-modify-write a JSON log under a file lock, so that generations of other envs running in other
    processes (separate invocations) keep their entries: a log read once at start would drop theirs."""
    with FileLock(str(path) + ".lock"):
        data = update(json.loads(path.read_text()) if path.is_file() else empty)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=isinstance(data, dict)) + "\n")
        tmp.replace(path)


def _record(entries: dict[str, dict], log_file: Path, bar) -> None:
    _merge_json(log_file, lambda log: {**log, **entries}, {})
    for did, e in entries.items():
        bar.write(f"{did}: {e['transitions']:,} transitions in {e['wall_s']:.1f} s, TQ={_f(e['tq'])} "
                  f"SACo (coarse)={_f(e['saco_coarse'])}")
    bar.update(len(entries))


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
