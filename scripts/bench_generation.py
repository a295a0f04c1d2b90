"""Generation benchmark: end-to-end transitions/s (env + policy inference + writer) — ogdata vs Minari.

Same env, same behaviour policy (the committed Good checkpoint of the env, Gaussian noise
σ = 0.1, numpy inference), both producing a finished dataset on disk. Two comparisons, labelled:

  equal work     Minari 0.5.4: gymnasium.make("ogdata/<env>-v0") in minari.DataCollector, one
                 market stepped at a time with one policy call per step, then create_dataset (HDF5);
                 ogdata: generate(...) with its rollout core held to ONE market (B = 1: one policy
                 call per step too), same transition count, one worker — the same work through
                 each library's own stepping, recording and writing.
  vectorised     ogdata generate(...) as shipped: up to 256 markets per shard core stepped and
                 inferred as one batch, 1 and 2 worker processes — what vectorisation adds on top.
Measures are off on the ogdata side (profiling is timed separately). Every method runs once per
round, the rounds interleaved (order reversed every other round) so load changes hit every side
alike; each row is the median (min–max) of --rounds rounds, ratios are per round then the median.
The load average is recorded. Writes bench_out/generation.md and every round in generation.json.

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
import warnings
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
    from minari import DataCollector

    from ogdata.envs import env_spec  # importing ogdata.envs registers the gymnasium ids

    os.environ["MINARI_DATASETS_PATH"] = str(tmp / "minari")
    warnings.filterwarnings("ignore", module="minari")   # author / code_permalink / eval_env not set
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
    shutil.rmtree(tmp / "minari", ignore_errors=True)
    return {"transitions": steps, "wall_s": wall, "tps": steps / wall}


def bench_ogdata(env_id: str, n: int, tmp: Path, workers: int, max_envs: int | None = None) -> dict:
    """generate() to a finished dataset; max_envs=1 holds each shard's rollout core to one market."""
    import ogdata.generate as gen

    out = tmp / f"ogdata-{workers}-{max_envs}"
    saved = gen.MAX_SHARD_ENVS
    if max_envs is not None:
        if workers != 1:
            raise ValueError("max_envs applies in-process (workers=1) only")
        gen.MAX_SHARD_ENVS = max_envs   # read by run_shard at call time, in this process
    try:
        t0 = time.perf_counter()
        ds = gen.generate(env_id, "good", n, out, workers=workers, seed=0, profile=False, progress=False)
        wall = time.perf_counter() - t0
    finally:
        gen.MAX_SHARD_ENVS = saved
    n_done = len(ds)
    shutil.rmtree(out)
    return {"transitions": n_done, "wall_s": wall, "tps": n_done / wall}


def fmt_rate(xs: list[float]) -> str:
    return f"{np.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"


def fmt_ratio(xs: list[float]) -> str:
    return f"{np.median(xs):.1f}× ({min(xs):.1f}–{max(xs):.1f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--transitions", type=int, default=1_000_000, help="vectorised ogdata dataset size")
    ap.add_argument("--minari-transitions", type=int, default=30_000,
                    help="Minari dataset size, and the equal-work ogdata (B = 1) dataset size")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median, min–max)")
    ap.add_argument("--no-minari", action="store_true", help="skip the Minari side (ogdata rows only)")
    ap.add_argument("--ma-env", action="append", default=None,
                    help="multi-agent envs (ogdata only; joint transitions); default multi-market-making-3")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out")
    a = ap.parse_args(argv)
    envs = a.env or ["market-making-as", "execution-ac"]
    if a.ma_env is None:
        a.ma_env = ["multi-market-making-3"]
    if not a.no_minari:
        try:
            import minari  # noqa: F401
        except ImportError:
            print("Minari not installed (pip install minari==0.5.4): ogdata rows only", flush=True)
            a.no_minari = True
    # (env, key, label, runner); one trial of each per round, interleaved
    methods = []
    for env_id in envs:
        if not a.no_minari:
            methods.append((env_id, "minari", "Minari DataCollector, B = 1 (one policy call per step)",
                            lambda tmp, e=env_id: bench_minari(e, a.minari_transitions, tmp)))
        methods.append((env_id, "b1", "ogdata generate, core held to B = 1 (one policy call per step), 1 worker",
                        lambda tmp, e=env_id: bench_ogdata(e, a.minari_transitions, tmp, 1, max_envs=1)))
        for w in a.workers:
            methods.append((env_id, f"w{w}", f"ogdata generate, vectorised (≤ 256 markets per shard), {w} worker"
                            + ("s" if w > 1 else ""),
                            lambda tmp, e=env_id, w=w: bench_ogdata(e, a.transitions, tmp, w)))
    for env_id in a.ma_env:   # Minari has no multi-agent collector: ogdata only
        for w in a.workers:
            methods.append((env_id, f"w{w}", f"ogdata generate, vectorised (≤ 256 markets per shard), {w} worker"
                            + ("s" if w > 1 else ""),
                            lambda tmp, e=env_id, w=w: bench_ogdata(e, a.transitions, tmp, w)))
    runs: dict[tuple[str, str], list[dict]] = {(e, k): [] for e, k, _, _ in methods}
    loads = [os.getloadavg()[0]]
    for r in range(a.rounds):
        order = methods if r % 2 == 0 else methods[::-1]
        for env_id, key, label, fn in order:
            with tempfile.TemporaryDirectory() as d:
                res = fn(Path(d))
            res["round"] = r
            runs[(env_id, key)].append(res)
            print(f"round {r + 1}/{a.rounds} {env_id} {label}: {res['tps']:,.0f} transitions/s "
                  f"({res['transitions']:,} in {res['wall_s']:.2f} s)", flush=True)
        loads.append(os.getloadavg()[0])

    minari_v = ""
    if not a.no_minari:
        from importlib.metadata import version

        minari_v = f", Minari {version('minari')}"

    def tps(env_id, key):
        return [x["tps"] for x in sorted(runs[(env_id, key)], key=lambda x: x["round"])]

    lines = ["# Generation throughput: env + policy inference + writer, end to end", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}; {platform.processor() or platform.machine()}, {os.cpu_count()} "
             f"cores (shared), load average {min(loads):.1f}–{max(loads):.1f} while running; Python "
             f"{platform.python_version()}, numpy {np.__version__}{minari_v}. Policy: the env's committed Good checkpoint "
             "(2×64 MLP, numpy inference) with Gaussian noise σ = 0.1. Every side writes a finished dataset on disk "
             "(Minari: HDF5 via create_dataset; ogdata: zarr, sha256 manifest, fsync, atomic rename). Median "
             f"(min–max) of {a.rounds} interleaved rounds; ratios per round, then the median.", "",
             "**Equal work** — one market, one policy call per step, "
             f"{a.minari_transitions:,} transitions on each side:", "",
             "| env | method | transitions/s | × Minari |",
             "| --- | --- | ---: | ---: |"]
    summary = {}
    for env_id in envs:
        label = {k: lab for e, k, lab, _ in methods if e == env_id}
        if "minari" in label:
            m = tps(env_id, "minari")
            lines.append(f"| {env_id} | {label['minari']} | {fmt_rate(m)} | 1.0× |")
            b1 = tps(env_id, "b1")
            eq = [x / y for x, y in zip(b1, m)]
            summary[env_id] = {"equal_work_vs_minari": float(np.median(eq))}
            lines.append(f"| {env_id} | {label['b1']} | {fmt_rate(b1)} | **{fmt_ratio(eq)}** |")
        else:
            lines.append(f"| {env_id} | {label['b1']} | {fmt_rate(tps(env_id, 'b1'))} | (Minari not run) |")
    lines += ["", "**What vectorisation adds** — ogdata as shipped, "
              f"{a.transitions:,} transitions; × B = 1 is against the equal-work ogdata row above, × Minari "
              "against Minari's row:", "",
              "| env | method | transitions/s | × ogdata B = 1 | × Minari |",
              "| --- | --- | ---: | ---: | ---: |"]
    for env_id in envs + a.ma_env:
        for w in a.workers:
            v = tps(env_id, f"w{w}")
            label = f"ogdata generate, vectorised, {w} worker" + ("s" if w > 1 else "")
            if (env_id, "b1") in runs:
                vb = fmt_ratio([x / y for x, y in zip(v, tps(env_id, "b1"))])
            else:
                vb = "—"
            if (env_id, "minari") in runs:
                vm = [x / y for x, y in zip(v, tps(env_id, "minari"))]
                summary.setdefault(env_id, {})[f"vectorised_w{w}_vs_minari"] = float(np.median(vm))
                vm_s = fmt_ratio(vm)
            else:
                vm_s = "n/a (Minari has no multi-agent support)" if env_id in a.ma_env else "(Minari not run)"
            lines.append(f"| {env_id} | {label} | {fmt_rate(v)} | {vb} | {vm_s} |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "generation.md").write_text("\n".join(lines) + "\n")
    (a.out / "generation.json").write_text(json.dumps(
        {"load_average": loads, "rounds": a.rounds, "summary": summary,
         "runs": [{"env": e, "method": k, "label": lab, "results": runs[(e, k)]} for e, k, lab, _ in methods]},
        indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
