"""Catalogue v1 (issue #14): tiers that mean their names on the v1 references, 1M transitions a tier.

The recipes are data written by `scripts/train_behaviour.py --version 1`; these tests hold them to
their rules: every Good / Medium / Poor policy is a learned checkpoint (env_steps > 0) or a named
fallback, scores sit in their bands or the recipe says why, the published scores reproduce, and
v0 stays addressable beside v1.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from ogdata.catalogue import (
    catalogue_envs,
    catalogue_ids,
    catalogue_versions,
    is_catalogue_id,
    latest_version,
    recipe,
    tier_recipe,
    weights_path,
)
from ogdata.envs.registry import make_core
from ogdata.errors import InvalidIdError
from ogdata.ids import installed_path
from ogdata.policies.checkpoint import BehaviourPolicy, load_checkpoint
from ogdata.policies.evaluate import episode_returns, normalised_score, reference_returns_v1
from ogdata.policies.reference import NoisyPolicy, make_policy

V1_ENVS = catalogue_envs(1)
BANDS = {"good": (80.0, math.inf), "medium": (45.0, 55.0), "poor": (15.0, 25.0)}
SOURCES = {"checkpoint", "mixed", "expert"}


def test_v1_sits_beside_v0():
    assert catalogue_versions() == [0, 1]
    assert set(catalogue_envs(0)) == set(V1_ENVS)
    ids = set(catalogue_ids())
    for env in V1_ENVS:
        assert latest_version(env) == 1
        for tier in ("good", "medium", "poor", "replay", "random"):
            assert f"{env}/{tier}-v0" in ids and f"{env}/{tier}-v1" in ids
    r, t = tier_recipe("execution-ac/good-v1")
    assert r["version"] == 1 and t["transitions"] == 1_000_000
    assert tier_recipe("execution-ac/good-v0")[0]["version"] == 0


def test_a_version_without_a_recipe_names_the_versions_there_are():
    with pytest.raises(InvalidIdError, match=r"no v7 recipe.*v0, v1"):
        recipe("execution-ac", 7)
    with pytest.raises(InvalidIdError):
        tier_recipe("execution-ac/good-v7")
    assert not is_catalogue_id("execution-ac/good-v7")


@pytest.mark.parametrize("env_id", V1_ENVS)
def test_v1_tiers_are_learned_checkpoints_or_named_fallbacks(env_id):
    r = recipe(env_id, 1)
    refs = reference_returns_v1(env_id)
    assert r["reference_returns"] == {"random": refs["random"]["mean"], "expert": refs["expert"]["mean"]}
    assert r["references"]["expert"] == refs["expert"]["name"]
    assert len(r["training"]["seeds"]) >= 2
    for tier, (lo, hi) in BANDS.items():
        t = r["tiers"][tier]
        assert t["transitions"] == 1_000_000 and t["policies"]
        kinds = {p["source"] for p in t["policies"]}
        assert kinds <= SOURCES
        for p in t["policies"]:
            if "checkpoint" in p:
                assert weights_path(p["checkpoint"]).with_suffix(".safetensors").is_file()
            if p["source"] in ("checkpoint", "mixed"):
                assert p["env_steps"] > 0, f"{env_id} {tier}: the untrained network is never a tier"
            if p["source"] == "mixed":
                assert 0.0 < p["random_prob"] < 1.0
        # the recipe names what the tier is made of; fallbacks say so
        assert ("fallback" in t["policy_source"]) == bool(kinds - {"checkpoint"})
        assert t["learned"] is ("expert" not in kinds)
        if kinds - {"checkpoint"}:
            assert "fallback" in t["note"]
        else:
            assert len(t["policies"]) >= 2 or tier == "good"
        inside = all(lo <= p["score"] <= hi for p in t["policies"])
        assert t["reached"] is inside
        if not inside:
            assert "outside the band" in t["note"]
    for tier in ("replay", "random"):
        assert r["tiers"][tier]["transitions"] == 1_000_000


def _published(env_id: str, tier: str) -> tuple[dict, dict, dict]:
    r = recipe(env_id, 1)
    t = r["tiers"][tier]
    return r, t, t["policies"][0]


@pytest.mark.parametrize("tier", ["good", "poor"])
def test_a_published_v1_score_reproduces(tier):
    """Re-score the first policy of a tier exactly as the training script did (1024 episodes, its seed)."""
    r, t, p = _published("execution-ac", tier)
    core = make_core("execution-ac", 128)
    noise = float(t["noise"]["value"])
    if p["source"] == "expert":
        pol = NoisyPolicy(make_policy(p["reference"], core), core.action_space, noise)
        seed = 9_000_000
    else:
        pol = BehaviourPolicy(*load_checkpoint(weights_path(p["checkpoint"])), noise=noise,
                              random_prob=float(p.get("random_prob", 0.0)))
        seed = 9_000_000 + 97 * int(p["seed"])
    rets = episode_returns(core, pol, t["score_episodes"], seed=seed)["returns"]
    refs = r["reference_returns"]
    assert rets.mean() == pytest.approx(p["return_mean"], rel=1e-9)
    # the score divides by the random-to-expert gap, which magnifies the mean's last-bit differences between CPUs
    # (BLAS kernels sum in different orders): a millionth of a normalised point
    assert normalised_score(rets.mean(), random=refs["random"], expert=refs["expert"]) == pytest.approx(
        p["score"], abs=1e-6)


def test_v1_catalogue_path_and_ad_hoc_jobs(tmp_path):
    from ogdata.generate import catalogue_path, generate

    r = recipe("execution-ac", 1)
    assert catalogue_path("execution-ac", "good", 1_000_000, 0) == installed_path("execution-ac/good-v1")
    assert catalogue_path("execution-ac", "good", 1_000_000, 0, version=0).name != "good-v1"
    assert catalogue_path("execution-ac", "good", 100_000, 0, version=0) == installed_path("execution-ac/good-v0")
    ds = generate("execution-ac", "medium", 500, tmp_path / "m", recipe=r, progress=False, profile=False)
    assert ds.dataset_id is None      # a 500-transition job is not the catalogue's: no catalogue id
    assert ds.metadata["recipe"]["source"] == "ogdata/catalogue/v1/execution-ac.json"
    assert ds.metadata["recipe"]["band"] == [45.0, 55.0]


# -- NoisyPolicy: the tiers' rollout noise around a reference policy -----------------------------------

def test_noisy_policy_box_noise_is_on_the_half_range_scale_and_clipped():
    core = make_core("execution-ac", 4096)
    sp = core.action_space
    mid = np.full((4096,) + sp.shape, 0.5 * (sp.low + sp.high), dtype=sp.dtype)
    pol = NoisyPolicy(lambda obs, rng: mid, sp, 0.1)
    a = pol(np.zeros((4096, 1)), np.random.default_rng(0))
    half = 0.5 * (sp.high - sp.low)
    assert a.dtype == sp.dtype and np.all(a >= sp.low) and np.all(a <= sp.high)
    assert np.std((a - mid) / half) == pytest.approx(0.1, rel=0.05)
    edge = np.broadcast_to(sp.high, mid.shape).copy()
    b = NoisyPolicy(lambda obs, rng: edge, sp, 0.1)(np.zeros((4096, 1)), np.random.default_rng(0))
    assert np.all(b <= sp.high) and np.mean(b == sp.high) == pytest.approx(0.5, abs=0.05)
    assert np.array_equal(NoisyPolicy(lambda obs, rng: mid, sp, 0.0)(None, np.random.default_rng(0)), mid)


def test_noisy_policy_discrete_is_epsilon_greedy():
    sp = spaces.Discrete(3, start=-1)
    greedy = np.full(20_000, 1, dtype=np.int64)
    a = NoisyPolicy(lambda obs, rng: greedy, sp, 0.3)(None, np.random.default_rng(1))
    assert set(np.unique(a)) == {-1, 0, 1}
    # ε = 0.3 draws uniformly over 3 actions, so 2/3 of the explored steps leave the greedy action
    assert np.mean(a != 1) == pytest.approx(0.3 * 2 / 3, abs=0.01)


def test_noisy_policy_rejects_bad_noise():
    with pytest.raises(ValueError, match="noise"):
        NoisyPolicy(lambda o, r: o, spaces.Discrete(2), float("nan"))


def test_generate_catalogue_script_runs_envs_side_by_side(tmp_path):
    """`scripts/generate_catalogue.py --version 1 --jobs 2`: both envs' tiers written, timings logged."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "cat"
    cmd = [sys.executable, str(root / "scripts" / "generate_catalogue.py"), "--version", "1", "--env", "execution-ac",
           "--env", "market-making-as", "--tier", "random", "--tier", "poor", "--transitions", "3000",
           "--jobs", "2", "--workers", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                 "OGDATA_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr[-2000:]
    log = json.loads((out / "catalogue_generation.json").read_text())
    assert sorted(log) == ["execution-ac/poor-v1", "execution-ac/random-v1", "market-making-as/poor-v1",
                           "market-making-as/random-v1"]
    assert all(e["transitions"] >= 3000 for e in log.values())
    runs = json.loads((out / "catalogue_generation_runs.json").read_text())
    assert runs[-1]["datasets"] == 4 and runs[-1]["jobs"] == 2 and runs[-1]["version"] == 1
    # a rerun keeps what is there
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                 "OGDATA_HOME": str(tmp_path / "home")})
    assert r.returncode == 0 and "4 dataset(s) already under" in r.stdout


def test_generate_catalogue_invocations_side_by_side_keep_each_others_timings(tmp_path):
    """Two separate invocations for different envs into one directory, at the same time: the timing logs
    are merged under a lock, so neither run's entries are lost (a log read once at start dropped them)."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "cat"
    env = {**os.environ, "OGDATA_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, str(root / "scripts" / "generate_catalogue.py"), "--version", "1",
                               "--env", e, "--tier", "random", "--tier", "poor", "--transitions", "2000",
                               "--workers", "1", "--out", str(out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for e in ("execution-ac", "market-making-as")]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]
    log = json.loads((out / "catalogue_generation.json").read_text())
    assert sorted(log) == ["execution-ac/poor-v1", "execution-ac/random-v1", "market-making-as/poor-v1",
                           "market-making-as/random-v1"]
    runs = json.loads((out / "catalogue_generation_runs.json").read_text())
    assert len(runs) == 2 and all(r["datasets"] == 2 for r in runs)
