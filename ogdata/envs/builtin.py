"""The built-in environment ids, as data: what each id means, nothing imported.

`ogdata.envs` registers these on import (Gymnasium's `gymnasium/envs/__init__.py` pattern):
every core is a "module:Class" string made on first use, and every reference policy a name
that `ogdata.policies` resolves. The economics of each family are in its module's docstring.
"""

from __future__ import annotations

from ogdata.envs.registry import EnvSpec

# -- portfolio ---------------------------------------------------------------------------------
# time scale, as data: daily envs annualise with 252 trading days; intraday envs never annualise
DAILY = {"step": "1 trading day", "periods_per_year": 252}
MONTHLY = {"step": "1 month", "periods_per_year": 12}
# FX trades around the clock on weekdays: 24 h × 5 days × 52 weeks (a weekend is one step)
HOURLY = {"step": "1 hour (FX, weekdays; a weekend is one step)", "periods_per_year": 6240}
_PF_REFS = {"random": "random", "expert": "portfolio/equal-weight"}
_PF_CORE = "ogdata.envs.portfolio:Portfolio"
_PF_DOC = ("20 S&P 500 stocks + cash, daily, 252-step episodes from random start dates; Box [0,1]^21 "
           "target weights normalised onto the simplex; 10 bp costs on turnover; reward log wealth growth.")
_FF_KW = {"source": "real", "universe": "ff", "n_steps": 60, "window": 12}
_FF_REFS = {"random": "random", "expert": "portfolio/kelly"}
_FF_DOC = ("Fama–French factors Mkt-RF, SMB, HML (each held on T-bill collateral) + cash at RF, monthly, "
           "60-month episodes from random start months; Box [0,1]^4 target weights normalised onto the simplex, "
           "portfolio return RF + Σ w_i·F_i; 10 bp costs on turnover; reward log wealth growth; "
           "leverage= and short= kwargs.")
PORTFOLIO = (
    EnvSpec("portfolio-sp500", _PF_CORE, {"source": "real", "period": "train"}, family="portfolio", **DAILY,
            description="Training years 1990–2014. " + _PF_DOC, references=_PF_REFS, extras=("realdata",)),
    EnvSpec("portfolio-sp500-eval", _PF_CORE, {"source": "real", "period": "eval"}, family="portfolio", **DAILY,
            description="Held-out evaluation years 2015–2022. " + _PF_DOC, references=_PF_REFS,
            extras=("realdata",)),
    EnvSpec("portfolio-ff", _PF_CORE, {**_FF_KW, "period": "train"}, family="portfolio", **MONTHLY,
            description="Training months 1926-07 → 1989-12. " + _FF_DOC, references=_FF_REFS,
            extras=("realdata",)),
    EnvSpec("portfolio-ff-eval", _PF_CORE, {**_FF_KW, "period": "eval"}, family="portfolio", **MONTHLY,
            description="Held-out evaluation months 1990-02 → 2018-11. " + _FF_DOC, references=_FF_REFS,
            extras=("realdata",)),
    EnvSpec("portfolio-synth", _PF_CORE, {"source": "gbm"}, family="portfolio", **DAILY,
            description="Correlated GBM calibrated on the 1990–2014 moments of the 20 stocks; fresh "
                        "path every episode. " + _PF_DOC, references=_PF_REFS),
    EnvSpec("portfolio-synth-regime", _PF_CORE, {"source": "regime"}, family="portfolio", **DAILY,
            description="Two-regime Gaussian HMM calibrated on the 1990–2014 returns of the 20 stocks; "
                        "fresh path every episode. " + _PF_DOC, references=_PF_REFS),
)

# -- trading -----------------------------------------------------------------------------------
_TR_REFS = {"random": "random", "expert": "trading/always-long"}
_TR_CORE = "ogdata.envs.trading:Trading"
_TR_DOC = ("S&P 500 index, daily, 252-step episodes from random start dates; Discrete(3) short/flat/long; "
           "10 bp costs on position changes; reward position × return − costs.")
_WTI_KW = {"source": "real", "universe": "wti"}
_WTI_REFS = {"random": "random", "expert": "trading/always-long"}
_WTI_DOC = ("WTI spot crude (a price, not a tradable total return), daily, 252-step episodes from random start "
            "dates; Discrete(3) short/flat/long; 10 bp costs on position changes; reward position × return − costs.")
_FX_KW = {"source": "real", "universe": "eurusd", "n_steps": 120, "window": 24, "cost": 0.0001}
_FX_REFS = {"random": "random", "expert": "trading/always-long"}
_FX_DOC = ("EUR/USD hourly ask closes of 2017 (gym-anytrading, 6,225 bars), 120-hour episodes from random start "
           "hours; Discrete(3) short/flat/long; 1 bp costs on position changes (a spread of about 2.3 pips a "
           "round trip); reward position × return − costs.")
TRADING = (
    EnvSpec("trading-sp500", _TR_CORE, {"source": "real", "period": "train"}, family="trading", **DAILY,
            description="Training years 1999–2014. " + _TR_DOC, references=_TR_REFS, extras=("realdata",)),
    EnvSpec("trading-sp500-eval", _TR_CORE, {"source": "real", "period": "eval"}, family="trading", **DAILY,
            description="Held-out evaluation years 2015–2018. " + _TR_DOC, references=_TR_REFS,
            extras=("realdata",)),
    EnvSpec("trading-wti", _TR_CORE, {**_WTI_KW, "period": "train"}, family="trading", **DAILY,
            description="Training years 1986–2011. " + _WTI_DOC, references=_WTI_REFS, extras=("realdata",)),
    EnvSpec("trading-wti-eval", _TR_CORE, {**_WTI_KW, "period": "eval"}, family="trading", **DAILY,
            description="Held-out evaluation years 2012 → 2019-01-03. " + _WTI_DOC, references=_WTI_REFS,
            extras=("realdata",)),
    EnvSpec("trading-eurusd", _TR_CORE, {**_FX_KW, "period": "train"}, family="trading", **HOURLY,
            description="Training months 2017-01 → 2017-10. " + _FX_DOC, references=_FX_REFS,
            extras=("realdata",)),
    EnvSpec("trading-eurusd-eval", _TR_CORE, {**_FX_KW, "period": "eval"}, family="trading", **HOURLY,
            description="Held-out evaluation months 2017-11 → 2017-12 (about 1,000 hours). " + _FX_DOC,
            references=_FX_REFS, extras=("realdata",)),
    EnvSpec("trading-synth", _TR_CORE, {"source": "gbm"}, family="trading", **DAILY,
            description="GBM calibrated on the 1999–2014 S&P 500 index; fresh path every episode. " + _TR_DOC,
            references=_TR_REFS),
    EnvSpec("trading-synth-regime", _TR_CORE, {"source": "regime"}, family="trading", **DAILY,
            description="Two-regime Gaussian HMM (calm bull / turbulent bear) calibrated on the 1999–2014 "
                        "S&P 500 index; fresh path every episode. " + _TR_DOC, references=_TR_REFS),
)

# -- execution ---------------------------------------------------------------------------------
_EX_REFS = {"random": "random", "expert": "execution/ac-optimal"}
_EX_STEP = "1/4 trading day (20 steps over 5 days): intraday"
EXECUTION = (
    EnvSpec(
        id="execution-ac", core="ogdata.envs.execution:ExecutionMarket", family="execution", step=_EX_STEP,
        description="Liquidate 1e6 shares in 20 steps over 5 days under Almgren–Chriss dynamics "
                    "(Almgren & Chriss 2000 example parameters); reward = shortfall increment − λσ²τx², in bp.",
        references=_EX_REFS),
    EnvSpec(
        id="execution-ac-highvol", core="ogdata.envs.execution:ExecutionMarket", family="execution",
        kwargs={"sigma": 1.9}, step=_EX_STEP,
        description="execution-ac with twice the volatility (60 % a year): the AC schedule front-loads harder.",
        references=_EX_REFS),
) + tuple(
    EnvSpec(
        id=f"joint-execution-{n}", core="ogdata.envs.execution:JointExecutionMarket",
        kwargs={"n_agents": n}, multi_agent=True, family="execution", step=_EX_STEP,
        description=f"{n} desks of one firm liquidate a shared 1e6-share parent order (equal split) "
                    "with shared permanent and temporary impact; cooperative team reward by default "
                    "(mode='competitive' for each desk's own).",
        references={"random": "random", "expert": "execution/joint-ac"})
    for n in (2, 4)
)

# -- market making -----------------------------------------------------------------------------
_MM_STEP = "1/200 of a trading session (T = 1 in 200 steps): intraday"
MARKET_MAKING = (
    EnvSpec(
        id="market-making-as",
        core="ogdata.envs.market_making:MarketMaking",
        family="market-making", step=_MM_STEP,
        description="Avellaneda–Stoikov market making: Brownian mid (σ=2), Poisson market orders "
                    "(λ=100/side), fills with probability exp(−1.5δ), inventory penalties; 200 steps.",
        references={"random": "random", "expert": "market-making/avellaneda-stoikov"},
    ),
) + tuple(
    EnvSpec(
        id=f"multi-market-making-{n}",
        core="ogdata.envs.market_making:MultiMarketMaking",
        kwargs={"n_agents": n},
        multi_agent=True,
        family="multi-market-making", step=_MM_STEP,
        description=f"{n} market makers of one firm quote one asset; each market order fills the best "
                    "quote only (random tie-break); cooperative team reward with a firm-level penalty on "
                    "the summed inventory (mode='competitive': individual PnL and penalties).",
        references={"random": "random", "expert": "multi-market-making/cooperative-as"},
    )
    for n in (2, 3)
)

# -- option exercise ---------------------------------------------------------------------------
# per-episode figures: an episode pays one (discounted) payoff, nothing to annualise
_OX_CORE = "ogdata.envs.option_exercise:OptionExercise"
_OX_REFS = {"random": "random", "expert": "option-exercise/dp-optimal"}
_OX_STEP = "1/50 year (about 5 trading days); per-episode figures: one payoff an episode"
_OX_DOC = ("Hold or exercise a put (strike 100, 1 year, 50 steps, S0/K uniform in [0.95, 1.05]); Discrete(2) "
           "hold/exercise; reward the payoff discounted at r = 2.0 % (Fama–French T-bill rate, 1999–2014), "
           "exercised at maturity if in the money; risk-neutral prices, so the best expected return is the "
           "put's price.")
OPTION_EXERCISE = (
    EnvSpec("option-exercise-american", _OX_CORE, {"model": "gbm"}, family="option-exercise", step=_OX_STEP,
            description="GBM with σ = 20.2 % (S&P 500 index, 1999–2014); exercise at any step. " + _OX_DOC,
            references=_OX_REFS),
    EnvSpec("option-exercise-bermudan", _OX_CORE, {"model": "gbm", "exercise_every": 5}, family="option-exercise",
            step=_OX_STEP, description="GBM with σ = 20.2 %; exercise only every 5th step (10 dates a year, "
                                       "then maturity). " + _OX_DOC, references=_OX_REFS),
    EnvSpec("option-exercise-heston", _OX_CORE, {"model": "heston"}, family="option-exercise", step=_OX_STEP,
            description="Heston variance on a 41-level Markov chain fitted to the VIX of 2014–2018 (κ 11.7, "
                        "√θ 15.7 %, ξ 0.55, ρ −0.76), started from its stationary law; the volatility is "
                        "observed; exercise at any step. " + _OX_DOC, references=_OX_REFS),
)

# -- statistical arbitrage ---------------------------------------------------------------------
_SA_CORE = "ogdata.envs.stat_arb:StatArb"
_SA_REFS = {"random": "random", "expert": "stat-arb/dp-optimal"}
_SA_DOC = ("Trade the Brent − WTI spread, an Ornstein–Uhlenbeck process fitted to its 1987–2014 monthly "
           "values (half-life 16 months) simulated on a 201-level chain; Discrete(3) short/flat/long one "
           "unit; 60-month episodes; reward position × spread change − cost × |position change|, in $/bbl.")
STAT_ARB = (
    EnvSpec("stat-arb-brent-wti", _SA_CORE, {"cost": 0.05}, family="stat-arb", **MONTHLY,
            description="Costs $0.05 per unit traded. " + _SA_DOC, references=_SA_REFS),
    EnvSpec("stat-arb-brent-wti-costly", _SA_CORE, {"cost": 0.5}, family="stat-arb", **MONTHLY,
            description="Costs $0.50 per unit traded: a wide no-trade band. " + _SA_DOC, references=_SA_REFS),
)


# -- limit-order book ----------------------------------------------------------------------------
_LOB_STEP = "1 second of a Cont–Stoikov–Talreja order book: intraday"
_LOB_SOURCES = (
    "Background flow (default calibration `cst`): Cont, Stoikov & Talreja (2010), \"A stochastic model for order "
    "book dynamics\", Operations Research 58(3):549–563, Tokyo Stock Exchange estimates (their Section 2, "
    "Table 2; rates per second, volumes in average limit-order sizes): limit orders λ(i) = k/i^α at i ticks "
    "from the opposite quote with k = 1.92, α = 0.52; market orders μ = 0.94 a side; cancellation per resting "
    "lot θ(1..5) = 0.71, 0.81, 0.68, 0.56, 0.47, held at 0.47 beyond level 5 (ours). The queue-reactive "
    "calibration `qr` follows the shapes of Huang, Lehalle & Rosenbaum (2015), \"Simulating and analyzing order "
    "book data: the queue-reactive model\", JASA 110(509):107–122, with our numbers (λ = 1, θ(1..5) = 0.3, 0.2, "
    "0.15, 0.12, 0.1, μ = 1, a = 8, b = 2). Ours, not estimated: the informed-flow share (market orders that "
    "all take the side the reference price is about to leave), 10 levels a side, 1-second steps, the task "
    "sizes and horizons. Every parameter and the within-step event order: `ogdata/envs/lob.py`.")
_LOB_LATENT_STEP = "1 second of an order book with latent liquidity (calibration `latent`): intraday"
_LOB_LATENT_SOURCES = (
    "Calibration `latent`: Cont, Stoikov & Talreja (2010)'s Tokyo rates (μ = 0.94, θ(1..5) = 0.71, 0.81, 0.68, "
    "0.56, 0.47, α = 0.52) with a quarter of their limit arrivals (k = 0.48), plus the V-shaped latent liquidity "
    "of Donier, Bonart, Mastromatteo & Bouchaud (2015), \"A fully consistent, minimal model for non-linear market "
    "impact\", Quantitative Finance 15(7):1109–1121: extra limit arrivals κ·x lots/s at x ticks beyond a "
    "fundamental price that moves ±0.5 tick a second on a fair coin, on each side. Ours, chosen to put the "
    "metaorder impact of this book nearest the square-root law of Tóth et al. (2011), \"Anomalous price impact "
    "and the critical nature of liquidity in financial markets\", Phys. Rev. X 1:021006 (measured by "
    "`scripts/lob_impact.py`): κ = 1, the quarter, the fundamental's volatility and the early reference move. "
    "Also ours: the informed-flow share, 10 levels a side, 1-second steps, the task sizes and horizons. Every "
    "parameter and the within-step event order: `ogdata/envs/lob.py`.")
LOB = (
    EnvSpec(
        id="lob-execution", core="ogdata.envs.lob_tasks:LobExecution", family="lob-execution", step=_LOB_STEP,
        sources=_LOB_SOURCES,
        description="Sell 20 lots in 60 one-second steps on a simulated limit-order book (Cont–Stoikov–Talreja "
                    "2010 Tokyo calibration, 10 levels a side) with market and queue-tracked limit orders; "
                    "reward = implementation shortfall against the arrival mid, in bp.",
        references={"random": "random", "expert": "lob-execution/twap"}),
    EnvSpec(
        id="lob-market-making", core="ogdata.envs.lob_tasks:LobMarketMaking", family="lob-market-making",
        step=_LOB_STEP, sources=_LOB_SOURCES,
        description="Quote a bid and an ask (level and size) for 200 one-second steps on a simulated "
                    "limit-order book (Cont–Stoikov–Talreja 2010 calibration, 30 % informed market orders); "
                    "reward = PnL marked to mid − inventory penalty.",
        references={"random": "random", "expert": "lob-market-making/inventory-skew"}),
    EnvSpec(
        id="lob-execution-latent", core="ogdata.envs.lob_tasks:LobExecution", kwargs={"calibration": "latent"},
        family="lob-execution", step=_LOB_LATENT_STEP, sources=_LOB_LATENT_SOURCES,
        description="lob-execution on the order book nearest the square-root law of metaorder impact (calibration "
                    "`latent`: 4Q lots move the price 2.0-2.3x as far as Q, where the Cont–Stoikov–Talreja book "
                    "gives 2.2-4.2x): sell 20 lots in 60 one-second steps with market and queue-tracked limit "
                    "orders; reward = implementation shortfall against the arrival mid, in bp.",
        references={"random": "random", "expert": "lob-execution/twap"}),
    EnvSpec(
        id="lob-market-making-latent", core="ogdata.envs.lob_tasks:LobMarketMaking",
        kwargs={"calibration": "latent"}, family="lob-market-making", step=_LOB_LATENT_STEP,
        sources=_LOB_LATENT_SOURCES,
        description="lob-market-making on the order book nearest the square-root law (calibration `latent`: a "
                    "thinner, wider book whose depth is anchored to a diffusing fundamental price): quote a bid "
                    "and an ask (level and size) for 200 one-second steps, 30 % informed market orders; reward = "
                    "PnL marked to mid − inventory penalty.",
        references={"random": "random", "expert": "lob-market-making/inventory-skew"}),
)

# -- many agents on one limit-order book ----------------------------------------------------------
_LOBMA = "ogdata.envs.lob_multi:"
LOB_MULTI = tuple(
    EnvSpec(
        id=f"lob-competing-makers-{n}", core=_LOBMA + "CompetingMakers", kwargs={"n_agents": n}, multi_agent=True,
        family="lob-competing-makers", step=_LOB_STEP, sources=_LOB_SOURCES,
        description=f"{n} market makers quote on one simulated limit-order book (Cont–Stoikov–Talreja 2010 "
                    "calibration, 30 % informed market orders) for 200 one-second steps, queueing in price-time "
                    "priority among themselves and the background flow; general-sum: each maker's own PnL "
                    "marked to mid − inventory penalty.",
        references={"random": "random", "expert": "lob-competing-makers/inventory-skew"})
    for n in (2, 3)
) + tuple(
    EnvSpec(
        id=f"lob-desks-{n}", core=_LOBMA + "Desks", kwargs={"lots": lots}, multi_agent=True, family="lob-desks",
        step=_LOB_STEP, sources=_LOB_SOURCES,
        description=f"{n} desks of one firm work one parent order (net sell 20 lots in 60 one-second steps, "
                    f"child orders {', '.join(f'sell {x}' if x > 0 else f'buy {-x}' for x in lots)}) on one "
                    "simulated limit-order book; desks' orders can cross each other; cooperative team "
                    "reward = minus the firm's implementation shortfall, in bp.",
        references={"random": "random", "expert": "lob-desks/firm-twap"})
    for n, lots in ((2, (30, -10)), (4, (15, 15, -5, -5)))
) + (
    EnvSpec(
        id="lob-makers-and-executor", core=_LOBMA + "MakersAndExecutor", multi_agent=True,
        family="lob-makers-and-executor", step=_LOB_STEP, sources=_LOB_SOURCES,
        description="2 market makers and an executor selling 20 lots share one simulated limit-order book "
                    "(30 % informed market orders) for 100 one-second steps; each is rewarded on its own "
                    "(makers: PnL − inventory penalty; executor: minus its shortfall in bp).",
        references={"random": "random", "expert": "lob-makers-and-executor/skew-and-twap"}),
)

SPECS: tuple[EnvSpec, ...] = (PORTFOLIO + TRADING + EXECUTION + MARKET_MAKING + OPTION_EXERCISE + STAT_ARB + LOB
                              + LOB_MULTI)
