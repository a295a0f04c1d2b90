"""scripts/saco_sensitivity.py: tier order, Kendall tau-b and the per-setting coarse SACo, on tiny constructed cases."""

import math

import numpy as np
import pytest

import ogdata
from tests.conftest import make_flat_episodes
from tests.scripts import load_script


@pytest.fixture(scope="module")
def sens():
    return load_script("saco_sensitivity")


BASE = {"good": 0.5, "medium": 0.3, "poor": 0.9, "replay": 1.0, "random": 1.2}


def test_tier_order_and_kendall_tau_exact(sens):
    assert sens.tier_order(BASE) == ["random", "replay", "poor", "good", "medium"]
    # ties keep the TIERS order (good, medium, poor, replay, random)
    assert sens.tier_order({"random": 1.0, "replay": 1.0, "good": 0.2}) == ["replay", "random", "good"]
    assert sens.kendall_tau(BASE, BASE) == 1.0
    assert sens.kendall_tau(BASE, {t: -v for t, v in BASE.items()}) == -1.0
    swapped = {**BASE, "good": 0.2}                     # good and medium swap: 1 discordant pair of 10
    assert sens.kendall_tau(swapped, BASE) == pytest.approx(0.8, abs=1e-15)
    # tau-b with a tie in the first scoring: 2 concordant, 0 discordant, 1 tie -> 2 / sqrt(3 * 2)
    assert sens.kendall_tau({"x": 1, "y": 1, "z": 2}, {"x": 1, "y": 2, "z": 3}) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(sens.kendall_tau({"x": 1, "y": 1}, {"x": 1, "y": 2}))


def test_stability_rows_exact(sens):
    default = sens.DEFAULT
    other = (2, 1, 0.25)
    rows = sens.stability({default: BASE, other: {**BASE, "good": 0.2}})
    by = {(r["state_k"], r["action_k"], r["saturation"]): r for r in rows}
    assert by[default]["default"] and by[default]["same_order"] and by[default]["kendall_tau"] == 1.0
    assert not by[other]["default"] and not by[other]["same_order"]
    assert by[other]["order"] == ["random", "replay", "poor", "medium", "good"]
    assert by[other]["kendall_tau"] == pytest.approx(0.8, abs=1e-15)


def test_measure_on_constructed_tiers(sens, tmp_path):
    """A copy of the Replay tier covers exactly 1; a dataset of one repeated (obs, action) covers 1 cell."""
    arrays = make_flat_episodes(np.random.default_rng(0), [40] * 10, obs_dim=5, act_dim=2)
    replay = ogdata.create_dataset(tmp_path / "replay", metadata={"env_id": "x", "tier": "replay"}, **arrays)
    same = ogdata.create_dataset(tmp_path / "random", metadata={"env_id": "x", "tier": "random"}, **arrays)
    const = dict(arrays)
    const["observations"] = np.full_like(arrays["observations"], 0.25)
    const["actions"] = np.full_like(arrays["actions"], -0.5)
    one = ogdata.create_dataset(tmp_path / "good", metadata={"env_id": "x", "tier": "good"}, **const)
    settings = {"components": ((2, 1), (4, 2), (6, 3)), "saturations": (0.5, 0.75)}
    values, grids = sens.measure({"replay": replay, "random": same, "good": one}, **settings)
    assert set(values) == {(s, a, q) for s, a in settings["components"] for q in settings["saturations"]}
    for key, v in values.items():
        assert v["replay"] == 1.0 and v["random"] == 1.0
        ref_cells = grids[key]["reference_cells"]
        assert v["good"] == 1.0 / ref_cells and ref_cells <= key[2] * len(replay)   # the saturation target holds
        s, a, _ = key
        assert grids[key]["dims"] == min(s, 5) + min(a, 2)   # components capped by the block's width


def test_swapped_pairs_exact(sens):
    base = ["random", "replay", "poor", "good", "medium"]
    assert sens.swapped_pairs(base, base) == []
    assert sens.swapped_pairs(["replay", "random", "poor", "medium", "good"], base) == ["replay/random", "good/medium"]
    # BASE sorted: random 1.2, replay 1.0, poor 0.9, good 0.5, medium 0.3 -> largest gap 0.4 between poor and good
    broad, narrow = sens.largest_gap_split(BASE)
    assert (broad, narrow) == (["random", "replay", "poor"], ["good", "medium"])
    assert sens.split_holds(BASE, broad, narrow) and not sens.split_holds({**BASE, "good": 0.95}, broad, narrow)
    assert not sens.split_holds({**BASE, "good": 0.9}, broad, narrow)   # a tie is not "more"
