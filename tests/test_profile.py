"""`ogdata profile` / `ogdata show` behind the CLI: tables, JSON, plots, missing references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

import ogdata
from ogdata import profile as P
from ogdata.errors import DatasetNotFoundError, OfflineError, ReferenceMissingError

ENV = "toy-chain"


def _chain(policy, episodes, T, rng):
    obs, act, rew = [], [], []
    for _ in range(episodes):
        s = 0
        obs.append(s)
        for _t in range(T):
            a = 1 if policy == "expert" else int(rng.integers(2))
            s = s + 1 if a == 1 else max(s - 1, 0)
            act.append(a)
            rew.append(float(s))
            obs.append(s)
    return np.asarray(obs, np.float32)[:, None], np.asarray(act), np.asarray(rew, np.float32), [T] * episodes


def _write(path, obs, act, rew, lengths, tier, ma=False, **kw):
    n = len(act)
    term = np.zeros(rew.shape, bool)
    trunc = np.zeros_like(term)
    trunc[np.cumsum(lengths) - 1] = True
    meta = {"env_id": ENV + ("-ma" if ma else ""), "tier": tier,
            "dataset_id": f"{ENV}{'-ma' if ma else ''}/{tier}-v0",
            "reference_returns": {"random": 4.0, "expert": 36.0},
            "recipe": {"behaviour": {"normalised_score": 55.0}} if tier == "good" else {}}
    assert len(obs) == n + len(lengths)
    return ogdata.create_dataset(path, observations=obs, actions=act, rewards=rew, terminations=term,
                                 truncations=trunc, episode_lengths=np.asarray(lengths), metadata=meta, **kw)


def _cells(ds, state="observations"):
    """Brute force: the set of (state, action) tuples of a dataset whose values are small integers (so each
    value is its own bin at 100 bins), taking the state each action was taken in (T+1 layout)."""
    a = ds.arrays()
    lengths = a["episode_lengths"]
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    rows = [s + t for s, L in zip(starts.tolist(), lengths.tolist()) for t in range(L)]
    return {(tuple(np.ravel(a[state][r]).tolist()), tuple(np.ravel(a["actions"][i]).tolist()))
            for i, r in enumerate(rows)}


@pytest.fixture()
def env_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / ENV
    rnd, exp = _chain("random", 20, 8, rng), _chain("expert", 4, 8, rng)
    _write(root / "random-v0", *rnd, "random")
    _write(root / "good-v0", *exp, "good")
    replay = tuple(np.concatenate([a, b]) for a, b in zip(rnd[:3], exp[:3])) + (rnd[3] + exp[3],)
    _write(root / "replay-v0", *replay, "replay")
    return root


def test_profile_json_with_default_replay_reference(env_dir, capsys):
    assert P.run_profile(str(env_dir / "good-v0"), None, True, None) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["tq"] == pytest.approx(1.0)                      # expert return 36 == R_expert
    assert prof["unique_state_actions"] == 8                     # (0..7, right)
    assert prof["reference"] == f"{ENV}/replay-v0"
    assert prof["behaviour_normalised_score"] == 55.0
    ref_cells = _cells(ogdata.load(env_dir / "replay-v0"))
    assert prof["saco"] == 8 / len(ref_cells) and prof["num_episodes"] == 4
    assert prof["reference_unique_state_actions"] == len(ref_cells)


def test_profile_falls_back_to_the_envs_registered_reference_returns(env_dir, capsys):
    from ogdata.policies import reference_returns

    env = ogdata.list_envs(multi_agent=False)[0]
    refs = reference_returns(env)
    path = env_dir / "random-v0"
    ogdata.storage.update_metadata(path, env_id=env, reference_returns={})       # the dataset records none
    assert P.run_profile(str(path), str(path), True, None) == 0
    prof = json.loads(capsys.readouterr().out)
    mean = ogdata.load(path).episode_returns().mean()
    assert prof["reference_returns"] == refs
    assert prof["tq"] == pytest.approx((mean - refs["random"]) / (refs["expert"] - refs["random"]))


def test_profile_table_and_plot(env_dir, tmp_path, capsys):
    out = tmp_path / "figs" / "profile.png"
    assert P.run_profile(str(env_dir / "random-v0"), None, False, str(out)) == 0
    text = capsys.readouterr().out
    for word in ("TQ", "SACo", "transitions", "return mean", "behaviour normalised score", str(out)):
        assert word in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pts = P.env_points(ogdata.load(env_dir / "random-v0"), ogdata.load(env_dir / "replay-v0"))
    assert [p["tier"] for p in pts] == ["random", "good", "replay"]           # tier order of the figure
    by = {p["tier"]: p for p in pts}
    assert by["replay"]["saco"] == 1.0 and by["random"]["saco"] > by["good"]["saco"]
    assert by["good"]["tq"] == pytest.approx(1.0)


def test_explicit_reference_and_missing_reference(env_dir, tmp_path, capsys):
    assert P.run_profile(str(env_dir / "good-v0"), str(env_dir / "random-v0"), True, None) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["reference"] == f"{ENV}/random-v0"
    lonely = tmp_path / "elsewhere" / "good-v0"
    lonely.parent.mkdir()
    (env_dir / "good-v0").rename(lonely)
    with pytest.raises(ReferenceMissingError, match=f"{ENV}/replay-v0.*ogdata download"):
        P.run_profile(str(lonely), None, True, None)
    # the CLI turns it into a clear message and exit code 1 (2 is for a wrong command line)
    from ogdata.cli import main

    assert main(["profile", str(lonely)]) == 1
    assert "replay-v0" in capsys.readouterr().err


def test_reference_found_in_cache(tmp_path, capsys, _isolated_home):
    env = ogdata.list_envs(multi_agent=False)[0]        # ids resolve only for registered envs
    rng = np.random.default_rng(2)
    cache = _isolated_home / "datasets" / env
    for tier, where in (("replay", cache), ("good", tmp_path / "mine")):
        ds = _write(where / f"{tier}-v0", *_chain("random", 5, 8, rng), tier)
        ogdata.storage.update_metadata(ds.path, env_id=env, dataset_id=f"{env}/{tier}-v0")
    assert P.resolve_reference(ogdata.load(tmp_path / "mine" / "good-v0")).path == cache / "replay-v0"
    assert P.run_profile(f"{env}/replay-v0", None, True, None) == 0          # an id resolved in the cache
    assert json.loads(capsys.readouterr().out)["saco"] == 1.0


def test_multi_agent_profile(tmp_path, capsys):
    rng = np.random.default_rng(1)
    root = tmp_path / f"{ENV}-ma"

    def ma(n_ep, T):
        n = n_ep * T
        obs = rng.integers(0, 3, size=(n + n_ep, 2, 2)).astype(np.float32)
        st = rng.integers(0, 3, size=(n + n_ep, 3)).astype(np.float32)
        act = rng.integers(0, 2, size=(n, 2))
        rew = rng.standard_normal((n, 2)).astype(np.float32)
        return obs, act, rew, [T] * n_ep, st

    for tier, n_ep in (("replay", 12), ("good", 3)):
        obs, act, rew, lengths, st = ma(n_ep, 5)
        _write(root / f"{tier}-v0", obs, act, rew, lengths, tier, ma=True, states=st, agents=["x", "y"],
               action_space=spaces.Discrete(2))
    out = tmp_path / "ma.png"
    assert P.run_profile(str(root / "good-v0"), None, True, str(out)) == 0
    prof = json.loads(capsys.readouterr().out)
    good, replay = ogdata.load(root / "good-v0"), ogdata.load(root / "replay-v0")
    assert set(prof["oaco_per_agent"]) == {"x", "y"}
    assert prof["saco"] == len(_cells(good, "states")) / len(_cells(replay, "states"))
    assert prof["agents"] == ["x", "y"] and out.is_file()
    assert P.run_profile(str(root / "good-v0"), None, False, None) == 0
    assert "OACo" in capsys.readouterr().out


def test_show_from_metadata_alone(env_dir, capsys, monkeypatch):
    ogdata.storage.update_metadata(env_dir / "good-v0", measures={"tq": 1.0, "saco": 0.25})
    assert P.run_show(str(env_dir / "good-v0")) == 0
    text = capsys.readouterr().out
    for word in (f"{ENV}/good-v0", "Box", "Discrete(2)", "32 · 4", "tq 1", "saco 0.25", "55", "normalised_score"):
        assert word in text
    s = P.show_summary(ogdata.load(env_dir / "good-v0").metadata)
    assert s["size_bytes"] > 0 and s["num_transitions"] == 32
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        P.run_show(f"{ENV}/medium-v0")
    with pytest.raises(DatasetNotFoundError, match="not a dataset id"):
        P.run_show("no/such/thing")
