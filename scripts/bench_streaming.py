"""Streaming benchmark (issue #21): a 1M-transition tier read from the Hub without downloading it.

    nice -n 5 python scripts/bench_streaming.py       # ~3-6 min; writes results/bench_streaming.json
    python scripts/bench_streaming.py --rounds 3 --batches 500 --olah-pieces 0   # olah's own 4 KiB pieces

The Hub is olah on loopback (tests/hub_server.py, the project's test server: an independent
Hub-compatible server, reached through unmodified huggingface_hub/HfFileSystem). The datasets are
built here with ogdata's own writer from random arrays (obs 16 float32, act 4 float32, 1000-step
episodes) and committed straight into the server's git repository, files of 1 MiB and more as LFS
objects as the Hub stores them (the same layout `ogdata.publish` writes; the upload path is not what
is measured). olah sends a file 4 KiB at a time, a worker-thread hop each (a few MiB/s on a busy
machine); by default the server sends 1 MiB pieces instead (`--olah-pieces`, tests/hub_server.py
`larger_pieces`: same bytes, headers and routes). The server's own speed (one plain GET of the
largest shard) is reported beside the figures, since a first batch is bounded by it.

Measured, in interleaved rounds (each round: streamed then local, so drifts in the machine's
load hit both), reported as median and min–max over rounds:
- first batch: `ogdata.load("hf://datasets/<org>/<env>/<tier>")` + the first `sample(256)` from an empty cache (Hub
  round trips, whole shards fetched and sha256-checked), against `ogdata.load(local copy)` + the
  first `sample(256)` (which reads every array into memory);
- sampling throughput: `sample(256)` batches/s once the shards are cached, against the local copy
  (timed in alternating blocks of a tenth of the batches);
- peak RSS (a fresh process each), on a 4M- and an 8M-transition tier: streaming every transition
  (`iter_chunks`) with a 256 MiB chunk cache, then sampling from one of its 4 `shard`s (a
  distributed worker's part: its shards fit the cache; sampling the whole tier through a cache
  smaller than it would refetch shards every batch, which StreamCacheWarning reports — an error in
  this run), against the same dataset opened locally, iterated and sampled (its arrays in memory).
Floors (issue #21): first batch < 2 s; cached streamed sampling >= 0.5x local; streamed peak RSS
bounded by the chunk cache, not the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OBS, ACT, EP = 16, 4, 1000
ORG = "ogbench"
BATCH = 256
RSS_CACHE = 256 << 20
RSS_PARTS = 4      # the RSS run samples from Dataset.shard(0, RSS_PARTS): one worker's part, whose shards fit the cache
BUFFERS_MIB = 96   # beyond `import ogdata` and the cache: huggingface_hub + fsspec loaded on first use (~30 MiB),
                   # fetch buffers (4 threads x 4 MiB), a 65,536-row chunk of four arrays and its copies
LFS_MIN = 1 << 20  # files this large are committed as LFS objects, as the Hub stores binary files


def build(path: Path, n: int, dataset_id: str, seed: int = 0) -> Path:
    """n transitions of random data in EP-step episodes, written by ogdata's writer."""
    import ogdata

    rng = np.random.default_rng(seed)
    e = n // EP
    trunc = np.zeros(n, bool)
    trunc[EP - 1::EP] = True
    env, folder = dataset_id.split("/")
    ogdata.create_dataset(path, observations=rng.standard_normal((n + e, OBS), dtype=np.float32),
                          actions=rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                          rewards=rng.standard_normal(n, dtype=np.float32), terminations=np.zeros(n, bool),
                          truncations=trunc, episode_lengths=np.full(e, EP, np.int64),
                          metadata={"dataset_id": dataset_id, "env_id": env, "tier": folder.split("-v")[0]})
    return path


def commit_to_server(server, path: Path, dataset_id: str) -> str:
    """The tier folder committed into the server's git repo (what publish would upload), meta_head refreshed;
    files of LFS_MIN bytes and more as LFS pointers with their content under .git/lfs/objects."""
    import hashlib

    from hub_server import git_commit, init_repo, write_meta_head

    env, folder = dataset_id.split("/")
    repo = server.mirrors / "datasets" / ORG / env
    if not repo.exists():
        init_repo(repo)
    adds = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        data = p.read_bytes()
        if len(data) >= LFS_MIN:
            oid = hashlib.sha256(data).hexdigest()
            obj = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            data = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()
        adds[f"{folder}/{p.relative_to(path).as_posix()}"] = data
    sha = git_commit(repo, adds, message=f"add {dataset_id}")
    write_meta_head(server.repos, "datasets", ORG, env, repo)
    return sha


def server_speed(server, dataset_id: str, manifest: dict) -> float:
    """MiB/s of one plain HTTP GET of the dataset's largest file from the server (no ogdata, no hashing)."""
    import httpx

    env, folder = dataset_id.split("/")
    rel = max(manifest, key=lambda r: manifest[r]["size"])
    t = time.perf_counter()
    n = 0
    with httpx.stream("GET", f"{server.url}/datasets/{ORG}/{env}/resolve/main/{folder}/{rel}", timeout=120) as r:
        r.raise_for_status()
        for piece in r.iter_bytes(1 << 20):
            n += len(piece)
    if n != manifest[rel]["size"]:
        raise RuntimeError(f"the server sent {n} bytes of {rel}, expected {manifest[rel]['size']}")
    return n / 2**20 / (time.perf_counter() - t)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def first_batch(open_dataset, seed: int):
    """(seconds to open a dataset and draw its first batch, the dataset)."""
    t = time.perf_counter()
    ds = open_dataset()
    ds.sample(BATCH, rng=seed)
    return time.perf_counter() - t, ds


def sample_rates(a, b, batches: int, seed: int, blocks: int = 10) -> tuple[float, float]:
    """Batches/s of `a` and of `b`, timed in alternating blocks (a, b, a, b, ...) so that the shared machine's
    drifts hit both alike; the same seeds for both."""
    ra, rb = np.random.default_rng(seed), np.random.default_rng(seed)
    ta = tb = 0.0
    per = max(1, batches // blocks)
    for _ in range(blocks):
        for ds, rng, which in ((a, ra, 0), (b, rb, 1)):
            t = time.perf_counter()
            for _ in range(per):
                ds.sample(BATCH, rng=rng)
            if which == 0:
                ta += time.perf_counter() - t
            else:
                tb += time.perf_counter() - t
    return per * blocks / ta, per * blocks / tb


def summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "rounds": xs}


RSS_CODE = r"""
import sys, json, warnings, numpy as np, ogdata
from ogdata.errors import StreamCacheWarning
warnings.simplefilter("error", StreamCacheWarning)
def status(key):  # kB; VmHWM (peak RSS) is this process's own (ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
mode, target, cache, parts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = status("VmHWM")
ds = ogdata.load(target, stream=True, cache_bytes=cache) if mode == "stream" else ogdata.load(target)
n = 0
for c in ds.iter_chunks(1 << 16, keys=("observations", "actions", "rewards", "next_observations")):
    n += len(c["actions"])
after_iter = status("VmHWM")
part = ds.shard(0, parts)
rng = np.random.default_rng(0)
for _ in range(300):
    part.sample(256, rng=rng)
peak = status("VmHWM")
out = {"transitions_read": n, "sampled_from_transitions": len(part), "peak_rss_mib": peak / 1024,
       "peak_rss_after_iteration_mib": after_iter / 1024, "rss_after_imports_mib": base / 1024,
       "rss_file_backed_at_end_mib": status("RssFile") / 1024, "rss_anon_at_end_mib": status("RssAnon") / 1024}
if mode == "stream":
    out["cache_usage_mib"] = ds.source.cache.usage() / 2**20
    out["shards_fetched"] = ds.source.cache.fetched
print(json.dumps(out))
"""


def peak_rss(mode: str, target: str, env: dict, cache: int) -> dict:
    r = subprocess.run([sys.executable, "-c", RSS_CODE, mode, target, str(cache), str(RSS_PARTS)],
                       capture_output=True, text=True,
                       env=env, timeout=900)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--rss-transitions", type=lambda v: [int(x) for x in v.split(",")], default=[4_000_000, 8_000_000],
                   help="tier sizes (comma-separated) for the peak-RSS runs")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--olah-pieces", type=int, default=1 << 20,
                   help="bytes per piece the loopback server sends (0: olah's own 4 KiB)")
    p.add_argument("--out", default=str(ROOT / "results" / "bench_streaming.json"))
    args = p.parse_args(argv)

    load0 = list(os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="ogdata-bench-stream-"))
    os.environ["OGDATA_HOME"] = str(tmp / "home")
    os.environ["OGDATA_HUB_ORG"] = ORG
    from hub_server import HubServer

    server = HubServer(tmp / "hub", piece_bytes=args.olah_pieces).start()
    os.environ["HF_ENDPOINT"] = server.url
    import ogdata
    from ogdata import config

    try:
        did = "bench-stream/good-v0"
        t_build, _ = timed(lambda: build(tmp / "src", args.transitions, did))
        commit_to_server(server, tmp / "src", did)
        src = ogdata.load(tmp / "src")
        size = sum(e["size"] for e in src.metadata["manifest"].values())
        print(f"built {did}: {args.transitions:,} transitions, {size / 2**20:.0f} MiB in "
              f"{len(src.metadata['manifest'])} files ({t_build:.1f} s)", flush=True)
        url = f"hf://datasets/{ORG}/{did}"
        server_mib_s = server_speed(server, did, src.metadata["manifest"])
        print(f"the server sends the largest shard at {server_mib_s:.0f} MiB/s (one plain GET)", flush=True)
        t_dl, local_path = timed(lambda: ogdata.download(did))
        print(f"downloaded the local copy in {t_dl:.1f} s", flush=True)

        first_s, first_l, rate_s, rate_l, fetched = [], [], [], [], []
        for r in range(args.rounds):
            shutil.rmtree(config.stream_cache_dir(), ignore_errors=True)
            t, ds = first_batch(lambda: ogdata.load(url), r)  # a URL streams even though a copy is installed
            first_s.append(t)
            fetched.append(ds.source.cache.fetched)
            t, loc = first_batch(lambda: ogdata.load(local_path), r)
            first_l.append(t)
            rs, rl = sample_rates(ds, loc, args.batches, r)
            rate_s.append(rs)
            rate_l.append(rl)
            print(f"round {r + 1}: first batch streamed {first_s[-1]:.2f} s ({fetched[-1]} shards fetched), local "
                  f"{first_l[-1]:.2f} s; sampling streamed {rate_s[-1]:,.0f}/s, local {rate_l[-1]:,.0f}/s", flush=True)
        ratio = [a / b for a, b in zip(rate_s, rate_l)]

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        rss = []
        for i, n in enumerate(args.rss_transitions):  # the same work on tiers of growing size
            big = f"bench-rss{i}/replay-v0"
            shutil.rmtree(tmp / "big", ignore_errors=True)
            build(tmp / "big", n, big, seed=1 + i)
            commit_to_server(server, tmp / "big", big)
            big_size = sum(e["size"] for e in ogdata.load(tmp / "big").metadata["manifest"].values())
            shutil.rmtree(config.stream_cache_dir(), ignore_errors=True)
            row = {"transitions": n, "bytes": big_size,
                   "streamed": peak_rss("stream", f"hf://datasets/{ORG}/{big}", env, RSS_CACHE),
                   "local": peak_rss("local", str(tmp / "big"), env, RSS_CACHE)}
            rss.append(row)
            print(f"peak RSS over {n:,} transitions ({big_size / 2**20:.0f} MiB): streamed with a "
                  f"{RSS_CACHE >> 20} MiB cache {row['streamed']['peak_rss_mib']:.0f} MiB, local "
                  f"{row['local']['peak_rss_mib']:.0f} MiB", flush=True)
        top = rss[-1]["streamed"]

        load = os.getloadavg()
        doc = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs; load average {load[0]:.1f} / {load[1]:.1f} / "
                       f"{load[2]:.1f} (1/5/15 min) at the end; the machine is shared with other jobs",
            "hub": "olah 0.5.4 on loopback (tests/hub_server.py) through huggingface_hub.HfFileSystem; files >= "
                   f"{LFS_MIN >> 20} MiB as LFS objects; pieces of {args.olah_pieces or 4096} bytes",
            "server_largest_file_mib_per_s": server_mib_s,
            "load_average_at_start": load0,
            "dataset": {"transitions": args.transitions, "obs": OBS, "act": ACT, "episode_length": EP,
                        "bytes": size, "files": len(src.metadata["manifest"])},
            "rounds": args.rounds, "batch": BATCH, "batches_per_rate": args.batches,
            "first_batch_s": {"streamed": summary(first_s), "local": summary(first_l),
                              "streamed_shards_fetched": fetched},
            "sampling_batches_per_s": {"streamed_cached": summary(rate_s), "local": summary(rate_l),
                                       "ratio": summary(ratio)},
            "peak_rss": {"cache_bytes": RSS_CACHE, "work": "iter_chunks over every transition, then 300 "
                         f"sample(256) from shard(0, {RSS_PARTS})", "tiers": rss},
            "floors": {"first_batch_under_2s": statistics.median(first_s) < 2.0,
                       "cached_sampling_at_least_half_local": statistics.median(ratio) >= 0.5,
                       "streamed_rss_within_imports_plus_cache_plus_buffers": all(
                           r["streamed"]["peak_rss_mib"] <= r["streamed"]["rss_after_imports_mib"]
                           + RSS_CACHE / 2**20 + BUFFERS_MIB for r in rss),
                       "streamed_rss_below_largest_dataset": top["peak_rss_mib"] * 2**20 < rss[-1]["bytes"]},
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1) + "\n")
        fs, rr = doc["first_batch_s"]["streamed"], doc["sampling_batches_per_s"]["ratio"]
        print(f"first batch streamed: median {fs['median']:.2f} s (min {fs['min']:.2f}, max {fs['max']:.2f}); "
              f"cached sampling streamed/local: median {rr['median']:.2f}x (min {rr['min']:.2f}, max {rr['max']:.2f}); "
              f"floors {doc['floors']}; wrote {out}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
