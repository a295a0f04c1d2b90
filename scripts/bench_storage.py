"""Storage benchmark: ogdata vs raw np.save / np.load (vs Minari 0.5 when installed), same data.

Spec (issue 2): 1M transitions, obs dim 64, act dim 8, 1000-step episodes.
  write:  every array to disk + fsync (ogdata also validates, hashes every byte, renames atomically);
          a third side, np.save + fsync + sha256 of every byte, is the floor of what ogdata must do
  read:   every array back into memory (sequential, warm page cache: it cannot be dropped unprivileged)
  sample (RAM):  1000 batches of 256 transitions with next observations, both sides gathering from
                 arrays held in memory (Dataset.sample holds the dataset in RAM; the reference
                 gathers from np.load'ed arrays)
  sample (mmap): the same batches gathered from memory maps — ogdata.load(path, mmap=True) against
                 np.load(mmap_mode="r") — each side in its own child process, whose peak RSS
                 above its RSS before opening the data is reported (mapped pages count in RSS;
                 they are page cache the kernel can reclaim)
Every comparison is interleaved (A, B, A, B, …, the order flipped every round) over --rounds
rounds and reported as median with min–max, wall and CPU time (CPU = user + system of all
threads); ratios are per round, then the median. The load average is in the output: on a busy
machine absolute figures are indicative, the interleaved ratios are what to compare.
Minari (if installed): writes interleaved likewise; its public API samples whole episodes
(`sample_episodes`), so it is compared with ogdata reading the same number of whole episodes,
not with transition batches.

    python scripts/bench_storage.py [--rounds 5] [--transitions 1000000] [--out bench_out/storage.md]

Writes the Markdown table to --out and every round's figures to the .json beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N, OBS, ACT, EP = 1_000_000, 64, 8, 1000
KEYS = ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())


def _fsync(f: Path) -> None:
    fd = os.open(f, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(p: Path) -> None:
    """The reference's durability, as fast as it goes: every file and the directory fsynced
    concurrently (the filesystem commits them together), as ogdata's commit does."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(_fsync, sorted(Path(p).rglob("*")) + [Path(p)]))


def make_data(n: int, rng):
    e = n // EP
    obs = rng.standard_normal((n + e, OBS), dtype=np.float32)
    act = rng.uniform(-1, 1, (n, ACT)).astype(np.float32)
    rew = rng.standard_normal(n, dtype=np.float32)
    term = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    trunc[EP - 1::EP] = True
    return dict(observations=obs, actions=act, rewards=rew, terminations=term, truncations=trunc,
                episode_lengths=np.full(e, EP, np.int64))


# -- the sides ----------------------------------------------------------------------------------

def write_numpy(d, p: Path) -> None:
    p.mkdir()
    for k, v in d.items():
        np.save(p / f"{k}.npy", v)
    fsync_tree(p)


def write_numpy_sha256(d, p: Path) -> None:
    """np.save + fsync plus a sha256 of every array's bytes: the floor of ogdata's mandated work
    (ogdata also checks finiteness, writes metadata and renames atomically)."""
    import hashlib

    p.mkdir()
    for k, v in d.items():
        hashlib.sha256(memoryview(np.ascontiguousarray(v).reshape(-1).view(np.uint8))).hexdigest()
        np.save(p / f"{k}.npy", v)
    fsync_tree(p)


def write_ogdata(d, p: Path) -> None:
    import ogdata

    ogdata.create_dataset(p, **d)


def read_numpy(p: Path) -> int:
    return sum(np.load(p / f"{k}.npy").nbytes for k in KEYS)


def read_ogdata(p: Path) -> int:
    import ogdata

    return sum(a.nbytes for a in ogdata.load(p).arrays().values())


def numpy_sampler(p: Path, mmap: bool):
    """Gathers of `sample`'s batch from np.load'ed arrays (in RAM, or memory-mapped)."""
    arrs = {k: np.load(p / f"{k}.npy", mmap_mode="r" if mmap else None) for k in KEYS}
    n = len(arrs["actions"])
    if mmap:  # like ogdata's mmap mode: no per-transition index, the episode by binary search
        ends = np.cumsum(arrs["episode_lengths"])

        def episode(i):
            return np.searchsorted(ends, i, side="right")
    else:
        ep_of = np.repeat(np.arange(len(arrs["episode_lengths"]), dtype=np.int32), arrs["episode_lengths"])

        def episode(i):
            return ep_of[i]

    def sample(rng):
        i = rng.integers(0, n, 256)
        oi = i + episode(i)
        obs = arrs["observations"]
        return (obs[oi], arrs["actions"][i], arrs["rewards"][i], obs[oi + 1], arrs["terminations"][i],
                arrs["truncations"][i])

    return sample


def ogdata_sampler(p: Path, mmap: bool):
    import ogdata

    ds = ogdata.load(p, mmap=mmap)
    ds.sample(256, 0)   # maps the shards / reads the arrays once, outside the timing

    def sample(rng):
        return ds.sample(256, rng)

    return sample


def time_sampling(sample, batches: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    t, c = time.perf_counter(), cpu_s()
    for _ in range(batches):
        sample(rng)
    return time.perf_counter() - t, cpu_s() - c


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (VmRSS) or its peak (VmHWM), in KiB. Not ru_maxrss: Linux carries
    that over from the parent across fork+exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def sample_child(side: str, path: str, batches: int) -> None:
    """One mmap sampling run in a fresh process: prints wall, CPU and the peak RSS above the start."""
    import zarr  # noqa: F401 - ogdata reads the small compressed arrays through zarr

    import ogdata  # noqa: F401 - code, not data: imported before the baseline on both sides

    base = rss_kib()
    sample = (ogdata_sampler if side == "ogdata" else numpy_sampler)(Path(path), True)
    wall, cpu = time_sampling(sample, batches)
    peak = rss_kib("VmHWM")
    print("RESULT " + json.dumps({"wall": wall, "cpu": cpu, "peak_extra_mib": (peak - base) / 1024}))


def run_child(side: str, path: Path, batches: int) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", side, str(path), str(batches)],
                         capture_output=True, text=True, cwd=ROOT)
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if res.returncode or not line:
        raise RuntimeError(f"{side} sampling child failed: {res.stderr[-2000:]}")
    return json.loads(line[0][7:])


# -- Minari (optional) ----------------------------------------------------------------------------

def minari_available() -> str | None:
    try:
        import minari

        return minari.__version__
    except ImportError:
        return None


def minari_buffers(d):
    from minari.data_collector import EpisodeBuffer

    lengths = d["episode_lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return [EpisodeBuffer(id=k, observations=d["observations"][s0 + k:s0 + k + L + 1],
                          actions=d["actions"][s0:s0 + L], rewards=d["rewards"][s0:s0 + L],
                          terminations=d["terminations"][s0:s0 + L], truncations=d["truncations"][s0:s0 + L],
                          infos={}) for k, (s0, L) in enumerate(zip(starts, lengths))]


def write_minari(d, p: Path) -> None:
    import warnings

    import gymnasium as gym
    import minari

    warnings.filterwarnings("ignore", module="minari")
    os.environ["MINARI_DATASETS_PATH"] = str(p)
    osp = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    asp = gym.spaces.Box(-1, 1, (ACT,), np.float32)
    minari.create_dataset_from_buffers("bench/storage-v0", minari_buffers(d), observation_space=osp,
                                       action_space=asp, algorithm_name="none", data_format="hdf5")
    fsync_tree(p)


# -- the run ----------------------------------------------------------------------------------------

def interleave(rounds: int, sides: dict, run) -> dict[str, list]:
    """{side: [result per round]}, the sides' order flipped every round."""
    out: dict[str, list] = {k: [] for k in sides}
    names = list(sides)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            gc.collect()
            out[name].append(run(name, sides[name], r))
    return out


def stats(xs) -> dict:
    xs = [float(x) for x in xs]
    return {"median": float(np.median(xs)), "min": min(xs), "max": max(xs), "rounds": xs}


def fmt(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    return f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transitions", type=int, default=N)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "storage.md"))
    ap.add_argument("--skip-minari", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("SIDE", "PATH", "BATCHES"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        sample_child(a.child[0], a.child[1], int(a.child[2]))
        return 0
    n, B = a.transitions, a.batches
    d = make_data(n, np.random.default_rng(0))
    root = Path(tempfile.mkdtemp(prefix="ogdata-bench-", dir=a.dir))
    loads = [os.getloadavg()[0]]
    res: dict = {"transitions": n, "obs": OBS, "act": ACT, "episode": EP, "batches": B, "rounds": a.rounds,
                 "cores": os.cpu_count(), "numpy": np.__version__}
    mver = None if a.skip_minari else minari_available()
    try:
        # writes: a fresh directory per round, removed right after
        writers = {"numpy": write_numpy, "ogdata": write_ogdata, "numpy+sha256": write_numpy_sha256}
        if mver:
            writers["minari"] = write_minari

        small = make_data(10 * EP, np.random.default_rng(1))
        for name, fn in writers.items():   # imports and first-call set-up outside the timings
            fn(small, root / f"warm-{name}")
            shutil.rmtree(root / f"warm-{name}")

        def do_write(name, fn, r):
            p = root / f"w-{name}-{r}"
            t, c = time.perf_counter(), cpu_s()
            fn(d, p)
            out = (time.perf_counter() - t, cpu_s() - c, dir_size(p))
            shutil.rmtree(p)
            return out

        w = interleave(a.rounds, writers, do_write)
        loads.append(os.getloadavg()[0])
        res["write"] = {k: {"wall_s": stats(x[0] for x in v), "cpu_s": stats(x[1] for x in v),
                            "bytes": v[0][2]} for k, v in w.items()}
        res["write"]["ogdata_over_numpy_throughput"] = stats(
            nw[0] / ow[0] for nw, ow in zip(w["numpy"], w["ogdata"]))
        res["write"]["ogdata_over_numpy_cpu"] = stats(ow[1] / nw[1] for nw, ow in zip(w["numpy"], w["ogdata"]))
        res["write"]["ogdata_over_numpy_sha256_throughput"] = stats(
            nw[0] / ow[0] for nw, ow in zip(w["numpy+sha256"], w["ogdata"]))
        if mver:
            res["write"]["ogdata_over_minari_throughput"] = stats(
                mw[0] / ow[0] for mw, ow in zip(w["minari"], w["ogdata"]))
        # the copies read and sampled from
        write_numpy(d, root / "np")
        write_ogdata(d, root / "og")
        paths = {"numpy": root / "np", "ogdata": root / "og"}
        readers = {"numpy": read_numpy, "ogdata": read_ogdata}

        def do_read(name, fn, r):
            t, c = time.perf_counter(), cpu_s()
            nbytes = fn(paths[name])
            return time.perf_counter() - t, cpu_s() - c, nbytes

        rd = interleave(a.rounds, readers, do_read)
        loads.append(os.getloadavg()[0])
        res["read"] = {k: {"wall_s": stats(x[0] for x in v), "cpu_s": stats(x[1] for x in v),
                           "gb_per_s": stats(x[2] / x[0] / 1e9 for x in v)} for k, v in rd.items()}
        res["read"]["numpy_over_ogdata_speed"] = stats(o[0] / nr[0] for nr, o in zip(rd["numpy"], rd["ogdata"]))
        # sampling from memory: both sides gather from arrays in RAM
        ram = {"numpy": numpy_sampler(paths["numpy"], False), "ogdata": ogdata_sampler(paths["ogdata"], False)}
        s = interleave(a.rounds, ram, lambda name, fn, r: time_sampling(fn, B))
        del ram
        gc.collect()
        loads.append(os.getloadavg()[0])
        res["sample_ram"] = {k: {"wall_s": stats(x[0] for x in v), "cpu_s": stats(x[1] for x in v),
                                 "transitions_per_s": stats(B * 256 / x[0] for x in v)} for k, v in s.items()}
        res["sample_ram"]["ogdata_over_numpy_speed"] = stats(
            nr[0] / o[0] for nr, o in zip(s["numpy"], s["ogdata"]))
        # sampling from memory maps, each run in its own process (peak RSS per side)
        m = interleave(a.rounds, {"numpy": None, "ogdata": None},
                       lambda name, _, r: run_child(name, paths[name], B))
        loads.append(os.getloadavg()[0])
        res["sample_mmap"] = {k: {"wall_s": stats(x["wall"] for x in v), "cpu_s": stats(x["cpu"] for x in v),
                                  "transitions_per_s": stats(B * 256 / x["wall"] for x in v),
                                  "peak_extra_rss_mib": stats(x["peak_extra_mib"] for x in v)}
                              for k, v in m.items()}
        res["sample_mmap"]["ogdata_over_numpy_speed"] = stats(
            nr["wall"] / o["wall"] for nr, o in zip(m["numpy"], m["ogdata"]))
        if mver:   # whole episodes on both sides: Minari's sample_episodes against ogdata's episode()
            import minari

            os.environ["MINARI_DATASETS_PATH"] = str(root / "minari")
            write_minari(d, root / "minari")
            mds = minari.load_dataset("bench/storage-v0")
            mds.set_seed(0)
            import ogdata

            ods = ogdata.load(paths["ogdata"])
            k = 256

            def eps_minari(_):
                return mds.sample_episodes(k)

            def eps_ogdata(rng):
                return [ods.episode(int(i)) for i in rng.choice(ods.num_episodes, k, replace=False)]

            e = interleave(a.rounds, {"minari": eps_minari, "ogdata": eps_ogdata},
                           lambda name, fn, r: time_sampling(fn, 1))
            res["episodes"] = {kk: {"wall_s": stats(x[0] for x in v)} for kk, v in e.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["load_average"] = {"during": loads, "max": max(loads)}
    res["minari"] = mver or "not installed (pip install 'ogdata[bench]')"

    W, R, S, M = res["write"], res["read"], res["sample_ram"], res["sample_mmap"]
    lines = [
        f"Storage benchmark: {n:,} transitions, obs {OBS}, act {ACT}, {EP}-step episodes; {a.rounds} interleaved "
        f"rounds, median (min–max); {os.cpu_count()} cores, load average {min(loads):.1f}–{max(loads):.1f} "
        "while running. Absolute figures are indicative on a busy machine; compare the per-round ratios.", "",
        "| | numpy | ogdata | ratio (median of rounds) |", "|---|---|---|---|",
        f"| write + fsync, wall (s) | {fmt(W['numpy']['wall_s'], 1, 3)} | {fmt(W['ogdata']['wall_s'], 1, 3)} | "
        f"ogdata throughput = {fmt(W['ogdata_over_numpy_throughput'])}× numpy's (target ≥ 0.67×) |",
        f"| write + fsync, CPU (s) | {fmt(W['numpy']['cpu_s'], 1, 3)} | {fmt(W['ogdata']['cpu_s'], 1, 3)} | "
        f"ogdata uses {fmt(W['ogdata_over_numpy_cpu'])}× numpy's CPU |",
        f"| write + fsync + sha256 of every byte, wall (s) | {fmt(W['numpy+sha256']['wall_s'], 1, 3)} "
        f"(CPU {fmt(W['numpy+sha256']['cpu_s'], 1, 3)}) | | ogdata throughput = "
        f"{fmt(W['ogdata_over_numpy_sha256_throughput'])}× this floor's |",
        f"| on disk (MB) | {W['numpy']['bytes'] / 1e6:.0f} | {W['ogdata']['bytes'] / 1e6:.0f} | |",
        f"| full read, warm cache (GB/s) | {fmt(R['numpy']['gb_per_s'])} | {fmt(R['ogdata']['gb_per_s'])} | "
        f"numpy {fmt(R['numpy_over_ogdata_speed'])}× faster (target ≤ 3×) |",
        f"| sampling from RAM (M transitions/s) | {fmt(S['numpy']['transitions_per_s'], 1e-6)} | "
        f"{fmt(S['ogdata']['transitions_per_s'], 1e-6)} | ogdata {fmt(S['ogdata_over_numpy_speed'])}× numpy's |",
        f"| sampling from memory maps (M transitions/s) | {fmt(M['numpy']['transitions_per_s'], 1e-6)} | "
        f"{fmt(M['ogdata']['transitions_per_s'], 1e-6)} | ogdata {fmt(M['ogdata_over_numpy_speed'])}× numpy's |",
        f"| memory maps: peak RSS above start (MiB) | {fmt(M['numpy']['peak_extra_rss_mib'], 1, 0)} | "
        f"{fmt(M['ogdata']['peak_extra_rss_mib'], 1, 0)} | (dataset {W['ogdata']['bytes'] / 2**20:.0f} MiB) |",
    ]
    if mver:
        lines.append(f"| Minari {mver}: write + fsync wall (s) | | | {fmt(W['minari']['wall_s'], 1, 3)}; ogdata "
                     f"{fmt(W['ogdata_over_minari_throughput'])}× its throughput |")
        lines.append(f"| 256 whole episodes (s): Minari sample_episodes / ogdata episode() | | | "
                     f"{fmt(res['episodes']['minari']['wall_s'], 1, 3)} / {fmt(res['episodes']['ogdata']['wall_s'], 1, 3)} |")
    else:
        lines.append(f"| Minari | | | {res['minari']} |")
    text = "\n".join(lines)
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
