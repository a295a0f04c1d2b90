"""One training run: dataset -> algorithm -> periodic held-out evaluation -> checkpoint + result.

Writes into the run directory: config.json (everything that defines the run, including the
fitted scaling), log.jsonl (losses every `log_every` updates, one line per evaluation),
checkpoint/ (model.safetensors + model.json) and, last, result.json — its presence marks
a finished run (the reproduction script skips those).

Two evaluation protocols (`RunSettings.protocol`):
- "v0": `eval_episodes` held-out episodes per evaluation on markets of the run seed; `last` and
  `best` (the maximum over those evaluations) are both test-market figures.
- "v1" (issue #15): the periodic evaluations are on the *validation* markets of
  `ogdata.envs.markets` (the learning curve); the headline `final` is the final checkpoint on the
  *test* markets, every episode's return recorded; `best_on_validation` is the checkpoint chosen on
  the validation curve, then scored once on the test markets, labelled as such. Nothing is chosen
  on the test markets.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from baselines import native
from baselines.checkpoint import load_modules, read_checkpoint, save_checkpoint
from baselines.data import fit_scaling, with_stock_features
from baselines.registry import check, check_overrides, dataset_kind
from ogdata.progress import Progress

PROTOCOLS = ("v0", "v1", "v1-validation")
RESULT = "result.json"
TEST_RETURNS = "test_returns.npz"  # v1: every test episode's return, float32, beside result.json


@dataclass
class RunSettings:
    algo: str  # an algorithm of `python -m baselines list`
    dataset: str  # a dataset id (<env-id>/<tier>-v<N>) or a local path
    steps: int  # gradient updates
    seed: int = 0  # seeds the networks, the batches and the evaluation markets
    device: str = "cpu"  # cpu, cuda or cuda:N
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # hidden layers
    batch_size: int = 256  # transitions per update (joint transitions for multi-agent data)
    eval_episodes: int = 10  # held-out episodes per evaluation (0: no evaluation)
    evals: int = 5  # evaluations spread evenly over the run, the last one at the end
    log_every: int = 100  # updates between loss lines in log.jsonl
    out: str | None = None  # run directory (default runs/<dataset>/<algo>/seed<S>)
    progress: bool = True  # a bar on a terminal; a plain line a minute in a pipe or log
    threads: int | None = None  # torch CPU threads (None: torch's default)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields of the algorithm to change
    protocol: str = "v0"  # "v0" (eval_episodes per evaluation), "v1" (fixed validation/test markets) or
    #                       "v1-validation" (the validation markets alone: for choosing)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs -> config overrides (VALUE read as JSON where it parses: 0.05, true; else text)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def default_out(dataset_id: str, algo: str, seed: int, root: str = "runs") -> Path:
    return Path(root) / dataset_id.replace("/", "__") / algo / f"seed{seed}"


def build_learner(algo: str, ds, s: RunSettings):
    """The learner for `algo` on `ds` (d3rlpy's BC/CQL/IQL/TD3+BC/BCQ, else our torch files baselines/*.py)."""
    info = check(algo, ds)
    check_overrides(algo, dataset_kind(ds)[1], s.overrides)
    scaling = fit_scaling(ds)
    kw = dict(hidden=s.hidden, layers=s.layers, batch_size=s.batch_size, device=s.device, seed=s.seed,
              overrides=s.overrides or None)
    if algo in native.ALGOS:  # our single-agent learners behind baselines/native.py
        from baselines.native import NativeLearner

        return NativeLearner.from_dataset(algo, ds, scaling, **kw)
    if not info.implementation.startswith("d3rlpy"):  # our torch files of the multi-agent face (risk learners too)
        from baselines.multi import MultiLearner

        return MultiLearner.from_dataset(algo, ds, scaling, **kw)
    from baselines.single import D3rlpyLearner

    return D3rlpyLearner.from_dataset(algo, ds, scaling, **kw)


def load_learner(checkpoint_dir: str | os.PathLike, device: str = "cpu"):
    """A trained learner from a checkpoint directory (safetensors + JSON; no pickle)."""
    states, config = read_checkpoint(checkpoint_dir, device=device)
    if config.get("kind") == "d3rlpy":
        from baselines.single import D3rlpyLearner as cls
    elif config.get("kind") == "native":
        from baselines.native import NativeLearner as cls
    else:
        from baselines.multi import MultiLearner as cls
    learner = cls.from_config(config, device=device)
    load_modules(learner.modules(), states)
    return learner


def _floats(d: dict) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_json_default))
    tmp.replace(path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def train(s: RunSettings) -> dict[str, Any]:
    """Run one training run and return its result (also written to <out>/result.json)."""
    import ogdata

    t_wall = time.perf_counter()
    if s.steps < 1:
        raise ValueError(f"steps must be >= 1, got {s.steps}")
    if s.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {s.protocol!r}")
    if s.threads:
        import torch

        torch.set_num_threads(int(s.threads))
    ds = ogdata.load(s.dataset)
    did = ds.dataset_id or str(ds.path)
    if check(s.algo, ds).needs_stock:  # sqriql: the same data with the stock features (made once, then reused)
        ds = with_stock_features(ds)
    out = Path(s.out) if s.out else default_out(did, s.algo, s.seed)
    out.mkdir(parents=True, exist_ok=True)
    t_build = time.perf_counter()
    learner = build_learner(s.algo, ds, s)
    build_time = time.perf_counter() - t_build

    evaluator = test = None
    if s.protocol != "v0":
        if not ds.env_id:
            raise ValueError(f"protocol {s.protocol} evaluates on the env's fixed markets, and {did} names no env")
        from baselines.evaluate import MarketEvaluator

        evaluator = MarketEvaluator(ds.env_id, "validation", ds.metadata.get("env_kwargs") or {})
        if s.protocol == "v1":
            test = MarketEvaluator(ds.env_id, "test", ds.metadata.get("env_kwargs") or {})
    elif ds.env_id and s.eval_episodes > 0:
        from baselines.evaluate import Evaluator

        evaluator = Evaluator(ds.env_id, ds.metadata.get("env_kwargs") or {}, episodes=s.eval_episodes,
                              seed=s.seed)
    config = {"settings": asdict(s), "dataset_id": did, "env_id": ds.env_id, "tier": ds.metadata.get("tier"),
              "learner": learner.config_json(), "num_transitions": len(ds), "versions": versions()}
    _write_json(out / "config.json", config)

    n_evals = max(1, min(s.evals, s.steps))
    eval_at = {int(round(s.steps * (k + 1) / n_evals)) for k in range(n_evals)}
    evals: list[dict[str, Any]] = []
    best_state: tuple[int, float, dict] | None = None  # v1: (step, validation score, weights) of the best so far
    train_time = 0.0
    bar = Progress(s.steps, f"{s.algo} {did} s{s.seed}", enabled=s.progress)
    with open(out / "log.jsonl", "w") as log:
        t0 = time.perf_counter()
        for step in range(1, s.steps + 1):
            losses = learner.step()
            if step % s.log_every == 0 or step == s.steps:
                train_time += time.perf_counter() - t0
                rec = {"step": step, "time": round(train_time, 3), **_floats(losses)}
                log.write(json.dumps(rec) + "\n")
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(rec.items())[2:5]})
                t0 = time.perf_counter()
            if step in eval_at and evaluator is not None:
                train_time += time.perf_counter() - t0
                ev = evaluator(learner.policy) if s.protocol == "v0" else evaluator(learner.policy, finance=False)
                ev["step"] = step
                evals.append(ev)
                if s.protocol == "v1" and step < s.steps and (best_state is None or
                                                               ev["normalised_score"] > best_state[1]):
                    best_state = (step, ev["normalised_score"], _snapshot(learner))
                log.write(json.dumps({"step": step, "eval": ev}, default=_json_default) + "\n")
                log.flush()
                bar.set_description(f"{s.algo} {did} s{s.seed} score {ev['normalised_score']:.1f}")
                t0 = time.perf_counter()
            bar.update(1)
        train_time += time.perf_counter() - t0
    bar.close()
    save_checkpoint(out / "checkpoint", learner.modules(), learner.config_json())

    result: dict[str, Any] = {
        "algo": s.algo, "dataset": did, "env_id": ds.env_id, "tier": ds.metadata.get("tier"), "seed": s.seed,
        "steps": s.steps, "settings": {**{k: getattr(s, k) for k in ("hidden", "layers", "batch_size",
                                                                     "eval_episodes", "device")},
                                       **({"overrides": s.overrides} if s.overrides else {})},
        "scaling_rule": learner.scaling.rule, "reward_scale": learner.scaling.reward_scale,
        "updates_per_s": s.steps / train_time if train_time > 0 else None,
        "train_time_s": train_time, "build_time_s": build_time,
        "evals": [{"step": e["step"], "normalised_score": e["normalised_score"], "return_mean": e["return_mean"]}
                  for e in evals],
    }
    if evals and s.protocol == "v0":
        last = evals[-1]
        best = max(evals, key=lambda e: e["normalised_score"])
        result["last"] = {k: last[k] for k in ("normalised_score", "normalised_score_std", "return_mean",
                                               "return_std", "references", "eval_env", "heldout")}
        result["last"]["finance"] = last.get("finance", {})
        result["best"] = {"step": best["step"], "normalised_score": best["normalised_score"],
                          "return_mean": best["return_mean"]}
    if s.protocol == "v1-validation":
        result["curve"] = _curve(evals)
        result["final_validation"] = evals[-1]["normalised_score"] if evals else None
        result["validation_markets"] = {"markets": evaluator.markets.env_id, "split": "validation",
                                        "episodes": evaluator.episodes}
        result["protocol"] = s.protocol
        result["versions"] = config["versions"]
        result["dataset_metadata"] = {k: ds.metadata.get(k) for k in ("tier", "recipe", "env_kwargs")}
        result.pop("evals")
    if s.protocol == "v1":
        result.update(_v1_result(learner, evals, test, best_state))
        _store_test_returns(out, result)
        result["protocol"] = "v1"
        result["versions"] = config["versions"]
        result["dataset_metadata"] = {k: ds.metadata.get(k) for k in ("tier", "recipe", "env_kwargs")}
        result.pop("evals")  # v1: `curve` (validation), `final` (test) and `best_on_validation`
    result["wall_time_s"] = time.perf_counter() - t_wall  # loading, build, updates and every evaluation
    _write_json(out / RESULT, result)
    return result


def _snapshot(learner) -> dict:
    return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in learner.modules().items()}


def _store_test_returns(out: Path, result: dict) -> None:
    """Move the test episodes' returns out of the JSON record into `TEST_RETURNS` (float32 arrays "final" and,
    when it is another checkpoint, "best_on_validation"): as JSON they are ~40 KB per run, and a suite keeps
    over a thousand runs in git. `load_test_returns` reads them back."""
    arrays = {"final": np.asarray(result["final"].pop("episode_returns"), dtype=np.float32)}
    bov = result.get("best_on_validation")
    if bov is not None and "episode_returns" in bov["test"]:
        arrays["best_on_validation"] = np.asarray(bov["test"].pop("episode_returns"), dtype=np.float32)
    tmp = out / (TEST_RETURNS + ".partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    tmp.replace(out / TEST_RETURNS)
    result["test_returns"] = {"file": TEST_RETURNS, "arrays": sorted(arrays), "dtype": "float32",
                              "order": "the test markets' order (ogdata/envs/markets-v1.json)"}


def load_test_returns(run_dir: str | Path) -> dict[str, np.ndarray]:
    """A v1 run's test-episode returns: {"final", and "best_on_validation" when that is another checkpoint}."""
    with np.load(Path(run_dir) / TEST_RETURNS, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _curve(evals: list[dict]) -> list[dict[str, Any]]:
    """The validation learning curve of a v1 run."""
    return [{"step": e["step"], "validation_score": e["normalised_score"], "validation_return": e["return_mean"]}
            for e in evals]


def _v1_result(learner, evals: list[dict], test, best_state) -> dict[str, Any]:
    """The v1 record: the validation curve, the final checkpoint on the test markets (the headline) and
    the checkpoint chosen on validation, scored once on the test markets."""
    curve = _curve(evals)
    final = test(learner.policy, episode_returns=True)
    final["step"] = evals[-1]["step"] if evals else None
    out: dict[str, Any] = {"curve": curve, "final": final}
    if evals:
        last_score = evals[-1]["normalised_score"]
        if best_state is not None and best_state[1] > last_score:
            final_state = _snapshot(learner)
            load_modules(learner.modules(), best_state[2])
            chosen = test(learner.policy, episode_returns=True)
            load_modules(learner.modules(), final_state)
            step, vscore = best_state[0], best_state[1]
        else:  # the final checkpoint is the validation best: the same test record
            chosen, step, vscore = final, evals[-1]["step"], last_score
        out["best_on_validation"] = {"label": "best checkpoint chosen on the validation markets", "step": step,
                                     "validation_score": vscore, "test": chosen}
    return out


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on, recorded with it."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("ogdata", "numpy", "torch", "d3rlpy", "gymnasium"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        out["git_commit"] = git.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = "unknown"
    return out
