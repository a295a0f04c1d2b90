"""The figures a finance reader looks for first, computed from wealth paths.

Every function takes a batch of paths (B, T+1) — or one path (T+1,) — and returns one
value per path, so a whole evaluation batch is scored without a Python loop.

Two kinds of wealth path occur in ogdata's envs:
- *capital* paths (portfolio, trading): wealth starts positive, so per-step simple returns
  r_t = W_t / W_{t-1} − 1 exist and annualised return, volatility, Sharpe and Sortino are
  the usual ones;
- *PnL* paths (market making, execution): wealth is a profit-and-loss starting at 0, so
  per-step figures use the PnL increments ΔW_t instead of returns, and drawdowns are in
  currency units rather than fractions.
`summary` picks the kind from the starting wealth and says which one it used.
"""

from __future__ import annotations

import numpy as np

TRADING_DAYS = 252


def _paths(wealth) -> np.ndarray:
    w = np.asarray(wealth, dtype=np.float64)
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[1] < 2:
        raise ValueError(f"wealth must be (T+1,) or (B, T+1) with T >= 1, got shape {np.shape(wealth)}")
    return w


def _out(x: np.ndarray, wealth) -> np.ndarray | float:
    return float(x[0]) if np.ndim(wealth) == 1 else x


def simple_returns(wealth) -> np.ndarray:
    """r_t = W_t / W_{t-1} − 1, shape (B, T) (or (T,) for one path)."""
    w = _paths(wealth)
    r = w[:, 1:] / w[:, :-1] - 1.0
    return r[0] if np.ndim(wealth) == 1 else r


def annualised_return(wealth, periods_per_year: float = TRADING_DAYS):
    """Geometric (CAGR): (W_T / W_0)^(P/T) − 1."""
    w = _paths(wealth)
    T = w.shape[1] - 1
    return _out((w[:, -1] / w[:, 0]) ** (periods_per_year / T) - 1.0, wealth)


def annualised_volatility(returns, periods_per_year: float = TRADING_DAYS):
    """Sample standard deviation of per-period returns (ddof=1) × √P."""
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    v = r.std(axis=1, ddof=1) * np.sqrt(periods_per_year) if r.shape[1] > 1 else np.full(len(r), np.nan)
    return float(v[0]) if np.ndim(returns) == 1 else v


def sharpe_ratio(returns, periods_per_year: float = TRADING_DAYS, risk_free: float = 0.0):
    """mean(r − rf/P) / std(r, ddof=1) × √P; NaN when the returns do not vary."""
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64)) - risk_free / periods_per_year
    sd = r.std(axis=1, ddof=1) if r.shape[1] > 1 else np.zeros(len(r))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(sd > 0, r.mean(axis=1) / np.where(sd > 0, sd, 1.0) * np.sqrt(periods_per_year), np.nan)
    return float(s[0]) if np.ndim(returns) == 1 else s


def sortino_ratio(returns, periods_per_year: float = TRADING_DAYS, target: float = 0.0):
    """mean(r − target) / downside deviation × √P, downside deviation = √mean(min(r − target, 0)²).

    NaN when no period falls below the target (no downside to divide by)."""
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64)) - target
    dd = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dd > 0, r.mean(axis=1) / np.where(dd > 0, dd, 1.0) * np.sqrt(periods_per_year), np.nan)
    return float(s[0]) if np.ndim(returns) == 1 else s


def max_drawdown(wealth, relative: bool = True):
    """Largest peak-to-trough fall: max_t (1 − W_t / max_{s≤t} W_s) (relative) or max_t (peak − W_t)."""
    w = _paths(wealth)
    peak = np.maximum.accumulate(w, axis=1)
    dd = (1.0 - w / peak) if relative else (peak - w)
    return _out(dd.max(axis=1), wealth)


def turnover(traded_value, wealth):
    """Mean per-step one-way turnover: Σ|traded value| / wealth before the trade, averaged over steps.

    traded_value (B, T) in currency; wealth (B, T+1)."""
    w = _paths(wealth)
    tv = np.atleast_2d(np.abs(np.asarray(traded_value, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (tv / w[:, :-1]).mean(axis=1)
    return _out(t, wealth)


def implementation_shortfall(cash_received, shares, arrival_price):
    """(X·S_0 − cash received) / (X·S_0): the fraction of the arrival value lost to impact and risk."""
    paper = np.asarray(shares, dtype=np.float64) * np.asarray(arrival_price, dtype=np.float64)
    return (paper - np.asarray(cash_received, dtype=np.float64)) / paper


def inventory_risk(inventory):
    """Per path: the mean absolute inventory held, its standard deviation, and the inventory left at the end.

    inventory (B, T+1) or (T+1,); returns a dict of (B,) arrays (floats for one path)."""
    q = _paths(inventory)
    out = {"mean_abs_inventory": np.abs(q).mean(axis=1), "inventory_std": q.std(axis=1),
           "terminal_abs_inventory": np.abs(q[:, -1])}
    return {k: _out(v, inventory) for k, v in out.items()}


def summary(wealth, periods_per_year: float = TRADING_DAYS, turnover=None, inventory=None) -> dict:
    """Mean over paths of every applicable figure, plus which kind of path it was.

    turnover: per-step one-way turnover as a fraction of wealth, (B, T) (NaN where a path had
    already ended); reported as its mean per step and annualised (× P)."""
    w = _paths(wealth)
    out: dict[str, float | str] = {"periods_per_year": float(periods_per_year)}
    if (w > 0).all():
        r = simple_returns(w)
        out["wealth_kind"] = "capital"
        out["annualised_return"] = float(np.mean(annualised_return(w, periods_per_year)))
        out["annualised_volatility"] = float(np.mean(annualised_volatility(r, periods_per_year)))
        out["max_drawdown"] = float(np.mean(max_drawdown(w)))
    else:
        r = np.diff(w, axis=1)
        out["wealth_kind"] = "pnl"
        out["mean_final_pnl"] = float(np.mean(w[:, -1] - w[:, 0]))
        out["pnl_volatility"] = float(np.mean(annualised_volatility(r, periods_per_year)))
        out["max_drawdown_abs"] = float(np.mean(max_drawdown(w, relative=False)))
    for name, fn in (("sharpe", sharpe_ratio), ("sortino", sortino_ratio)):
        v = fn(r, periods_per_year)
        out[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    if turnover is not None:
        t = np.asarray(turnover, dtype=np.float64)
        out["turnover"] = float(np.nanmean(t))
        out["annual_turnover"] = out["turnover"] * float(periods_per_year)
    if inventory is not None:
        out.update({k: float(np.mean(v)) for k, v in inventory_risk(inventory).items()})
    return out


# -- protocol v1: the headline figures, per family, on the fixed evaluation markets -------------------
CAPITAL_FAMILIES = ("portfolio", "trading")
EXECUTION_FAMILIES = ("execution",)
MAKING_FAMILIES = ("market-making", "multi-market-making", "lob-market-making",  # lob: fills in lots
                   "lob-competing-makers")  # general-sum: the makers' joint figures (wealth, inventory, fills summed)
OPTION_FAMILIES = ("option-exercise",)
SPREAD_FAMILIES = ("stat-arb",)
LOB_EXECUTION_FAMILIES = ("lob-execution",)
LOB_DESK_FAMILIES = ("lob-desks",)   # the team reward is minus the firm's shortfall increment, in bp
MIXED_FAMILIES = ("lob-makers-and-executor",)   # agents' rewards in different units: no joint finance figure


def cvar(x, alpha: float = 0.05, tail: str = "lower") -> float:
    """Conditional value at risk: the mean of the worst `alpha` share of `x` (at least one value).

    tail="lower" for returns (the worst are the smallest), "upper" for losses such as shortfall."""
    v = np.sort(np.asarray(x, dtype=np.float64).ravel())
    if v.size == 0 or not 0.0 < alpha <= 1.0:
        raise ValueError(f"cvar needs a non-empty sample and alpha in (0, 1], got {v.size} values, alpha={alpha}")
    k = max(1, int(np.ceil(alpha * v.size)))
    return float(v[:k].mean() if tail == "lower" else v[-k:].mean())


def task_objective(task, returns) -> float:
    """A risk task's objective (`ogdata.envs.risk.RiskTask`) on a sample of episode returns:
    (1 − w)·mean + w·CVaR_α, the empirical lower-tail CVaR above (w = 1 for "cvar")."""
    x = np.asarray(returns, dtype=np.float64)
    w = task.weight if task.objective == "mean-cvar" else 1.0
    return float((1.0 - w) * x.mean() + w * cvar(x, task.alpha))


def _std1(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1)) if x.size > 1 else float("nan")


def cost_drag(family: str, costs, wealth) -> np.ndarray:
    """Per episode, the return lost to costs in the env's reward units: Σ −log(1 − C_t/W_{t−1}) for
    portfolio (log-growth reward), Σ C_t/W_{t−1} for trading (reward linear in the cost fraction)."""
    w = _paths(wealth)
    c = np.atleast_2d(np.asarray(costs, dtype=np.float64))[:, 1:]
    frac = c / w[:, :-1]
    return (-np.log1p(-frac) if family == "portfolio" else frac).sum(axis=1)


def _score_split(gross: float, cost: float, references: dict | None) -> dict[str, float]:
    """The normalised score split into what the gross return earns and what costs take away
    (score = score_gross − score_costs); nothing without references."""
    if not references:
        return {}
    gap = references["expert"] - references["random"]
    return {"score_gross": 100.0 * (gross - references["random"]) / gap, "score_costs": 100.0 * cost / gap}


def v1_figures(family: str, res: dict, periods_per_year: float | None, n_agents: int = 1,
               references: dict | None = None) -> dict[str, float | str | None]:
    """The v1 headline finance figures of one policy on a market set (see README, protocol v1).

    `res` is `baselines.evaluate.rollout`'s output (concatenated over rounds); `periods_per_year`
    is the env spec's: annualised figures only when it is given (daily-or-slower envs), per-episode
    figures otherwise. `references` {"random", "expert"} (means) splits the score into gross return
    and costs. Every std is a sample std (ddof = 1)."""
    R = np.asarray(res["returns"], dtype=np.float64)
    out: dict[str, float | str | None] = {
        "periods_per_year": None if periods_per_year is None else float(periods_per_year),
        "time_scale": "annualised" if periods_per_year else "per episode",
        "return_mean": float(R.mean()), "return_std": _std1(R), "return_cvar5": cvar(R, 0.05)}
    alive = np.asarray(res["alive"], dtype=bool)
    if family in CAPITAL_FAMILIES:
        if not periods_per_year:
            raise ValueError(f"{family} envs are daily: their spec must state periods_per_year")
        P, W = float(periods_per_year), _paths(res["wealth"])
        L = alive.sum(axis=1)
        out["annualised_log_return"] = float(np.mean(np.log(W[:, -1] / W[:, 0]) * P / L))
        r = simple_returns(W)
        lr = np.log1p(r)
        out["annualised_volatility"] = float(np.mean(annualised_volatility(lr, P)))
        for name, fn in (("sharpe", sharpe_ratio), ("sortino", sortino_ratio)):
            v = fn(r, P)  # NaN where a path has no spread (Sharpe) or no downside (Sortino)
            out[name] = float(np.nanmean(v)) if np.isfinite(v).any() else None  # undefined: JSON null
        out["max_drawdown"] = float(np.mean(max_drawdown(W)))
        if "turnover" in res:
            t = np.asarray(res["turnover"], dtype=np.float64)[:, 1:]
        else:
            t = np.abs(np.diff(np.asarray(res["position"], dtype=np.float64), axis=1))
        out["turnover_per_step"] = float(np.mean(np.where(alive, t, 0.0).sum(axis=1) / L))
        out["annual_turnover"] = out["turnover_per_step"] * P
        drag = cost_drag(family, res["costs"], W)
        out["gross_return_mean"] = float(np.mean(R + drag))
        out["cost_mean"] = float(np.mean(drag))
        out.update(_score_split(out["gross_return_mean"], out["cost_mean"], references))
    elif family in EXECUTION_FAMILIES:
        W0 = _paths(res["wealth"])[:, 0]  # arrival value X·S0
        bp = np.asarray(res["shortfall"], dtype=np.float64)[:, -1] / W0 * 1e4
        out["shortfall_bp_mean"] = float(bp.mean())
        out["shortfall_bp_std"] = _std1(bp)
        out["shortfall_bp_cvar95"] = cvar(bp, 0.05, tail="upper")
        X = np.asarray(res["inventory"], dtype=np.float64)[:, 0]
        out["share_dumped_mean"] = float(np.mean(np.asarray(res["dumped"]) / X))
        out["episodes_with_dump"] = float(np.mean(np.asarray(res["dumped"]) > 1e-9 * X))
    elif family in LOB_EXECUTION_FAMILIES:
        # the order book's return is minus the implementation shortfall in bp of the arrival value; the
        # lots the last step leaves are dumped by one market order (not part of info["fills"])
        bp = -R
        out["shortfall_bp_mean"] = float(bp.mean())
        out["shortfall_bp_std"] = _std1(bp)
        out["shortfall_bp_cvar95"] = cvar(bp, 0.05, tail="upper")
        X = np.asarray(res["inventory"], dtype=np.float64)[:, 0]
        sold = np.where(alive, np.asarray(res["fills"], dtype=np.float64)[:, 1:], 0.0).sum(axis=1)
        dumped = X - sold
        out["share_dumped_mean"] = float(np.mean(dumped / X))
        out["episodes_with_dump"] = float(np.mean(dumped > 0.5))
    elif family in LOB_DESK_FAMILIES:   # desks buy and sell: no single dump share; the firm's shortfall
        bp = -R
        out["shortfall_bp_mean"] = float(bp.mean())
        out["shortfall_bp_std"] = _std1(bp)
        out["shortfall_bp_cvar95"] = cvar(bp, 0.05, tail="upper")
    elif family in MIXED_FAMILIES:
        out["note"] = ("makers earn PnL in ticks, the executor minus its shortfall in bp (different units): the joint return "
                       "statistics above are the only joint figures; per-agent scores are in the references")
    elif family in MAKING_FAMILIES:
        W = _paths(res["wealth"])
        pnl = W[:, -1] - W[:, 0]
        out["pnl_mean"] = float(pnl.mean())
        out["pnl_std"] = _std1(pnl)
        q = np.asarray(res["inventory"], dtype=np.float64)
        full = np.concatenate([np.ones((len(q), 1), dtype=bool), alive], axis=1)
        n = full.sum(axis=1)
        mq = np.where(full, q, 0.0).sum(axis=1) / n
        var = np.where(full, (q - mq[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(n - 1, 1)
        out["inventory_std"] = float(np.mean(np.sqrt(var)))
        out["terminal_abs_inventory"] = float(np.mean(np.abs(q[:, -1])))
        fills = np.where(alive, np.asarray(res["fills"], dtype=np.float64)[:, 1:], 0.0).sum(axis=1)
        out["fill_rate"] = float(np.mean(fills / (2.0 * n_agents * alive.sum(axis=1))))
    elif family in OPTION_FAMILIES:  # one discounted payoff an episode: when the holder exercised
        early = np.asarray(res["exercised"], dtype=np.float64)[:, -1] > 0   # frozen at the final step
        life = alive.sum(axis=1)
        out["early_exercise_rate"] = float(early.mean())
        out["mean_steps_held"] = float(life.mean())
        out["mean_steps_to_early_exercise"] = float(life[early].mean()) if early.any() else None
    elif family in SPREAD_FAMILIES:  # P&L per unit of spread (additive, not a return on capital)
        if not periods_per_year:
            raise ValueError(f"{family} envs state their step: their spec must state periods_per_year")
        P = float(periods_per_year)
        pnl = _paths(res["pnl"])
        inc = np.where(alive, np.diff(pnl, axis=1), np.nan)
        n = alive.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.nanstd(inc, axis=1, ddof=1)
            sharpe = np.where(sd > 0, np.nanmean(inc, axis=1) / np.where(sd > 0, sd, 1.0) * np.sqrt(P), np.nan)
        out["pnl_mean"], out["pnl_std"] = float(R.mean()), _std1(R)
        out["annualised_sharpe"] = float(np.nanmean(sharpe)) if np.isfinite(sharpe).any() else None
        out["max_drawdown"] = float(np.mean(max_drawdown(pnl, relative=False)))
        t = np.abs(np.diff(np.asarray(res["position"], dtype=np.float64), axis=1))
        out["turnover_per_step"] = float(np.mean(np.where(alive, t, 0.0).sum(axis=1) / n))
        cost = np.where(alive, np.asarray(res["costs"], dtype=np.float64)[:, 1:], 0.0).sum(axis=1)
        out["gross_return_mean"] = float(np.mean(R + cost))
        out["cost_mean"] = float(np.mean(cost))
        out.update(_score_split(out["gross_return_mean"], out["cost_mean"], references))
    else:
        raise ValueError(f"no v1 finance figures for family {family!r}; add them to baselines/finance.py")
    return out
