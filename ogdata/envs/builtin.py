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
_PF_REFS = {"random": "random", "expert": "portfolio/equal-weight"}
_PF_CORE = "ogdata.envs.portfolio:Portfolio"
_PF_DOC = ("20 S&P 500 stocks + cash, daily, 252-step episodes from random start dates; Box [0,1]^21 "
           "target weights normalised onto the simplex; 10 bp costs on turnover; reward log wealth growth.")
PORTFOLIO = (
    EnvSpec("portfolio-sp500", _PF_CORE, {"source": "real", "period": "train"}, family="portfolio", **DAILY,
            description="Training years 1990–2014. " + _PF_DOC, references=_PF_REFS, extras=("realdata",)),
    EnvSpec("portfolio-sp500-eval", _PF_CORE, {"source": "real", "period": "eval"}, family="portfolio", **DAILY,
            description="Held-out evaluation years 2015–2022. " + _PF_DOC, references=_PF_REFS,
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
TRADING = (
    EnvSpec("trading-sp500", _TR_CORE, {"source": "real", "period": "train"}, family="trading", **DAILY,
            description="Training years 1999–2014. " + _TR_DOC, references=_TR_REFS, extras=("realdata",)),
    EnvSpec("trading-sp500-eval", _TR_CORE, {"source": "real", "period": "eval"}, family="trading", **DAILY,
            description="Held-out evaluation years 2015–2018. " + _TR_DOC, references=_TR_REFS,
            extras=("realdata",)),
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

SPECS: tuple[EnvSpec, ...] = PORTFOLIO + TRADING + EXECUTION + MARKET_MAKING

# -- limit-order book ----------------------------------------------------------------------------
_LOB_STEP = "1 second of a Cont–Stoikov–Talreja order book: intraday"
LOB = (
    EnvSpec(
        id="lob-execution", core="ogdata.envs.lob_tasks:LobExecution", family="lob-execution", step=_LOB_STEP,
        description="Sell 20 lots in 60 one-second steps on a simulated limit-order book (Cont–Stoikov–Talreja "
                    "2010 Tokyo calibration, 10 levels a side) with market and queue-tracked limit orders; "
                    "reward = implementation shortfall against the arrival mid, in bp.",
        references={"random": "random", "expert": "lob-execution/twap"}),
    EnvSpec(
        id="lob-market-making", core="ogdata.envs.lob_tasks:LobMarketMaking", family="lob-market-making",
        step=_LOB_STEP,
        description="Quote a bid and an ask (level and size) for 200 one-second steps on a simulated "
                    "limit-order book (Cont–Stoikov–Talreja 2010 calibration, 30 % informed market orders); "
                    "reward = PnL marked to mid − inventory penalty.",
        references={"random": "random", "expert": "lob-market-making/inventory-skew"}),
)

SPECS = SPECS + LOB
