"""baselines.analysis: exact rank correlations, and which datasets enter the measures-vs-scores check."""

import numpy as np
import pytest

from baselines.analysis import markdown, measure_links, plot, ranks, spearman


def test_ranks_average_ties():
    np.testing.assert_array_equal(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(ranks([3, 3, 3]), [2, 2, 2])


def test_spearman_exact_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks only: y ranks [1, 5, 2, 3, 4], d² sums to 12, rho = 1 - 6 * 12 / (5 * 24)
    assert spearman([1, 2, 3, 4, 5], [1, 100, 2, 3, 4]) == pytest.approx(1 - 72 / 120)
    # with ties: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4] -> Pearson of the ranks = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])


def _cell(score):
    return {"last_mean": score}


def test_measure_links_rows_and_correlations(tmp_path):
    table = {
        "a/good-v0": {"multi_agent": False, "tier": "good", "algos": {"bc": _cell(90), "cql": _cell(91), "iql": _cell(80)}},
        "a/medium-v0": {"multi_agent": False, "tier": "medium", "algos": {"bc": _cell(50), "iql": _cell(60)}},
        "a/random-v0": {"multi_agent": False, "tier": "random", "algos": {"bc": _cell(5), "cql": _cell(30)}},
        "m/good-v0": {"multi_agent": True, "tier": "good", "algos": {"mabc": _cell(70), "iiql": _cell(69)}},
        "a/poor-v0": {"multi_agent": False, "tier": "poor", "algos": {"cql": _cell(20)}},        # no BC: left out
        "a/replay-v0": {"multi_agent": False, "tier": "replay", "algos": {"bc": _cell(70), "cql": _cell(75)}},
    }
    measures = {"a/good-v0": {"tq": 0.9, "saco": 1.0, "saco_coarse": 0.3},
                "a/medium-v0": {"tq": 0.5, "saco": 1.0, "saco_coarse": 0.5},
                "a/random-v0": {"tq": 0.0, "saco": 1.0, "saco_coarse": 1.2},
                "m/good-v0": {"tq": 0.7, "saco": 1.0, "saco_coarse": 0.2},
                "a/poor-v0": {"tq": 0.2, "saco": 1.0, "saco_coarse": 0.9}}                   # replay: no measures
    links = measure_links(table, measures)
    assert links["n_datasets"] == 4
    rows = {r["dataset"]: r for r in links["datasets"]}
    assert rows["a/good-v0"]["best_rl_algo"] == "cql" and rows["a/good-v0"]["gain"] == 1.0
    assert rows["m/good-v0"]["bc"] == 70 and rows["m/good-v0"]["gain"] == -1.0   # MABC is the BC of multi-agent data
    # BC scores 90, 50, 5, 70 against TQ 0.9, 0.5, 0.0, 0.7: the same order
    assert links["spearman"]["bc_vs_tq"] == pytest.approx(1.0)
    # gains 1, 10, 25, -1 against coarse SACo 0.3, 0.5, 1.2, 0.2: the same order
    assert links["spearman"]["gain_vs_saco_coarse"] == pytest.approx(1.0)
    assert np.isnan(links["spearman"]["gain_vs_saco"])   # constant SACo says nothing
    md = markdown(links)
    assert "over the 4 datasets" in md and "| BC's score tracks TQ | +1.00 |" in md and "n/a" in md
    plot(tmp_path / "m.png", links, "test")
    assert (tmp_path / "m.png").stat().st_size > 5000
    assert measure_links({}, {})["n_datasets"] == 0 and markdown(measure_links({}, {})) == ""
