"""Dataset generation: behaviour policies rolled through vectorised cores, sharded, written atomically.

A job (env, tier, N transitions, seed) is cut into shards that depend only on the recipe,
N and the seed — never on the number of workers — so the same job gives byte-identical
arrays with 1 worker, 8 workers or a Ray cluster. Each shard steps B markets of one core
with one behaviour policy (numpy inference, no torch), keeps whole episodes only, and
returns its arrays (as .npy bytes: no pickled arrays); the parent appends the shards in
order to one staged zarr store that is renamed into place only when complete, so a
killed run leaves nothing under the dataset path and a rerun starts clean.

Tiers (rules and thresholds published in every dataset's metadata recipe). Catalogue v1, scored on
the v1 references (ogdata/envs/references-v1.json):
  good    a learned checkpoint (env_steps > 0) of each training seed scoring >= 80; none: the expert
          reference policy with the rollout noise, a named fallback (learned: false)
  medium  a learned checkpoint scoring 50 ± 5; poor: 20 ± 5; a seed with none: its Good checkpoint mixed
          with the uniform random policy (probability p per step and agent) to the target ± 2, named so
  replay  episodes of the training runs themselves, evenly spaced over each run, up to the tier size
  random  the uniform random policy
v0 (the lite catalogue): good = best checkpoint (>= 80 or the best reached, said so); medium = the
checkpoint nearest 50; poor = nearest 20, mixed with random down to 20 where it scores above 30.
Good / Medium / Poor are rolled out with the mean action plus noise: Gaussian σ = 0.1 on
the [-1, 1] action scale for Box actions, ε = 0.05 for Discrete ones; each tier mixes the
checkpoints of every training seed (≥ 2) in equal shares.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ogdata.catalogue import TIER_RECIPE_FIELDS, is_catalogue_id, latest_version, tier_recipe, weights_path
from ogdata.catalogue import recipe as catalogue_recipe
from ogdata.catalogue import recipe_path as catalogue_recipe_path
from ogdata.config import home
from ogdata.dataset import Dataset
from ogdata.envs.registry import env_spec, make_core
from ogdata.errors import (
    EnvError,
    InvalidArgumentError,
    InvalidIdError,
    MissingExtraError,
    OgdataError,
    ReferenceMissingError,
)
from ogdata.ids import TIERS, installed_path, parse_id
from ogdata.measures import profile as measure_profile
from ogdata.measures import recorded_measures
from ogdata.policies.checkpoint import BehaviourPolicy, load_checkpoint
from ogdata.policies.evaluate import agent_reference_returns, reference_returns
from ogdata.policies.ppo import PPOConfig, train
from ogdata.policies.reference import NoisyPolicy, make_policy
from ogdata.progress import progress_bar
from ogdata.storage import DatasetWriter, update_metadata
from ogdata.storage.format import METADATA_FILE, read_metadata
from ogdata.storage.writer import ColumnStore, StagedDirectory, base_metadata, finish

SHARD_TRANSITIONS = 25_000   # transitions per shard (the unit of parallel work)
MAX_SHARD_ENVS = 256         # markets per shard core
ROLLOUT_TIERS = ("good", "medium", "poor")
TIER_RULES = {
    "good": "best checkpoint of each training seed (normalised score >= 80, or the best reached, stated as such)",
    "medium": "checkpoint of each training seed whose normalised score is nearest 50",
    "poor": "checkpoint of each training seed whose normalised score is nearest 20; a seed whose checkpoint "
            "scores above 30 is mixed with the uniform random policy down to 20 (see the tier's mixing)",
    "replay": "whole episodes of each training seed's run (the recorded markets), evenly spaced over the run, "
              "up to the tier size",
    "random": "uniform random policy over the action space",
}
TIER_TARGETS = {"good": 80.0, "medium": 50.0, "poor": 20.0}


# -- shards -------------------------------------------------------------------------------------

def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(int(total), int(parts))
    return [base + (i < extra) for i in range(parts)]


def plan_shards(sources: list[dict[str, Any]], transitions: int, seed: int, tier: str,
                shard_transitions: int = SHARD_TRANSITIONS) -> list[dict[str, Any]]:
    """Shard specs: each source (behaviour policy) gets an equal share, cut into ≤ shard_transitions.

    Depends only on (sources, transitions, seed, tier): the worker count never changes the data.
    """
    if transitions < 1:
        raise EnvError(f"transitions must be >= 1, got {transitions}")
    jobs = []
    for si, q in enumerate(_split(transitions, len(sources))):
        for part in _split(q, max(1, math.ceil(q / shard_transitions))):
            if part:
                jobs.append((si, part))
    seqs = np.random.SeedSequence([int(seed), TIERS.index(tier) if tier in TIERS else 99]).spawn(len(jobs))
    out = []
    for k, ((si, q), ss) in enumerate(zip(jobs, seqs)):
        env_seed, pol_seed = (int(x) for x in ss.generate_state(2, dtype=np.uint64))
        out.append({"index": k, "source": si, "quota": q, "env_seed": env_seed, "policy_seed": pol_seed,
                    **sources[si]})
    return out


def _encode(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    out = {}
    for k, a in arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
        out[k] = buf.getvalue()
    return out


def _decode(blobs: dict[str, bytes]) -> dict[str, np.ndarray]:
    return {k: np.load(io.BytesIO(b), allow_pickle=False) for k, b in blobs.items()}


def _make_policy(spec: dict[str, Any], core):
    pol = spec["policy"]
    if pol["kind"] == "reference":
        ref = make_policy(pol["name"], core)
        noise = float(pol.get("noise", 0.0))
        return NoisyPolicy(ref, core.action_space, noise) if noise > 0 else ref
    from safetensors.numpy import load as st_load

    return BehaviourPolicy(st_load(pol["safetensors"]), pol["config"], noise=float(pol.get("noise", 0.0)),
                           random_prob=float(pol.get("random_prob", 0.0)))


@contextmanager
def one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread (threadpoolctl) and, if torch is already imported, one torch thread;
    the previous limits come back on exit. Generation never imports torch itself: it is only
    limited when the caller's process has loaded it."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def run_shard(spec: dict[str, Any]) -> dict[str, bytes]:
    """Worker entry point: roll one shard and return its arrays as .npy bytes.

    Always with one thread (in-process, in a worker process or a Ray task alike): a policy's
    matmuls split over threads sum in another order, so their last float bits — and the dataset's
    bytes — would depend on where the shard ran; small matmuls also run 4-7x slower threaded.
    """
    with one_thread():
        return _run_shard(spec)


def _run_shard(spec: dict[str, Any]) -> dict[str, bytes]:
    probe = make_core(spec["env_id"], 1, **spec.get("env_kwargs", {}))
    est = max(1, int(getattr(probe, "max_steps", 1)))
    B = int(np.clip(math.ceil(spec["quota"] / (2 * est)), 1, spec.get("max_envs", MAX_SHARD_ENVS)))
    core = make_core(spec["env_id"], B, **spec.get("env_kwargs", {}))
    policy = _make_policy(spec, core)
    return _encode(rollout(core, policy, spec["quota"], spec["env_seed"], spec["policy_seed"]))


def rollout(core, policy, quota: int, env_seed: int, policy_seed: int) -> dict[str, np.ndarray]:
    """Whole episodes of `policy` on `core` until at least `quota` transitions (overshoot < one episode).

    A market starts a recorded episode only while completed + (live episodes, each counted as at
    least max_steps) < quota; other markets run on unrecorded. Returns the native layout:
    observations (N+E, ...) [states], actions, rewards, terminations, truncations (N, ...),
    episode_lengths (E,), episodes ordered by the order they started.
    """
    B, multi = core.num_envs, bool(core.multi_agent)
    est = max(1, int(getattr(core, "max_steps", 1)))
    rng = np.random.default_rng(policy_seed)
    obs, _ = core.reset(seed=env_seed)
    state = core.state() if multi else None
    active = np.zeros(B, dtype=bool)
    ep_id = np.full(B, -1, dtype=np.int64)
    cur = np.zeros(B, dtype=np.int64)
    next_id, completed = 0, 0

    def activate(cands: np.ndarray) -> None:
        nonlocal next_id
        live = int(np.maximum(cur[active], est).sum())
        k = min(len(cands), max(0, math.ceil((quota - completed - live) / est)))
        if k:
            sel = cands[:k]
            active[sel] = True
            ep_id[sel] = np.arange(next_id, next_id + k)
            cur[sel] = 0
            next_id += k

    activate(np.arange(B))
    rec: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "ep", "t", "state")}
    fin_id, fin_obs, fin_state = [], [], []
    step_cap = 1000 * (quota // B + est) + 10_000
    steps = 0
    while active.any() or completed < quota:
        act = policy(obs, rng)
        next_obs, rew, term, trunc, _ = core.step(act)
        next_state = core.state() if multi else None
        term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
        done = (term | trunc).all(axis=1) if multi else (term | trunc)
        idx = np.flatnonzero(active)
        if len(idx):
            rec["obs"].append(obs[idx])
            rec["act"].append(np.asarray(act)[idx])
            rec["rew"].append(np.asarray(rew)[idx])
            rec["term"].append(term[idx])
            rec["trunc"].append(trunc[idx])
            rec["ep"].append(ep_id[idx])
            rec["t"].append(cur[idx])
            if multi:
                rec["state"].append(state[idx])
        cur += active
        ended = done & active
        if ended.any():
            e = np.flatnonzero(ended)
            fin_id.append(ep_id[e])
            fin_obs.append(next_obs[e])
            if multi:
                fin_state.append(next_state[e])
            completed += int(cur[e].sum())
            active[e] = False
        if done.any():
            obs2, _ = core.reset(mask=done)
            m = done.reshape((B,) + (1,) * (np.ndim(obs2) - 1))
            obs = np.where(m, obs2, next_obs)
            state = core.state() if multi else None
            activate(np.flatnonzero(done))
        else:
            obs, state = next_obs, next_state
        steps += 1
        if steps > step_cap:
            raise EnvError(f"rollout made no progress after {steps} steps ({completed}/{quota} transitions "
                           "in finished episodes): does the environment ever end its episodes?")
    return _assemble(core, rec, fin_id, fin_obs, fin_state, multi)


def _space_dtype(space):
    from gymnasium import spaces

    return np.int64 if isinstance(space, spaces.Discrete) else space.dtype


def _assemble(core, rec, fin_id, fin_obs, fin_state, multi) -> dict[str, np.ndarray]:
    cat = {k: np.concatenate(v) for k, v in rec.items() if v}
    order = np.lexsort((cat["t"], cat["ep"]))
    ep = cat["ep"][order]
    E = int(ep.max()) + 1
    lengths = np.bincount(ep, minlength=E).astype(np.int64)
    n = len(ep)
    f_ids = np.concatenate(fin_id)
    f_ord = np.argsort(f_ids, kind="stable")
    if not np.array_equal(f_ids[f_ord], np.arange(E)):
        raise EnvError("internal error: an episode ended without its final observation")
    pos = np.arange(n) + ep
    fpos = np.cumsum(lengths) + np.arange(E)

    def t_plus_1(rows, finals, dtype):
        out = np.empty((n + E,) + rows.shape[1:], dtype=dtype)
        out[pos] = rows
        out[fpos] = finals
        return out

    arrays = {"observations": t_plus_1(cat["obs"][order], np.concatenate(fin_obs)[f_ord],
                                       _space_dtype(core.observation_space))}
    if multi:
        arrays["states"] = t_plus_1(cat["state"][order], np.concatenate(fin_state)[f_ord],
                                    core.state_space.dtype)
    arrays["actions"] = cat["act"][order].astype(_space_dtype(core.action_space), copy=False)
    arrays["rewards"] = cat["rew"][order].astype(np.float32)
    arrays["terminations"] = cat["term"][order]
    arrays["truncations"] = cat["trunc"][order]
    arrays["episode_lengths"] = lengths
    return arrays


# -- execution: inline, process pool, Ray --------------------------------------------------------

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _execute(specs: list[dict[str, Any]], workers: int, ray_address: str | None) -> Iterator[dict[str, bytes]]:
    """Run shards and yield their results in shard order."""
    if ray_address:
        yield from _execute_ray(specs, ray_address)
        return
    if workers <= 1 or len(specs) <= 1:
        for s in specs:
            yield run_shard(s)
        return
    import multiprocessing as mp

    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})   # one BLAS thread per worker process
    try:
        pool = mp.get_context("spawn").Pool(min(workers, len(specs)))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield from pool.imap(run_shard, specs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _execute_ray(specs: list[dict[str, Any]], address: str) -> Iterator[dict[str, bytes]]:
    try:
        import ray
    except ImportError as e:
        raise MissingExtraError("generating on a Ray cluster needs Ray: pip install 'ogdata[ray]'") from e
    if not ray.is_initialized():
        kw: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False}
        if address == "local":
            ray.init(num_cpus=max(1, min(len(specs), os.cpu_count() or 1)), **kw)
        else:
            ray.init(address=address, **kw)
    task = ray.remote(num_cpus=1)(run_shard)
    refs = [task.remote(s) for s in specs]
    for r in refs:
        yield ray.get(r)


# -- behaviour sources -----------------------------------------------------------------------------

def _checkpoint_source(ref: str, noise: float, random_prob: float = 0.0) -> dict[str, Any]:

    stem = weights_path(ref)
    load_checkpoint(stem)  # validates both files
    pol = {"kind": "checkpoint", "ref": ref, "noise": noise}
    if random_prob > 0:  # recorded only when used, so unmixed tiers keep their metadata
        pol["random_prob"] = float(random_prob)
    return {"policy": {**pol, "safetensors": stem.with_suffix(".safetensors").read_bytes(),
                       "config": json.loads(stem.with_suffix(".json").read_text())}}


def _sources(env_id: str, tier: str, recipe: dict[str, Any] | None) -> list[dict[str, Any]]:
    if tier == "random":
        return [{"policy": {"kind": "reference", "name": "random"}}]
    if recipe is None:
        recipe = catalogue_recipe(env_id, latest_version(env_id) or 0)
    t = recipe["tiers"].get(tier)
    if t is None or not t.get("policies"):
        raise InvalidIdError(f"the recipe of {env_id} has no behaviour policies for tier {tier!r}")
    noise = float(t["noise"]["value"])
    return [{"policy": {"kind": "reference", "name": p["reference"], "noise": noise}} if "reference" in p
            else _checkpoint_source(p["checkpoint"], noise, float(p.get("random_prob", 0.0))) for p in t["policies"]]


def _public_source(src: dict[str, Any]) -> dict[str, Any]:
    p = src["policy"]
    return {k: v for k, v in p.items() if k not in ("safetensors", "config")}


# -- writing ------------------------------------------------------------------------------------

def _write(stage: StagedDirectory, parts: Iterator[dict[str, np.ndarray]], core, meta: dict[str, Any],
           total: int | None, progress: bool) -> Path:
    """Write the parts into the staging directory (not yet visible under its final name)."""
    multi = bool(core.multi_agent)
    bar = None
    try:
        if progress:
            bar = progress_bar(total=total, desc=f"generate {meta.get('dataset_id') or stage.target.name}",
                               unit="tr")
        store = ColumnStore(stage.path)
        n = e = 0
        keys = ("observations", "states", "actions", "rewards", "terminations", "truncations", "episode_lengths")
        for arrs in parts:
            for k in keys:
                if k in arrs:
                    store.append(k, arrs[k])
            dn = int(arrs["episode_lengths"].sum())
            n += dn
            e += len(arrs["episode_lengths"])
            if bar is not None:
                bar.update(dn)
        m = base_metadata(core.observation_space, core.action_space, agents=list(core.agents) if multi else None,
                          state_space=core.state_space if multi else None, extra=meta)
        path = finish(stage, store, m, n, e, commit=False)
    finally:
        if bar is not None:
            bar.close()
    return path


# -- replay -------------------------------------------------------------------------------------

def training_dir(env_id: str, seed: int, version: int = 0) -> Path:
    """Where a training run keeps its (uncommitted) replay record: OGDATA_HOME/training/<env>/seed-<s>/
    (catalogue v0) or OGDATA_HOME/training/<env>/v<N>/seed-<s>/ (catalogue vN)."""
    base = home() / "training" / env_id
    return (base if not version else base / f"v{int(version)}") / f"seed-{int(seed)}"


def replay_record(env_id: str, recipe: dict[str, Any], seed: int, progress: bool = True):
    """The recorded training run of one seed; re-trains it (deterministic) when it is missing."""

    path = training_dir(env_id, seed, int(recipe.get("version", 0))) / "replay"
    if (path / METADATA_FILE).is_file():
        ds = Dataset(path)
        if ds.metadata.get("recipe", {}).get("fingerprint") == training_fingerprint(recipe, seed):
            return ds
    return record_training_run(env_id, recipe, seed, progress=progress)


def missing_training_runs(env_id: str, recipe: dict[str, Any]) -> list[int]:
    """Seeds of the recipe's training runs whose replay record is not cached (they re-train on use)."""
    out = []
    for s in recipe["training"]["seeds"]:
        path = training_dir(env_id, int(s), int(recipe.get("version", 0))) / "replay"
        try:
            fp = read_metadata(path).get("recipe", {}).get("fingerprint")
        except OgdataError:
            fp = None
        if fp != training_fingerprint(recipe, int(s)):
            out.append(int(s))
    return out


def training_fingerprint(recipe: dict[str, Any], seed: int) -> str:
    import hashlib

    tr = recipe["training"]
    blob = json.dumps({"env_id": recipe["env_id"], "env_kwargs": recipe.get("env_kwargs", {}),
                       "config": {**tr["config"], "seed": int(seed)}, "record_envs": tr["record_envs"]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_training_run(env_id: str, recipe: dict[str, Any], seed: int, out_dir: Path | None = None,
                        progress: bool = True):
    """Train one seed with the recipe's config, recording markets 0..record_envs-1 as the replay record.

    Returns the replay Dataset; checkpoints go to out_dir (a temporary directory when None).
    """
    import tempfile


    tr = recipe["training"]
    cfg = PPOConfig.from_json({**tr["config"], "seed": int(seed)})
    kw = recipe.get("env_kwargs", {})
    probe = make_core(env_id, 1, **kw)
    r = int(tr["record_envs"])
    path = training_dir(env_id, seed, int(recipe.get("version", 0))) / "replay"
    meta = {"env_id": env_id, "env_kwargs": kw, "tier": "replay-record",
            "recipe": {"fingerprint": training_fingerprint(recipe, seed), "seed": int(seed),
                       "record_envs": r, "config": cfg.to_json()}}
    writer = DatasetWriter(path, probe.observation_space, probe.action_space, num_envs=r, metadata=meta,
                           agents=list(probe.agents) if probe.multi_agent else None,
                           state_space=probe.state_space if probe.multi_agent else None, overwrite=True)
    refs = recipe.get("reference_returns")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            res = train(env_id, cfg, env_kwargs=kw, references=refs, out_dir=out_dir or tmp, writer=writer,
                        record_envs=r, progress=progress)
        except BaseException:
            writer.abort()
            raise
    from ogdata.dataset import Dataset

    ds = Dataset(writer.close(incomplete="drop"))
    ds._train_result = res  # type: ignore[attr-defined]
    return ds


def evenly_spaced_episodes(lengths: np.ndarray, quota: int) -> np.ndarray:
    """Indices of episodes evenly spaced over the run whose lengths sum to at least `quota` (all if fewer)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    E = len(lengths)
    if E == 0 or lengths.sum() <= quota:
        return np.arange(E)
    mean = lengths.mean()
    k = max(1, math.ceil(quota / mean))
    while True:
        idx = np.unique(np.floor(np.arange(k) * (E / k)).astype(np.int64))
        s = int(lengths[idx].sum())
        if s >= quota or k >= E:
            return idx
        k = min(E, k + max(1, math.ceil((quota - s) / mean)))


def _replay_parts(env_id: str, recipe: dict[str, Any], transitions: int, progress: bool):
    seeds = [int(s) for s in recipe["training"]["seeds"]]
    info = []
    parts = []
    for s, q in zip(seeds, _split(transitions, len(seeds))):
        ds = replay_record(env_id, recipe, s, progress=progress)
        idx = evenly_spaced_episodes(ds.episode_lengths, q)
        sub = ds.select_episodes(idx)
        arrs = {k: v for k, v in sub.arrays().items()}
        info.append({"seed": s, "episodes": int(len(idx)), "of_episodes": int(ds.num_episodes),
                     "transitions": int(arrs["episode_lengths"].sum()), "of_transitions": int(len(ds)),
                     "capped": bool(len(idx) < ds.num_episodes)})
        parts.append(arrs)
    return parts, info


# -- public -------------------------------------------------------------------------------------

def generate(env_id: str, tier: str, transitions: int, out_path: str | os.PathLike, workers: int = 1,
             seed: int = 0, ray_address: str | None = None, *, recipe: dict[str, Any] | None = None,
             dataset_id: str | None = None, overwrite: bool = False, profile: bool = True,
             reference: str | os.PathLike | None = None, progress: bool = True,
             shard_transitions: int = SHARD_TRANSITIONS, version: int | None = None):
    """Generate one tier of `env_id` into `out_path` (atomically) and return the Dataset.

    recipe: the env's catalogue recipe (default: the committed recipe of catalogue `version`,
    None = the newest the env has; not needed for tier="random"). workers: local processes; ray_address: run the shards as Ray tasks
    ("local" starts a local Ray instance, "auto" or "ray://host:port" joins a cluster whose
    Python environment has ogdata installed; shards carry the policy weights with them, so
    workers need no shared filesystem — the parent writes the dataset).
    At least `transitions` transitions are written, in whole episodes. dataset_id: by default
    the catalogue id `<env-id>/<tier>-v<N>` when the job is exactly the catalogue recipe's
    (same recipe, transitions and seed), else None — an ad-hoc dataset never claims a
    catalogue id (`ogdata verify` checks the recipe of catalogue ids). profile: compute the
    measures (TQ, SACo against the env's Replay dataset `reference`, default the sibling
    `replay-v<N>` directory if it exists, return statistics) and store them in the metadata.
    """

    if tier not in TIERS:
        raise InvalidIdError(f"unknown tier {tier!r}; tiers are {list(TIERS)}")
    for name, value, low in (("transitions", transitions, 1), ("workers", workers, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    if int(seed) >= 2**63:
        raise InvalidArgumentError(f"seed must be below 2**63, got {seed}")
    spec = env_spec(env_id)
    env_id = spec.id
    if recipe is None:
        version = latest_version(env_id) if version is None else int(version)
        recipe = _catalogue_recipe(env_id, version or 0)
        if recipe is None and (tier != "random" or version):
            catalogue_recipe(env_id, version or 0)   # raises: no recipe, train the behaviour policies first
    env_kwargs = dict((recipe or {}).get("env_kwargs", {}))
    version = int((recipe or {}).get("version", 0))
    out_path = Path(out_path)
    core = make_core(env_id, 1, **env_kwargs)
    refs = (recipe or {}).get("reference_returns")
    if not refs:

        try:
            refs = reference_returns(env_id)
        except ReferenceMissingError:
            refs = {}
    trec = dict((recipe or {}).get("tiers", {}).get(tier, {}))
    gen = {"seed": int(seed), "transitions_requested": int(transitions), "shard_transitions": shard_transitions,
           "ogdata_version": _version(), "numpy_version": np.__version__, "python": sys.version.split()[0],
           "platform": platform.platform()}
    # v0 metadata keeps the generator's rule text; v1 recipes carry their own tier rules
    rule = trec.get("rule", TIER_RULES[tier]) if version >= 1 else TIER_RULES[tier]
    recipe_meta: dict[str, Any] = {"tier": tier, "rule": rule, "generation": gen,
                                   "source": _recipe_source(env_id, version) if recipe else "ad hoc"}
    for k in TIER_RECIPE_FIELDS:
        if k in trec:
            recipe_meta[k] = trec[k]
    if trec.get("policies"):
        sc = [p["score"] for p in trec["policies"] if p.get("score") is not None]
        recipe_meta["behaviour"] = {"normalised_score": float(np.mean(sc)) if sc else None,
                                    "scores": sc, "score_episodes": trec.get("score_episodes")}
    if tier == "replay":
        if recipe is None:
            raise InvalidIdError(f"the replay tier of {env_id} needs its training recipe")
        parts, info = _replay_parts(env_id, recipe, transitions, progress)
        recipe_meta["training"] = {k: v for k, v in recipe["training"].items() if k != "learning_curve"}
        recipe_meta["replay"] = info
        parts_iter: Iterator[dict[str, np.ndarray]] = iter(parts)
    else:
        sources = _sources(env_id, tier, recipe)
        for s in sources:
            s.update(env_id=env_id, env_kwargs=env_kwargs)
        shards = plan_shards(sources, transitions, seed, tier, shard_transitions)
        gen["shards"] = len(shards)
        gen["sources"] = [_public_source(s) for s in sources]
        gen["workers"] = int(workers) if not ray_address else None
        gen["ray"] = bool(ray_address)
        parts_iter = (_decode(b) for b in _execute(shards, int(workers), ray_address))
    catalogue_job = is_catalogue_job(env_id, tier, transitions, seed, recipe)
    if dataset_id is None and catalogue_job:
        dataset_id = f"{env_id}/{tier}-v{version}"
    elif dataset_id is not None and is_catalogue_id(str(dataset_id)) and not (
            catalogue_job and str(dataset_id) == f"{env_id}/{tier}-v{version}"):
        raise InvalidIdError(f"dataset_id={dataset_id!r} is a catalogue id, but this job is not its catalogue "
                             "recipe (env, tier, recipe, transitions and seed must all match); a dataset that the "
                             "recipe did not make never carries a catalogue id — pass dataset_id=None")
    meta = {"dataset_id": dataset_id, "env_id": env_id, "env_kwargs": env_kwargs,
            "tier": tier, "recipe": recipe_meta, "reference_returns": refs or {}}
    agent_refs = agent_reference_returns(env_id, refs) if core.multi_agent else None
    if agent_refs:   # a general-sum id: each agent's own references, for its own score (agent_tq)
        meta["agent_reference_returns"] = agent_refs
    stage = StagedDirectory(out_path, overwrite=overwrite)
    try:
        staged = _write(stage, parts_iter, core, meta, transitions, progress)
        if profile:  # the measures are part of the atomic unit: recorded before the rename
            _profile(Dataset(staged), out_path, tier, version, reference)
        path = stage.commit()
    except BaseException:
        stage.abort()
        raise
    return Dataset(path)


def _catalogue_recipe(env_id: str, version: int = 0) -> dict[str, Any] | None:
    return catalogue_recipe(env_id, version) if catalogue_recipe_path(env_id, version).is_file() else None


def _recipe_source(env_id: str, version: int) -> str:
    return catalogue_recipe_path(env_id, version).relative_to(catalogue_recipe_path(env_id).parents[2]).as_posix()


def is_catalogue_job(env_id: str, tier: str, transitions: int, seed: int, recipe: dict[str, Any] | None) -> bool:
    """True when (recipe, tier, transitions, seed) is exactly what the catalogue prescribes for this tier."""
    cat = None if recipe is None else _catalogue_recipe(env_id, int(recipe.get("version", 0)))
    if cat is None or recipe is None or tier not in cat.get("tiers", {}):
        return False
    if json.dumps(recipe, sort_keys=True) != json.dumps(cat, sort_keys=True):
        return False
    t = cat["tiers"][tier]
    return int(t.get("transitions", -1)) == int(transitions) and int(t.get("seed", 0)) == int(seed)


def catalogue_path(env_id: str, tier: str, transitions: int, seed: int, version: int | None = None) -> Path:
    """Default output path: the installed location of the catalogue id for a catalogue job (of catalogue
    `version`, None = the env's newest), else OGDATA_HOME/custom/<env-id>/<tier>-n<transitions>-s<seed>
    (never mistaken for a catalogue copy)."""
    version = latest_version(env_id) if version is None else int(version)
    cat = _catalogue_recipe(env_id, version or 0)
    if is_catalogue_job(env_id, tier, transitions, seed, cat):
        return installed_path(f"{env_id}/{tier}-v{int(version or 0)}")
    return home() / "custom" / env_id / f"{tier}-n{int(transitions)}-s{int(seed)}"


def record_measures(dataset, reference=None, **kwargs) -> dict[str, Any]:
    """Compute every measure (`ogdata.measures.profile`, kwargs passed on) and record it in the dataset's
    metadata["measures"], atomically; the bin limits and coarse SACo parameters also go on the reference
    (`ogdata.measures.recorded_measures` says what goes where). Returns the profile."""
    prof = measure_profile(dataset, reference, **kwargs)
    mine, theirs = recorded_measures(dataset, reference, prof)
    update_metadata(dataset.path, measures=mine)
    dataset.metadata["measures"] = mine
    if theirs is not None:
        update_metadata(reference.path, measures=theirs)
        reference.metadata["measures"] = theirs
    return prof


def _profile(ds, out_path: Path, tier: str, version: int, reference) -> None:
    ref = None
    if tier == "replay":
        ref = ds
    else:
        cand = Path(reference) if reference is not None else out_path.parent / f"replay-v{version}"
        if (cand / METADATA_FILE).is_file():
            ref = Dataset(cand)
    record_measures(ds, ref)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ogdata")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        return "unknown"


def rebuild(dataset_id: str, out_path: str | os.PathLike | None = None, workers: int = 1,
            ray_address: str | None = None, overwrite: bool = False, progress: bool = True,
            reference: str | os.PathLike | None = None):
    """Rebuild a catalogue dataset from its committed recipe (offline; byte-identical on the same platform).

    reference: the env's Replay tier to profile coverage against (default: the sibling folder).
    """

    did = parse_id(dataset_id)
    r, t = tier_recipe(dataset_id)
    if out_path is None:
        out_path = installed_path(did)
    return generate(did.env_id, did.tier, int(t["transitions"]), out_path, workers=workers,
                    seed=int(t.get("seed", 0)), ray_address=ray_address, recipe=r, dataset_id=str(did),
                    overwrite=overwrite, progress=progress, reference=reference)
