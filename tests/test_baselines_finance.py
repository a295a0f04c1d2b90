"""Finance figures of baselines.finance against values computed by hand."""

import numpy as np
import pytest

from baselines import finance

# returns +10 %, −10 %, +10 %: mean 1/30, sample std 0.11547 = 0.2/√3
W = np.array([100.0, 110.0, 99.0, 108.9])


def test_returns_and_annualised_figures():
    np.testing.assert_allclose(finance.simple_returns(W), [0.1, -0.1, 0.1])
    # three periods a year over three periods: the annualised return is the total return
    assert finance.annualised_return(W, periods_per_year=3) == pytest.approx(0.089)
    # 252 periods a year: (1.089)^(252/3) − 1
    assert finance.annualised_return(W) == pytest.approx(1.089 ** 84 - 1)
    r = finance.simple_returns(W)
    assert finance.annualised_volatility(r, periods_per_year=3) == pytest.approx(0.2)
    assert finance.sharpe_ratio(r, periods_per_year=3) == pytest.approx(0.5)
    # downside deviation √(0.01/3): Sortino = (1/30) / 0.057735 × √3 = 1
    assert finance.sortino_ratio(r, periods_per_year=3) == pytest.approx(1.0)
    # risk-free 3 % a year = 1 % a period: (1/30 − 0.01) / 0.11547 × √3 = 0.35
    assert finance.sharpe_ratio(r, periods_per_year=3, risk_free=0.03) == pytest.approx(0.35)


def test_drawdown_turnover_shortfall_inventory():
    assert finance.max_drawdown(W) == pytest.approx(0.1)  # 110 -> 99
    assert finance.max_drawdown([0.0, 1.0, 0.0, 2.0], relative=False) == pytest.approx(1.0)
    assert finance.max_drawdown([1.0, 2.0, 3.0]) == 0.0
    assert finance.turnover([10.0, 0.0, 20.0], W) == pytest.approx((0.1 + 20 / 99) / 3)
    assert finance.implementation_shortfall(95.0, 2, 50.0) == pytest.approx(0.05)
    inv = finance.inventory_risk([0.0, 2.0, -2.0, 0.0])
    assert inv["mean_abs_inventory"] == pytest.approx(1.0)
    assert inv["inventory_std"] == pytest.approx(np.sqrt(2.0))
    assert inv["terminal_abs_inventory"] == 0.0


def test_batched_paths_match_single_paths():
    paths = np.stack([W, W[::-1].copy(), np.array([100.0, 101.0, 102.0, 103.0])])
    dd = finance.max_drawdown(paths)
    assert dd.shape == (3,)
    for i, p in enumerate(paths):
        assert dd[i] == pytest.approx(finance.max_drawdown(p))
        assert finance.annualised_return(paths)[i] == pytest.approx(finance.annualised_return(p))
    # a steadily rising path has no downside: its Sortino ratio is undefined, not infinite
    assert np.isnan(finance.sortino_ratio(finance.simple_returns(paths[2])))


def test_summary_picks_capital_or_pnl():
    cap = finance.summary(W, periods_per_year=3, turnover=[[0.1, 0.0, np.nan]], inventory=[0, 2, -2, 0])
    assert cap["wealth_kind"] == "capital"
    assert cap["sharpe"] == pytest.approx(0.5)
    assert cap["max_drawdown"] == pytest.approx(0.1)
    assert cap["turnover"] == pytest.approx(0.05)  # steps after the end (NaN) do not count
    assert cap["annual_turnover"] == pytest.approx(0.15)
    assert cap["mean_abs_inventory"] == pytest.approx(1.0)
    pnl = finance.summary([0.0, 1.0, 0.0, 2.0], periods_per_year=3)
    assert pnl["wealth_kind"] == "pnl"
    assert pnl["mean_final_pnl"] == pytest.approx(2.0)
    assert pnl["max_drawdown_abs"] == pytest.approx(1.0)
    # increments +1, −1, +2: mean 2/3, sample std √(7/3)
    assert pnl["sharpe"] == pytest.approx((2 / 3) / np.sqrt(7 / 3) * np.sqrt(3))


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="wealth must be"):
        finance.max_drawdown([100.0])
    with pytest.raises(ValueError, match="wealth must be"):
        finance.annualised_return(np.ones((2, 2, 2)))
