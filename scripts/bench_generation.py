"""Generation benchmark: end-to-end transitions/s (env + policy inference + writer) — ogdata vs Minari.

Same env, same behaviour policy (the committed Good checkpoint of the env, Gaussian noise
σ = 0.1, numpy inference), both producing a finished dataset on disk:
  Minari 0.5.4  gymnasium.make("ogdata/<env>-v0") wrapped in minari.DataCollector, one step
                at a time, then DataCollector.create_dataset (HDF5)
  ogdata        ogdata.generate.generate(env, "good", N, ...) — vectorised core, shards,
                zarr writer, atomic commit (measures off: profiling is timed separately)
Writes a Markdown table to bench_out/generation.md (and JSON beside it).

    python scripts/bench_generation.py       # market-making-as, execution-ac (+ multi-market-making-3, ogdata only)
    python scripts/bench_generation.py --env market-making-as --transitions 500000 --minari-transitions 50000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def policy_for(env_id: str):
    from ogdata.catalogue import recipe, weights_path
    from ogdata.policies.checkpoint import load_policy

    r = recipe(env_id)
    t = r["tiers"]["good"]
    return load_policy(weights_path(t["policies"][0]["checkpoint"]), noise=float(t["noise"]["value"]))


def bench_minari(env_id: str, n: int, tmp: Path) -> dict:
    import gymnasium
    import minari
    from minari import DataCollector

    from ogdata.envs import env_spec  # importing ogdata.envs registers the gymnasium ids

    os.environ["MINARI_DATASETS_PATH"] = str(tmp / "minari")
    pol = policy_for(env_id)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    env = DataCollector(gymnasium.make(env_spec(env_id).gym_id), record_infos=False)
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        a = pol(obs[None], rng)[0]
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset()
    ds = env.create_dataset(dataset_id=f"bench/{env_id}-v0", algorithm_name="ppo-good",
                            description="ogdata generation benchmark")
    wall = time.perf_counter() - t0
    steps = int(ds.total_steps)
    env.close()
    return {"method": f"Minari {minari.__version__} DataCollector (B=1)", "transitions": steps, "wall_s": wall,
            "tps": steps / wall}


def bench_ogdata(env_id: str, n: int, tmp: Path, workers: int) -> dict:
    from ogdata.generate import generate

    out = tmp / f"ogdata-{workers}"
    t0 = time.perf_counter()
    ds = generate(env_id, "good", n, out, workers=workers, seed=0, profile=False, progress=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out)
    return {"method": f"ogdata generate (workers={workers})", "transitions": len(ds), "wall_s": wall,
            "tps": len(ds) / wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--transitions", type=int, default=1_000_000, help="ogdata dataset size")
    ap.add_argument("--minari-transitions", type=int, default=100_000, help="Minari dataset size")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ma-env", action="append", default=None,
                    help="multi-agent envs (ogdata only; joint transitions); default multi-market-making-3")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out")
    a = ap.parse_args(argv)
    envs = a.env or ["market-making-as", "execution-ac"]
    if a.ma_env is None:
        a.ma_env = ["multi-market-making-3"]
    rows = []
    for env_id in envs:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            base = bench_minari(env_id, a.minari_transitions, tmp)
            base["env"] = env_id
            rows.append(base)
            print(base, flush=True)
            for w in a.workers:
                r = bench_ogdata(env_id, a.transitions, tmp, w)
                r["env"] = env_id
                r["speedup"] = r["tps"] / base["tps"]
                rows.append(r)
                print(r, flush=True)
    for env_id in a.ma_env:   # Minari has no multi-agent collector: ogdata only
        with tempfile.TemporaryDirectory() as d:
            for w in a.workers:
                r = bench_ogdata(env_id, a.transitions, Path(d), w)
                r.update(env=env_id, speedup=None)
                rows.append(r)
                print(r, flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    lines = ["# Generation throughput: env + policy inference + writer, end to end", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
             f"Python {platform.python_version()}, numpy {np.__version__}. Policy: the env's committed Good "
             "checkpoint (2×64 MLP, numpy inference) with Gaussian noise σ=0.1. Both write a finished "
             "dataset on disk (Minari: HDF5 via create_dataset; ogdata: zarr, atomic commit, manifest).", "",
             "| env | method | transitions | wall (s) | transitions/s | vs Minari |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        sp = ("n/a (Minari has no multi-agent support)" if r.get("speedup", 0) is None else
              f"{r['speedup']:.1f}×" if "speedup" in r else "1.0×")
        lines.append(f"| {r['env']} | {r['method']} | {r['transitions']:,} | {r['wall_s']:.2f} | "
                     f"{r['tps']:,.0f} | {sp} |")
    (a.out / "generation.md").write_text("\n".join(lines) + "\n")
    (a.out / "generation.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
