import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# the learner tests train on this device: OGDATA_TEST_DEVICE=cuda runs them on the GPU path (CI runs them on cpu)
TEST_DEVICE = os.environ.get("OGDATA_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own OGDATA_HOME so nothing touches the user's cache."""
    home = tmp_path_factory.mktemp("ogdata_home")
    monkeypatch.setenv("OGDATA_HOME", str(home))
    yield home


def make_flat_episodes(rng, lengths, obs_dim=3, act_dim=2, discrete=None, n_agents=None, state_dim=4):
    """Random T+1-layout arrays for the given episode lengths (last step flagged term or trunc)."""
    lengths = np.asarray(lengths)
    n, e = int(lengths.sum()), len(lengths)
    lead_o = (n + e, n_agents) if n_agents else (n + e,)
    lead_t = (n, n_agents) if n_agents else (n,)
    obs = rng.standard_normal(lead_o + (obs_dim,)).astype(np.float32)
    if discrete:
        act = rng.integers(0, discrete, size=lead_t)
    else:
        act = rng.uniform(-1, 1, size=lead_t + (act_dim,)).astype(np.float32)
    rew = rng.standard_normal(lead_t).astype(np.float32)
    ends = np.cumsum(lengths) - 1
    kind = rng.integers(0, 2, size=e).astype(bool)
    term = np.zeros(lead_t, bool)
    trunc = np.zeros(lead_t, bool)
    term[ends[kind]] = True
    trunc[ends[~kind]] = True
    out = dict(observations=obs, actions=act, rewards=rew, terminations=term, truncations=trunc,
               episode_lengths=lengths)
    if n_agents:
        out["states"] = rng.standard_normal((n + e, state_dim)).astype(np.float32)
        out["agents"] = [f"agent_{i}" for i in range(n_agents)]
    return out
