"""When to exercise an American or Bermudan put: `option-exercise-*` ids, one vectorised core.

Each of B markets holds one put of strike K and maturity T on an underlying S that starts at
S_0 = K·m, m drawn uniformly from `moneyness`. Time runs in N steps of Δ = T/N years; step k
(k = 0 … N−1) is at t_k = kΔ, and at each the holder exercises (action 1) or holds (action 0):

    exercise at t_k    reward e^(−r t_k)·(K − S_{t_k})⁺ and the episode ends (terminated)
    hold               S moves on to t_{k+1}; reward 0
    maturity t_N = T   the put is exercised if it is in the money: reward e^(−rT)·(K − S_T)⁺ (terminated)

Exercise is allowed at steps with k mod `exercise_every` = 0 (1: every step, the American put on the
env's N+1 dates t_0 … t_N; 5: a Bermudan put with a date every fifth step); an exercise action at any
other step holds. S moves under the risk-neutral measure (drift r), so a policy's expected return is
the price of the put exercised by that policy, and the best expected return is the put's price —
what the reference `option-exercise/dp-optimal` (ogdata.policies.option_exercise) computes.

Models of one step, in log-moneyness x = log(S/K):

- "gbm": x' − x ~ N((r − σ²/2)Δ, σ²Δ), exactly (geometric Brownian motion).
- "heston": the variance v lives on a finite chain of `variance_states` levels (ogdata.envs.chains),
  uniform in volatility √v around √θ, whose rows are normal laws binned onto the levels (Tauchen) with
  the square-root process's exact one-step conditional mean and variance; given the move v_i → v_j,
  x' − x is normal with the Heston conditional law of the log price, the integrated variance taken
  as the trapezoid v̄Δ, v̄ = (v_i + v_j)/2: mean rΔ − v̄Δ/2 + (ρ/ξ)(v_j − v_i − κ(θ − v̄)Δ) + c_i,
  variance (1 − ρ²)v̄Δ, where c_i makes the discounted price an exact martingale of the chain. A Markov-chain approximation of
  Heston whose own optimum a dynamic programme over (step, variance state, price) computes exactly.

Observation (float32): [time to maturity T − t_k in years, log-moneyness log(S/K) (clipped to ±10:
a factor e^10 past the strike, where the decision no longer depends on S), and with "heston" the
volatility √v of the current variance state]. `info`: spot S, variance v, exercised (1 where the
holder exercised this step), matured (1 where the put reached maturity this step), payoff (the
undiscounted (K − S)⁺ paid this step).

Parameters, stated in the id descriptions (ogdata/envs/builtin.py): r = 2.0 % a year (the mean
Fama–French one-month T-bill rate of 1999–2014), σ = 20.2 % (the S&P 500 index's daily log returns,
1999–2014, ×√252), and the Heston variance fitted to the VIX (`ogdata/envs/model_fits.py`,
`model-fits.json`); K = 100, so payoffs are in percent of the strike; T = 1 year in N = 50 steps;
S_0/K uniform in [0.95, 1.05] (a wider range lets uniform random exercise at t_0 collect the intrinsic
value of the in-the-money starts, which narrows the expert–random gap below 20 standard errors of
2,048 episodes).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ogdata.envs.chains import cumulative, draw, matched, stationary
from ogdata.envs.core import VectorMarket, _preview
from ogdata.errors import EnvError

HOLD, EXERCISE = 0, 1
MODELS = ("gbm", "heston")
LOG_MONEYNESS_BOUND = 10.0

# admissible kwargs (lo, hi): wide enough for any listed option, narrow enough that every price and
# reward stays finite (log-moneyness is the state, so S never overflows)
RANGES: dict[str, tuple[float, float]] = {
    "strike": (1e-6, 1e9), "rate": (-0.2, 1.0), "sigma": (1e-4, 5.0), "maturity": (1e-4, 100.0),
    "kappa": (1e-4, 1e3), "theta": (1e-6, 5.0), "xi": (1e-4, 10.0), "rho": (-0.999, 0.999), "v0": (1e-8, 5.0),
}
INT_RANGES: dict[str, tuple[int, int]] = {"n_steps": (1, 100_000), "exercise_every": (1, 100_000),
                                          "variance_states": (2, 401)}


def _num(name: str, v) -> float:
    lo, hi = RANGES[name]
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise EnvError(f"option-exercise kwarg {name}={_preview(v)} is not a number; pass a value in "
                       f"[{lo:g}, {hi:g}]") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise EnvError(f"option-exercise kwarg {name}={_preview(v)} is out of range: pass a value in [{lo:g}, {hi:g}]")
    return f


def _int(name: str, v) -> int:
    lo, hi = INT_RANGES[name]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise EnvError(f"option-exercise kwarg {name}={_preview(v)} is invalid: pass an integer in [{lo}, {hi}]")
    return int(v)


class PriceChain:
    """One step of the log-moneyness x and the variance state i: i → j with probability P[i, j],
    then x' − x ~ N(m[i, j], s[i, j]²). GBM is the chain of one state."""

    def __init__(self, variance: np.ndarray, P: np.ndarray, m: np.ndarray, s: np.ndarray, initial: np.ndarray):
        self.variance, self.P, self.m, self.s = variance, P, m, s
        self.initial = initial                     # distribution of the first variance state
        self.volatility = np.sqrt(variance)
        self.cdf, self.initial_cdf = cumulative(P), np.cumsum(initial)
        self.initial_cdf[-1] = 1.0

    @property
    def states(self) -> int:
        return len(self.variance)

    def start(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.states == 1:
            return np.zeros(n, dtype=np.int64)
        return np.minimum(np.searchsorted(self.initial_cdf, rng.random(n), side="right"), self.states - 1)

    def advance(self, rng: np.random.Generator, x: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x', j) for B markets; draws B uniforms (Heston only) and B normals."""
        j = i if self.states == 1 else draw(self.cdf, i, rng.random(len(i)))
        return x + self.m[i, j] + self.s[i, j] * rng.standard_normal(len(i)), j


def gbm_chain(rate: float, sigma: float, dt: float) -> PriceChain:
    one = np.ones((1, 1))
    return PriceChain(np.array([sigma * sigma]), one, one * (rate - 0.5 * sigma * sigma) * dt,
                      one * sigma * math.sqrt(dt), np.ones(1))


def heston_chain(rate: float, kappa: float, theta: float, xi: float, rho: float, dt: float, states: int,
                 v0: float | None = None) -> PriceChain:
    """The Markov-chain Heston model of the module docstring; `v0` (if given) is one of the levels
    and the start, else the chain starts from its stationary distribution."""
    root, spread = math.sqrt(theta), xi / (2.0 * math.sqrt(2.0 * kappa))  # stationary sd of √v, linearised
    lo, hi = max(root - 4.0 * spread, 0.1 * root), root + 5.0 * spread
    if v0 is not None:
        lo, hi = min(lo, math.sqrt(v0)), max(hi, math.sqrt(v0))
    vol = np.linspace(lo, hi, states)
    if v0 is not None:  # v0 replaces the nearest level, so it is a state of the chain
        vol[np.abs(vol - math.sqrt(v0)).argmin()] = math.sqrt(v0)
    v = vol ** 2
    edges = (0.5 * (vol[1:] + vol[:-1])) ** 2
    e = math.exp(-kappa * dt)
    mean = theta + (v - theta) * e
    var = v * xi * xi * e * (1 - e) / kappa + theta * xi * xi * (1 - e) ** 2 / (2 * kappa)
    P = matched(v, mean, np.sqrt(var), edges=edges)
    vbar = 0.5 * (v[:, None] + v[None, :])
    m = (rate * dt - 0.5 * vbar * dt + (rho / xi) * (v[None, :] - v[:, None] - kappa * (theta - vbar) * dt))
    s = np.sqrt((1.0 - rho * rho) * vbar * dt)
    with np.errstate(divide="ignore"):                              # log E[S'/S | i] before the correction,
        a = np.log(P) + m + 0.5 * s * s                            # in log space: no underflow for long steps
    top = a.max(axis=1, keepdims=True)
    log_growth = top[:, 0] + np.log(np.exp(a - top).sum(axis=1))
    m = m + (rate * dt - log_growth)[:, None]                      # c_i: E[S'/S | i] = e^(rΔ) exactly
    if v0 is None:
        start = stationary(P)
    else:
        start = np.zeros(states)
        start[np.abs(vol - math.sqrt(v0)).argmin()] = 1.0
    return PriceChain(v, P, m, s, start)


class OptionExercise(VectorMarket):
    """B puts to exercise; see the module docstring for the economics.

    model: "gbm" or "heston"; rate and sigma (GBM) default to the fitted values, and so do
    kappa, theta, xi, rho (Heston); v0 fixes the first variance (default: the chain's stationary law).
    """

    def __init__(self, num_envs: int = 1, *, model: str = "gbm", strike: float = 100.0,
                 moneyness=(0.95, 1.05), rate: float | None = None, sigma: float | None = None,
                 maturity: float = 1.0, n_steps: int = 50, exercise_every: int = 1,
                 kappa: float | None = None, theta: float | None = None, xi: float | None = None,
                 rho: float | None = None, v0: float | None = None, variance_states: int = 41):
        super().__init__(num_envs)
        if model not in MODELS:
            raise EnvError(f"option-exercise model={model!r} is unknown; pass one of {list(MODELS)}")
        fit = None
        if rate is None or (model == "gbm" and sigma is None) or (model == "heston" and None in (kappa, theta, xi, rho)):
            from ogdata.envs.model_fits import model_fits

            fit = model_fits()
        self.model = model
        self.strike = _num("strike", strike)
        self.rate = _num("rate", fit["rate"]["rate"] if rate is None else rate)
        self.maturity = _num("maturity", maturity)
        self.n_steps = _int("n_steps", n_steps)
        self.exercise_every = _int("exercise_every", exercise_every)
        try:
            lo, hi = (float(m) for m in moneyness)
        except (TypeError, ValueError):
            raise EnvError(f"option-exercise kwarg moneyness={_preview(moneyness)} is not a (low, high) pair of "
                           "numbers; pass e.g. (0.95, 1.05): S0 / K is drawn uniformly between them") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and 1e-3 <= lo <= hi <= 1e3):
            raise EnvError(f"option-exercise kwarg moneyness={_preview(moneyness)} is out of range: pass "
                           "0.001 <= low <= high <= 1000")
        self.moneyness = (lo, hi)
        self.max_steps = self.n_steps
        self.dt = self.maturity / self.n_steps
        if model == "gbm":
            self.sigma = _num("sigma", fit["sp500"]["sigma"] if sigma is None else sigma)
            self.chain = gbm_chain(self.rate, self.sigma, self.dt)
        else:
            h = fit["heston"] if fit is not None else {}
            self.kappa, self.theta, self.xi, self.rho = (
                _num(k, h[k] if v is None else v) for k, v in
                (("kappa", kappa), ("theta", theta), ("xi", xi), ("rho", rho)))
            self.v0 = None if v0 is None else _num("v0", v0)
            self.chain = heston_chain(self.rate, self.kappa, self.theta, self.xi, self.rho, self.dt,
                                      _int("variance_states", variance_states), self.v0)
        self.discount = np.exp(-self.rate * self.dt * np.arange(self.n_steps + 1))
        self.exercisable = np.arange(self.n_steps + 1) % self.exercise_every == 0
        self.exercisable[-1] = False  # maturity is not a decision: the put is exercised if in the money
        self.action_space = spaces.Discrete(2)
        low = [0.0, -LOG_MONEYNESS_BOUND]
        high = [self.maturity, LOG_MONEYNESS_BOUND]
        if model == "heston":
            low.append(float(self.chain.volatility[0]))
            high.append(float(self.chain.volatility[-1]))
        self.observation_space = spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)
        B = self.num_envs
        self.x = np.zeros(B)
        self.state = np.zeros(B, dtype=np.int64)
        self.alive = np.ones(B, dtype=bool)

    # -- the model, shared with the reference policies -------------------------------------------
    def payoff(self, x: np.ndarray) -> np.ndarray:
        """(K − S)⁺ at log-moneyness x, undiscounted."""
        return self.strike * np.maximum(-np.expm1(x), 0.0)

    def start(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x0, i0) of n fresh markets."""
        lo, hi = self.moneyness
        return np.log(rng.uniform(lo, hi, n)), self.chain.start(rng, n)

    def sample_paths(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, i), each (n, N+1): n paths of the env's own model from its start distribution."""
        x = np.empty((n, self.n_steps + 1))
        i = np.empty((n, self.n_steps + 1), dtype=np.int64)
        x[:, 0], i[:, 0] = self.start(rng, n)
        for k in range(self.n_steps):
            x[:, k + 1], i[:, k + 1] = self.chain.advance(rng, x[:, k], i[:, k])
        return x, i

    # -- the env ---------------------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        tau = (self.n_steps - np.minimum(self._t, self.n_steps)) * self.dt
        cols = [tau, np.clip(self.x, -LOG_MONEYNESS_BOUND, LOG_MONEYNESS_BOUND)]
        if self.model == "heston":
            cols.append(self.chain.volatility[self.state])
        return np.stack(cols, axis=1).astype(np.float32)

    def _info(self, exercised, matured, payoff) -> dict[str, np.ndarray]:
        return {"spot": self.strike * np.exp(self.x), "variance": self.chain.variance[self.state],
                "exercised": exercised.astype(np.float64), "matured": matured.astype(np.float64), "payoff": payoff}

    def _reset(self, mask: np.ndarray):
        x0, i0 = self.start(self.rng, int(mask.sum()))
        self.x, self.state = self.x.copy(), self.state.copy()  # arrays handed out are never mutated
        self.x[mask], self.state[mask] = x0, i0
        self.alive = self.alive | mask
        zero = np.zeros(self.num_envs, dtype=bool)
        return self._observe(), self._info(zero, zero, np.zeros(self.num_envs))

    def _step(self, actions: np.ndarray):
        N = self.n_steps
        k = np.minimum(self._t, N)
        exercised = self.alive & (actions == EXERCISE) & self.exercisable[k]
        now = self.payoff(self.x)
        hold = self.alive & ~exercised
        x, j = self.chain.advance(self.rng, self.x, self.state)  # every market draws: one rng stream
        self.x, self.state = np.where(hold, x, self.x), np.where(hold, j, self.state)
        self._t = self._t + 1
        matured = hold & (self._t >= N)
        then = self.payoff(self.x)
        reward = np.where(exercised, self.discount[k] * now, 0.0) + np.where(matured, self.discount[N] * then, 0.0)
        payoff = np.where(exercised, now, np.where(matured, then, 0.0))
        terminated = exercised | matured | ~self.alive
        self.alive = hold & ~matured
        truncated = np.zeros(self.num_envs, dtype=bool)
        return self._observe(), reward, terminated, truncated, self._info(exercised, matured, payoff)
