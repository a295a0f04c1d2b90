"""Reproduce the baseline tables: every applicable algorithm on every catalogue dataset, several seeds.

    python scripts/reproduce.py --suite lite            # CPU, ~3 h on 2 cores (settings in SUITES)
    python scripts/reproduce.py --suite full --device cuda --jobs 4
    python scripts/reproduce.py --suite lite --plan     # list the runs and the time estimate, run nothing
    python scripts/reproduce.py --suite v1-lite         # evaluation protocol v1 on the v1 catalogue
    python scripts/reproduce.py --suite v1-lite --aggregate-only   # rebuild the v1 tables from the run records
    python scripts/reproduce.py --suite full --ray auto --device cuda --gpus-per-run 0.25   # on a Ray cluster

Protocol v1 (suites v1-*, datasets `<env>/<tier>-v1`, issue #15): every run is evaluated on its
env's fixed validation markets during training (the learning curve) and, at the end, its final
checkpoint on the fixed test markets (ogdata/envs/markets-v1.json) — the headline — plus the
checkpoint chosen on validation, labelled. Each run's result.json records its settings, the
versions, every test episode's return and the curve, so `--aggregate-only` rebuilds
results/<suite>.json/.md and the plots (baselines/report.py) from the records alone, even where
the datasets are not installed. `--dataset-path` runs the suite on local datasets (ad-hoc tests).
The v0 suites (lite, full) are unchanged and take only v0 datasets.

Each run is `python -m baselines train` in-process (baselines.train.train) writing
runs/<suite>/<dataset>/<algo>/seed<k>/result.json; a run whose result.json exists is
skipped, so an interrupted suite resumes where it stopped. When the runs are done (or with
--aggregate-only, on whatever has finished) the script writes
  results/<suite>.json   per dataset and algorithm: last and best normalised score, mean ± std over seeds
  results/<suite>.md     the tables for the README, settings stated in the header
  results/<suite>.png    a heatmap of the last scores
  results/<suite>_measures.png   BC vs TQ and offline RL's gain vs SACo (baselines/analysis.py)
and records each dataset's results in its metadata (`baselines` field → the dataset card).

`--ray ADDRESS` (`auto`, `ray://head:10001`, or `local` for a Ray instance on this machine) runs
the same runs as Ray tasks, one CPU (`--threads`) or `--gpus-per-run` of a GPU each. A task trains
in the worker's scratch directory and hands back the run's files; the driver writes them under
the same runs/ path (result.json last), so records, resuming and aggregation are the same as
for local runs and no shared file system is needed. Workers import ogdata and baselines from
this checkout's path (PYTHONPATH), so every node needs the repository there (or ogdata installed),
and resolve dataset ids themselves (installed copy, Hub, or a rebuild from the recipe).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baselines import analysis, report  # noqa: E402
from baselines.registry import ALGORITHMS, applicable_to, env_kind  # noqa: E402
from baselines.train import RESULT, RunSettings, parse_overrides  # noqa: E402

# The lite suite: every applicable algorithm on all five tiers of the 13 catalogue envs x 3 seeds = 735 runs of
# 5k updates of a 2x64 MLP at batch 256, 10 held-out episodes at each of 5 evaluations, 2 jobs of 1 torch thread.
# Measured on this project's 2-core machine: 2.8 h (Good+Medium 71 min, Replay 34, Random 32, Poor 33); CQL on
# the 221-feature portfolio envs is over a third of it. The full suite is the same grid at D4RL-paper settings.
SUITES: dict[str, dict] = {
    "lite": dict(steps=5_000, hidden=64, layers=2, batch_size=256, seeds=3, eval_episodes=10, evals=5,
                 tiers=("good", "medium", "poor", "replay", "random"), jobs=2, threads=1, device="cpu"),
    "full": dict(steps=100_000, hidden=256, layers=2, batch_size=256, seeds=5, eval_episodes=50, evals=10,
                 tiers=("good", "medium", "poor", "replay", "random"), jobs=4, threads=None, device="cuda"),
    # protocol v1: fixed validation markets for the curve (evals points), fixed test markets for the final checkpoint
    "v1-lite": dict(steps=5_000, hidden=64, layers=2, batch_size=256, seeds=5, eval_episodes=0, evals=10,
                    tiers=("good", "medium", "poor", "replay", "random"), jobs=2, threads=1, device="cpu",
                    protocol="v1", version=1, target_sync=100),
    "v1-full": dict(steps=100_000, hidden=256, layers=2, batch_size=256, seeds=5, eval_episodes=0, evals=20,
                    tiers=("good", "medium", "poor", "replay", "random"), jobs=4, threads=None, device="cuda",
                    protocol="v1", version=1),
}
for _cfg in SUITES.values():
    _cfg.setdefault("protocol", "v0")
    _cfg.setdefault("version", 0)
# target_sync: d3rlpy's discrete Q-learners (DiscreteCQL, DiscreteBCQ) copy their online network to the target
# every `target_update_interval` updates (d3rlpy: 8,000; baselines/single.py: 1,000). In a 5,000-update lite
# run that is 5 copies, and a value moves back about one step of the episode per copy: too few for a 50-step
# stopping problem (option-exercise-bermudan/random-v1, CQL, 5 seeds: 8.7 with 1,000 in
# results/ablations/v1-lite-sync1000, 81.5 with 100 in results/v1-lite). A suite that sets it passes it to those
# two algorithms as an override, recorded in every run's settings.
TARGET_SYNC_ALGOS = ("cql", "bcq")
# Effective updates/s of one lite run (2x64, batch 256, 1 torch thread, 2 jobs on 2 cores; evaluations included):
# total updates / total training time of the committed lite runs, for small observations (execution, market making,
# trading, multi-agent: <= 32 features) and the portfolio's 221 features x 21 weights. icql has no catalogue env
# (no discrete multi-agent actions) and is estimated. Used only for the --plan estimate.
LITE_RATES = {"bc": (916, 704), "cql": (104, 30), "iql": (206, 182), "td3bc": (301, 252), "bcq": (451, 451),
              "mabc": (1086, 1086), "icql": (540, 540), "itd3bc": (338, 338), "matd3bc": (336, 336),
              "iiql": (296, 296)}
# Ours (issue #23), not yet from committed lite runs: 200-update timings beside d3rlpy's TD3+BC on execution-ac
# (7 features) on the loaded 2-core machine (MOPO 0.56x, ARSQ 1.6x TD3+BC's rate) times TD3+BC's rates above;
# LMOPO taken as MOPO. The portfolio figure of ARSQ is a guess (levels x dims sequential decisions when acting).
LITE_RATES.update({"mopo": (170, 140), "lmopo": (170, 140), "arsq": (480, 150)})
RUN_OVERHEAD_S = 1.0  # loading the dataset and building the learner: measured 0.1-1.3 s


def dataset_ids(pattern: str | None, tiers, version: int | None = None) -> list[str]:
    """Catalogue ids of the given tiers (and dataset version) matching the glob, or any of comma-separated
    globs, in the globs' order (so a suite can be run in the order that matters most; catalogue order within)."""
    import ogdata
    from ogdata.ids import parse_id

    ids = [did for did in ogdata.list_datasets()
           if parse_id(did).tier in tiers and (version is None or parse_id(did).version == version)]
    if pattern is None:
        return ids
    return list(dict.fromkeys(did for glob in pattern.split(",") for did in ids if fnmatch.fnmatch(did, glob)))


def env_of(did: str) -> str:
    """The env id of a dataset id, or of a local dataset path (from its metadata)."""
    from ogdata.errors import InvalidIdError
    from ogdata.ids import parse_id

    try:
        return parse_id(did).env_id
    except InvalidIdError:
        import ogdata

        env = ogdata.load(did).env_id
        if not env:
            raise ValueError(f"dataset {did} names no env: the suite needs one to evaluate in") from None
        return env


def plan(ids, algos_filter, seeds) -> list[tuple[str, str, int]]:
    """(dataset, algo, seed) of every run, in a stable order."""
    runs = []
    for did in ids:
        env = env_of(did)
        for algo in applicable_to(*_kind(env)[:2]):
            if (algos_filter and algo not in algos_filter) or (not algos_filter and not ALGORITHMS[algo].in_suites):
                continue  # the risk-sensitive learners (in_suites False) run only when named
            runs += [(did, algo, s) for s in range(seeds)]
    return runs


_KINDS: dict[str, tuple[bool, str, int]] = {}


def _kind(env: str) -> tuple[bool, str, int]:
    """(multi_agent, action kind, observation size) of an env, cached."""
    if env not in _KINDS:
        from ogdata.envs import make_core

        _KINDS[env] = (*env_kind(env), int(np.prod(make_core(env).observation_space.shape)))
    return _KINDS[env]


def _rate_class(env: str) -> tuple[str, bool]:
    """(action kind, large observation: > 32 features): what sets a learner's update rate besides itself."""
    _, kind, obs = _kind(env)
    return kind, obs > 32


def measured_rates(runs_root: Path) -> dict[tuple, float]:
    """Effective updates/s of the finished runs under `runs_root`, per (algorithm, env id) and per (algorithm,
    action kind, large observation): what this machine and these settings really gave (per env first: within a
    class the rate still varies, e.g. ARSQ acts one decision per action dimension and level, so 21 portfolio
    weights cost 4x the 5 factor weights of portfolio-ff). A record's `wall_time_s` covers loading,
    building, the updates and every evaluation; records written before it existed give only the build and
    the updates (their evaluations are not timed), so from those the estimate runs short."""
    totals: dict[tuple[str, str, bool], list[float]] = {}
    for f in runs_root.glob(f"*/*/seed*/{RESULT}"):
        r = json.loads(f.read_text())
        t = r.get("wall_time_s") or (r.get("train_time_s") or 0.0) + (r.get("build_time_s") or 0.0)
        if t > 0 and r.get("env_id"):
            for key in ((r["algo"], r["env_id"]), (r["algo"], *_rate_class(r["env_id"]))):
                acc = totals.setdefault(key, [0.0, 0.0])
                acc[0] += r["steps"]
                acc[1] += t
    return {k: n / t for k, (n, t) in totals.items()}


def estimate_s(did: str, algo: str, steps: int, rates: dict[tuple, float] | None = None) -> float:
    """Seconds one run takes (one job): at the rate `measured_rates` found for its algorithm on its env, else for
    its action kind and observation class; else LITE_RATES, scaled by what it measured on the other observation
    class where it did.
    A learner in neither (e.g. qriql before its first lite run) is estimated at the slowest listed rates."""
    small, large = LITE_RATES.get(algo, (min(v[0] for v in LITE_RATES.values()),
                                         min(v[1] for v in LITE_RATES.values())))
    env = env_of(did)
    kind, big = _rate_class(env)
    rates = rates or {}
    rate = rates.get((algo, env)) or rates.get((algo, kind, big))
    if rate is None:
        other = rates.get((algo, kind, not big))
        rate = (large if big else small) * (other / (small if big else large) if other else 1.0)
    return steps / rate + RUN_OVERHEAD_S


def run_dir(runs_root: Path, did: str, algo: str, seed: int) -> Path:
    key = did.replace("/", "__") if not Path(did).is_absolute() else "path__" + Path(did).name
    return runs_root / key / algo / f"seed{seed}"


def run_overrides(cfg: dict, did: str, algo: str) -> dict:
    """The config overrides of one run: the suite's `--set` fields, plus its target_sync for a discrete Q-learner."""
    out = dict(cfg.get("overrides") or {})
    if cfg.get("target_sync") and algo in TARGET_SYNC_ALGOS and _kind(env_of(did))[1] == "discrete":
        out.setdefault("target_update_interval", int(cfg["target_sync"]))
    return out


def run_one(settings: dict) -> dict:
    """One run in a worker process; errors are returned, not raised, so the suite carries on.

    The run holds a lock beside its directory while it trains, so suite invocations that share a runs
    directory (two jobs on overlapping globs) never train the same run twice: a run another process holds,
    or one that finished since this invocation planned it, is skipped."""
    from filelock import FileLock, Timeout

    t0 = time.perf_counter()
    out = Path(settings["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out.parent / f".{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return {"ok": True, "skipped": "held by another process", "settings": settings, "wall": 0.0}
    try:
        if (out / RESULT).is_file():
            return {"ok": True, "skipped": "finished elsewhere", "settings": settings, "wall": 0.0}
        return _train_one(settings, t0)
    finally:
        lock.release()


def _train_one(settings: dict, t0: float) -> dict:
    from baselines.train import train

    try:
        res = train(RunSettings(**settings))
        return {"ok": True, "settings": settings, "wall": time.perf_counter() - t0, "result": res}
    except Exception as e:  # noqa: BLE001 - report and continue
        Path(settings["out"]).mkdir(parents=True, exist_ok=True)
        (Path(settings["out"]) / "error.txt").write_text(f"{type(e).__name__}: {e}\n")
        return {"ok": False, "settings": settings, "wall": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}


def run_remote(settings: dict) -> dict:
    """One run as a Ray task: trained in a scratch directory, its files returned for the driver to write."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ogdata-run-") as tmp:
        o = run_one({**settings, "out": tmp})
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    if "config.json" in files:  # the record names the run directory the driver writes, not the scratch one
        cfg = json.loads(files["config.json"])
        cfg["settings"]["out"] = settings["out"]
        files["config.json"] = json.dumps(cfg, indent=1, sort_keys=True).encode()
    o.pop("result", None)  # result.json travels as a file
    return {**o, "settings": settings, "files": files}


def write_run_files(out: Path, files: dict[str, bytes]) -> None:
    """A run's files under `out`, each renamed into place, result.json last (it marks a finished run)."""
    for rel in sorted(files, key=lambda r: r == RESULT):
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        tmp.write_bytes(files[rel])
        tmp.replace(dest)


FORWARDED_ENV = ("OGDATA_HOME", "OGDATA_HUB_ORG", "OGDATA_STREAM_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE")


def run_ray(jobs: list[dict], address: str, cpus: int, gpus: float):
    """Each job as a Ray task (`cpus` CPUs, `gpus` of a GPU); yields run_one's records as runs finish,
    after writing each run's files under its runs/ directory."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}  # never HF_TOKEN: workers log in themselves
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=1, runtime_env={"env_vars": env})(run_remote)
    try:
        pending = {task.remote(j): j for j in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                o = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a lost worker or node: report the run, carry on
                o = {"ok": False, "settings": job, "wall": 0.0, "error": f"Ray task failed: {type(e).__name__}: {e}"}
            write_run_files(Path(job["out"]), o.pop("files", {}))
            if not o["ok"] and not (Path(job["out"]) / "error.txt").is_file():
                (Path(job["out"]) / "error.txt").write_text(o["error"] + "\n")
            yield o
    finally:
        if started:
            ray.shutdown()


# -- aggregation --------------------------------------------------------------------------------------
FIN_KEYS = ("annualised_return", "sharpe", "max_drawdown", "turnover", "implementation_shortfall_bp",
            "mean_final_pnl", "mean_abs_inventory")


def aggregate(runs, runs_root: Path) -> dict:
    from ogdata.ids import parse_id

    table: dict[str, dict] = {}
    for did, algo, seed in runs:
        f = run_dir(runs_root, did, algo, seed) / RESULT
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        if "last" not in r:
            continue
        d = table.setdefault(did, {"env_id": r["env_id"], "tier": parse_id(did).tier,
                                   "multi_agent": ALGORITHMS[algo].multi_agent, "algos": {}})
        a = d["algos"].setdefault(algo, {"seeds": [], "last": [], "best": [], "return": [], "ups": [],
                                         "finance": {}})
        a["seeds"].append(seed)
        a["last"].append(r["last"]["normalised_score"])
        a["best"].append(r["best"]["normalised_score"])
        a["return"].append(r["last"]["return_mean"])
        a["ups"].append(r.get("updates_per_s") or np.nan)
        for k in FIN_KEYS:
            v = r["last"].get("finance", {}).get(k)
            if v is not None:
                a["finance"].setdefault(k, []).append(v)
    for d in table.values():
        for algo, a in d["algos"].items():
            d["algos"][algo] = {
                "seeds": a["seeds"], "n_seeds": len(a["seeds"]),
                "last_mean": float(np.mean(a["last"])), "last_std": float(np.std(a["last"])),
                "best_mean": float(np.mean(a["best"])), "best_std": float(np.std(a["best"])),
                "last_scores": a["last"], "best_scores": a["best"],
                "return_mean": float(np.mean(a["return"])), "updates_per_s": float(np.nanmean(a["ups"])),
                "finance": {k: float(np.nanmean(v)) for k, v in a["finance"].items()},
            }
    return table


def settings_line(suite: str, cfg: dict) -> str:
    if cfg.get("protocol") == "v1":
        return (f"{suite} suite: {cfg['steps']:,} updates per run, MLP {cfg['layers']}×{cfg['hidden']}, batch "
                f"{cfg['batch_size']}, {cfg['seeds']} seeds, tiers {'/'.join(cfg['tiers'])}, {cfg['evals']} "
                f"evaluations on the validation markets, the final checkpoint on the test markets, device "
                f"{cfg['device']}" + (f", discrete CQL/BCQ target network copied every {cfg['target_sync']} updates"
                                      if cfg.get("target_sync") else "")
                + "".join(f", {k} = {v}" for k, v in (cfg.get("overrides") or {}).items()))
    return (f"{suite} suite: {cfg['steps']:,} updates per run, MLP {cfg['layers']}×{cfg['hidden']}, batch "
            f"{cfg['batch_size']}, {cfg['seeds']} seeds, tiers {'/'.join(cfg['tiers'])}, {cfg['eval_episodes']} "
            f"held-out episodes × {cfg['evals']} evaluations, device {cfg['device']}")


def _rows(table: dict, multi_agent: bool) -> dict:
    """The table's datasets of one kind, by env and then in tier order (Good, Medium, Poor, Replay, Random)."""
    from ogdata.ids import TIERS

    keys = sorted((k for k, v in table.items() if v["multi_agent"] == multi_agent),
                  key=lambda k: (table[k]["env_id"], TIERS.index(table[k]["tier"])))
    return {k: table[k] for k in keys}


def markdown(suite: str, cfg: dict, table: dict, meta: dict) -> str:
    lines = [f"## Baselines — {suite} suite", "",
             "Normalised score on the held-out setting (100 = expert reference, 0 = random): **last** evaluation, "
             "mean ± std over seeds, with the **best** evaluation's mean in brackets (CORL's convention).",
             "", f"Settings: {settings_line(suite, cfg)}. {meta}", ""]
    for ma in (False, True):
        rows = _rows(table, ma)
        if not rows:
            continue
        algos = [a for a in ALGORITHMS if ALGORITHMS[a].multi_agent == ma
                 and any(a in v["algos"] for v in rows.values())]
        lines += [f"### {'Multi' if ma else 'Single'}-agent", "",
                  "| dataset | " + " | ".join(algos) + " |", "| --- |" + " ---: |" * len(algos)]
        for did, v in rows.items():
            cells = []
            for a in algos:
                s = v["algos"].get(a)
                cells.append("—" if s is None else f"{s['last_mean']:.1f} ± {s['last_std']:.1f} ({s['best_mean']:.1f})")
            lines.append(f"| {did} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(path: Path, suite: str, table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(ma, _rows(table, ma)) for ma in (False, True)]
    groups = [(ma, rows) for ma, rows in groups if rows]
    if not groups:
        return
    heights = [max(2.0, 0.35 * len(rows) + 1.2) for _, rows in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (ma, rows) in zip(axes[:, 0], groups):
        algos = [a for a in ALGORITHMS if ALGORITHMS[a].multi_agent == ma
                 and any(a in v["algos"] for v in rows.values())]
        M = np.full((len(rows), len(algos)), np.nan)
        for i, v in enumerate(rows.values()):
            for j, a in enumerate(algos):
                if a in v["algos"]:
                    M[i, j] = v["algos"][a]["last_mean"]
        im = ax.imshow(np.clip(M, -20, 120), cmap="RdYlGn", vmin=-20, vmax=120, aspect="auto")
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                if np.isfinite(M[i, j]):
                    ax.text(j, i, f"{M[i, j]:.0f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(algos)), algos)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
        ax.set_title(f"ogdata baselines, {suite} suite — {'multi' if ma else 'single'}-agent: last normalised "
                     "score (mean over seeds)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.025)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def dataset_measures(table: dict) -> dict[str, dict]:
    """TQ / SACo / coarse SACo of every dataset in the table that is installed locally."""
    import ogdata

    out = {}
    for did in table:
        try:
            m = ogdata.load(did, download=False).measures
        except Exception:  # noqa: BLE001 - not installed locally: no measures to relate
            continue
        out[did] = {k: m.get(k) for k in analysis.MEASURES}
    return out


def _card_settings(cfg: dict) -> dict:
    return {k: (list(x) if isinstance(x, tuple) else x) for k, x in cfg.items() if k not in ("jobs", "threads")}


def update_cards(suite: str, cfg: dict, table: dict) -> int:
    """Write each dataset's v0 results into its metadata (`baselines.<suite>`), which its card renders."""
    return _write_results(suite, {did: {"settings": _card_settings(cfg),
                                        "algos": {a: {k: s[k] for k in ("last_mean", "last_std", "best_mean",
                                                                         "best_std", "n_seeds", "return_mean")}
                                                  for a, s in v["algos"].items()}}
                                  for did, v in table.items()})


def update_cards_v1(suite: str, cfg: dict, doc: dict) -> int:
    """Write each dataset's protocol-v1 results (`baselines.report.card_entries`: the final checkpoint on the
    test markets, mean and 95 % bootstrap interval over seeds; the validation-chosen checkpoint's mean) into
    its metadata (`baselines.<suite>`)."""
    return _write_results(suite, report.card_entries(doc))


def _write_results(suite: str, entries: dict[str, dict]) -> int:
    import ogdata
    from ogdata.storage import update_metadata

    n = 0
    for did, entry in entries.items():
        try:
            ds = ogdata.load(did, download=False)
        except Exception:  # noqa: BLE001 - not installed locally: nothing to update
            continue
        update_metadata(ds.path, baselines={**(ds.metadata.get("baselines") or {}), suite: entry})
        n += 1
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=sorted(SUITES), required=True)
    p.add_argument("--datasets", default=None, help="glob over dataset ids, e.g. 'portfolio-*/medium-v0', or "
                                                    "comma-separated globs, run in that order")
    p.add_argument("--algos", default=None, help="comma-separated subset of algorithms")
    p.add_argument("--tiers", default=None, help="comma-separated tiers (default: the suite's)")
    for k in ("steps", "hidden", "layers", "batch_size", "seeds", "eval_episodes", "evals", "jobs", "threads"):
        p.add_argument(f"--{k.replace('_', '-')}", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an algorithm config field for every run (an ablation: give it its own --runs-dir and "
                        "--results-dir), e.g. --set gamma=1.0")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run as Ray tasks on the cluster at ADDRESS ('auto', 'ray://host:10001', 'local')")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="with --ray: the GPU fraction each run asks for (default 1 with --device cuda, else 0)")
    p.add_argument("--runs-dir", default=None, help="default runs/<suite>")
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--plan", action="store_true", help="list the runs and estimate the time; run nothing")
    p.add_argument("--aggregate-only", action="store_true", help="write tables from finished runs; run nothing")
    p.add_argument("--no-cards", action="store_true", help="do not write results into the datasets' metadata")
    p.add_argument("--dataset-path", action="append", default=[],
                   help="a local dataset directory to run on instead of catalogue ids (repeatable)")
    args = p.parse_args(argv)
    if args.gpus_per_run is not None and not 0 <= args.gpus_per_run <= 64:
        p.error(f"--gpus-per-run {args.gpus_per_run} is not a GPU count or fraction; pass e.g. 0.25 or 1")

    cfg = dict(SUITES[args.suite])
    for k in ("steps", "hidden", "layers", "batch_size", "seeds", "eval_episodes", "evals", "jobs", "threads",
              "device"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.tiers:
        cfg["tiers"] = tuple(args.tiers.split(","))
    if args.set:
        cfg["overrides"] = parse_overrides(args.set)
        if "target_update_interval" in cfg["overrides"]:  # only the discrete Q-learners have it: the suite's sync
            cfg["target_sync"] = int(cfg["overrides"].pop("target_update_interval"))
    algos = set(args.algos.split(",")) if args.algos else None
    runs_root = Path(args.runs_dir or ROOT / "runs" / args.suite)
    ids = ([str(Path(x).resolve()) for x in args.dataset_path] if args.dataset_path
           else dataset_ids(args.datasets, cfg["tiers"], cfg["version"]))
    if not ids and cfg["protocol"] == "v1" and args.aggregate_only:  # the tables from the run records alone
        return write_v1(args, cfg, runs_root, planned=None, wall=0.0, failures=[])
    if not ids:
        print(f"no catalogue datasets match tiers {cfg['tiers']} and {args.datasets or 'any id'}; "
              "generate the catalogue first (scripts/generate_catalogue.py) or check `ogdata list`", file=sys.stderr)
        return 1
    runs = plan(ids, algos, cfg["seeds"])
    todo = [r for r in runs if not (run_dir(runs_root, *r) / RESULT).is_file()]
    rates = measured_rates(runs_root) if todo else {}
    est = sum(estimate_s(d, a, cfg["steps"], rates) for d, a, _ in todo) / max(1, cfg["jobs"])
    print(f"{len(ids)} datasets, {len(runs)} runs ({len(runs) - len(todo)} done, {len(todo)} to do); "
          f"{settings_line(args.suite, cfg)}")
    if args.suite == "lite" or cfg["device"] == "cpu":
        print(f"estimated {est / 3600:.2f} h with {cfg['jobs']} jobs at the update rates of the finished runs under "
              f"{runs_root} ({sum(len(k) == 2 for k in rates)} algorithm x env rates, else "
              f"{sum(len(k) == 3 for k in rates)} algorithm x action x observation classes; LITE_RATES, scaled, elsewhere)")
    if args.plan:
        per_algo: dict[str, list[float]] = {}
        for d, a, _ in todo:
            per_algo.setdefault(a, []).append(estimate_s(d, a, cfg["steps"], rates))
        for a, t in per_algo.items():
            print(f"  {a:8s} {len(t):4d} runs, {sum(t) / 60:6.1f} min of one job")
        return 0

    t0 = time.time()
    failures = []
    if todo and not args.aggregate_only:
        from ogdata.progress import Progress

        base = {k: cfg[k] for k in ("steps", "hidden", "layers", "batch_size", "eval_episodes", "evals", "device",
                                    "threads", "protocol")}
        jobs = [{**asdict(RunSettings(algo=a, dataset=d, seed=s, out=str(run_dir(runs_root, d, a, s)),
                                      progress=False, overrides=run_overrides(cfg, d, a), **base))}
                for d, a, s in todo]
        bar = Progress(len(jobs), f"{args.suite} suite")
        if args.ray:
            gpus = args.gpus_per_run if args.gpus_per_run is not None else (
                1.0 if str(cfg["device"]).startswith("cuda") else 0.0)
            for o in run_ray(jobs, args.ray, int(cfg["threads"] or 1), gpus):
                failures += [] if o["ok"] else [o]
                bar.set_postfix({"last": f"{o['settings']['algo']} {o['settings']['dataset']}"})
                bar.update(1)
        elif cfg["jobs"] <= 1:
            outs = (run_one(j) for j in jobs)
            for o in outs:
                failures += [] if o["ok"] else [o]
                bar.set_postfix({"last": f"{o['settings']['algo']} {o['settings']['dataset']}"})
                bar.update(1)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=cfg["jobs"], mp_context=mp.get_context("spawn")) as ex:
                futs = [ex.submit(run_one, j) for j in jobs]
                for f in as_completed(futs):
                    o = f.result()
                    failures += [] if o["ok"] else [o]
                    bar.set_postfix({"last": f"{o['settings']['algo']} {o['settings']['dataset']}"})
                    bar.update(1)
        bar.close()
    wall = time.time() - t0
    if cfg["protocol"] == "v1":
        return write_v1(args, cfg, runs_root, planned=runs, wall=wall, failures=failures)

    table = aggregate(runs, runs_root)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    meta = (f"Hardware: {platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}. "
            f"{sum(len(v['algos']) for v in table.values())} dataset × algorithm cells.")
    doc = {"suite": args.suite, "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
           "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_time_s_this_invocation": wall,
           "runs": len(runs), "failed": [f["error"] + " @ " + f["settings"]["out"] for f in failures],
           "datasets": table}
    links = analysis.measure_links(table, dataset_measures(table))
    doc["measures_vs_scores"] = links
    (out_dir / f"{args.suite}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    (out_dir / f"{args.suite}.md").write_text(markdown(args.suite, cfg, table, meta) + "\n"
                                               + analysis.markdown(links))
    plot(out_dir / f"{args.suite}.png", args.suite, table)
    analysis.plot(out_dir / f"{args.suite}_measures.png", links,
                  f"ogdata baselines, {args.suite} suite: do the dataset measures predict the scores?")
    cards = 0 if args.no_cards else update_cards(args.suite, cfg, table)
    print(f"wrote {out_dir / args.suite}.json/.md/.png ({len(table)} datasets; {cards} dataset cards updated) "
          f"in {wall / 60:.1f} min; {len(failures)} failed runs")
    for f in failures:
        print(f"  FAILED {f['settings']['out']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


def measures_v1(dids) -> dict[str, dict]:
    """TQ / SACo / coarse SACo of v1 datasets: from the committed generation record of the catalogue
    (dataset_cards/catalogue_generation_v1.json, so the tables rebuild from committed files alone), else from
    an installed copy's metadata. A dataset with neither, or with a measure missing, is left out."""
    from ogdata.errors import InvalidIdError
    from ogdata.ids import installed_path

    record = ROOT / "dataset_cards" / "catalogue_generation_v1.json"
    published = json.loads(record.read_text()) if record.exists() else {}
    out = {}
    for did in dids:
        m = published.get(did)
        if m is None:
            try:
                meta = installed_path(did) / "metadata.json"
            except InvalidIdError:  # a local path, not a catalogue id
                meta = Path(did) / "metadata.json"
            m = (json.loads(meta.read_text()).get("measures") or {}) if meta.exists() else {}
        if all(m.get(k) is not None for k in analysis.MEASURES):
            out[did] = {k: float(m[k]) for k in analysis.MEASURES}
    return out


def write_v1(args, cfg: dict, runs_root: Path, planned, wall: float, failures: list) -> int:
    """The v1 tables from every run record under the runs directory (baselines/report.py), not only this
    invocation's: a run over a few datasets (`--datasets GLOB`) must not overwrite the suite's tables with
    those few. "Planned" counts this invocation's runs plus the records outside them."""
    records = report.load_records(runs_root)
    if not records:
        print(f"no finished v1 runs under {runs_root}", file=sys.stderr)
        return 1
    if planned is not None:
        planned = len({str(run_dir(runs_root, d, a, s)) for d, a, s in planned} | {r["run_dir"] for r in records})
    doc = report.build(records, planned=planned,
                       measures=measures_v1({r["dataset"] for r in records}))
    doc.update({"suite": args.suite, "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "failed": [f["error"] + " @ " + f["settings"]["out"] for f in failures]})
    written = report.write(args.results_dir, args.suite, doc, f"Settings: {settings_line(args.suite, cfg)}.")
    cards = 0 if args.no_cards else update_cards_v1(args.suite, cfg, doc)
    print(f"wrote {len(written)} files under {args.results_dir} ({len(records)} runs, {len(doc['datasets'])} datasets; "
          f"{cards} datasets' metadata updated: `scripts/render_cards.py` renders their cards) "
          f"in {wall / 60:.1f} min; {len(failures)} failed runs")
    for f in failures:
        print(f"  FAILED {f['settings']['out']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
