"""Reference policies of the option-exercise envs: the exact optimal exercise rule (a dynamic programme on
the env's own steps), exercise at maturity (the European put), and Longstaff–Schwartz regression.

The optimum. With h(x) = K(1 − e^x)⁺ the payoff at log-moneyness x, the value after the last step is
V_N(x, i) = h(x) (the put is exercised at maturity if in the money), and backwards over the env's steps

    C_k(x, i) = e^(−rΔ) Σ_j P_ij E[V_{k+1}(x + Y_ij, j)],   Y_ij ~ N(m_ij, s_ij²)   (the env's own step)
    V_k(x, i) = max(h(x), C_k(x, i)) on exercise dates, C_k(x, i) between them;

exercising exactly where h > 0 and h ≥ C_k is optimal (the discrete-time Snell envelope of the
env's Markov chain). V is kept on a uniform grid of x, piecewise linear between grid points, and the
expectation of a piecewise-linear function under a normal law is exact: each grid value enters with
the weight E[tent(Y − d·h)] = (F(dh + h) − 2F(dh) + F(dh − h)) / h, F(u) = E[(u − Y)⁺], so one step is a
convolution (done by FFT). The only errors are the interpolation of V between grid points (by default
h ≈ 0.0004 in log price for GBM, 0.0013 with the Heston chain), the value beyond the grid's ±X (X = 8
standard deviations of log S over the option's life at the chain's mean variance; filled with the
payoff on the left and 0 on the right) and transitions less likely than PRUNE, left out.
"""

from __future__ import annotations

import math

import numpy as np

from ogdata.envs.chains import normal_cdf, normal_pdf, stationary
from ogdata.envs.option_exercise import EXERCISE, HOLD, OptionExercise
from ogdata.errors import EnvError

PRUNE = 1e-13   # transitions i → j less likely than this are left out of the DP (their weight in a value < 1e-13·K·M)


def _core(core, name: str) -> OptionExercise:
    if not isinstance(core, OptionExercise):
        raise EnvError(f"{name} acts in option-exercise envs, not {type(core).__name__}")
    return core


def _tent_weights(offsets: np.ndarray, h: float, m: float, s: float) -> np.ndarray:
    """E[tent_h(Y − d·h)] for Y ~ N(m, s²) at integer offsets d: the exact weight of grid value d."""
    def F(u):
        z = (u - m) / s
        return (u - m) * normal_cdf(z) + s * normal_pdf(z)

    u = offsets * h
    return np.maximum((F(u + h) - 2.0 * F(u) + F(u - h)) / h, 0.0)


class ExerciseDP:
    """Backward induction of the module docstring for one core: values V_0 and the exercise margins
    D_k(x, i) = h(x) − C_k(x, i) (exercise where D ≥ 0 and h > 0) on the grid, float32.

    `points`: grid size (default 8,193 for GBM, 2,049 with a variance chain); `exercisable` (N+1,)
    replaces the core's exercise dates (all False: the European put)."""

    def __init__(self, core: OptionExercise, points: int | None = None, exercisable: np.ndarray | None = None):
        ch, N, dt = core.chain, core.n_steps, core.dt
        self.exercisable = core.exercisable if exercisable is None else np.asarray(exercisable, dtype=bool)
        M = ch.states
        if points is None:
            points = 8193 if M == 1 else 2049
        vref = max(float(ch.initial @ ch.variance), float(stationary(ch.P) @ ch.variance))  # typical, not extreme
        X = float(np.clip(8.0 * math.sqrt(vref * core.maturity) + abs(core.rate) * core.maturity, 1.0, 20.0))
        self.x = np.linspace(-X, X, int(points))
        self.h = h = self.x[1] - self.x[0]
        self.X = X
        live = ch.P >= PRUNE
        reach = float(np.max(np.where(live, np.abs(ch.m) + 10.0 * ch.s, 0.0)))
        R = int(math.ceil(reach / h)) + 2
        n = len(self.x)
        nfft = 1 << int(math.ceil(math.log2(n + 4 * R)))
        d = np.arange(-R, R + 1, dtype=np.float64)
        growth = math.exp(-core.rate * dt)
        # kernel spectra per row i, only for the reachable j (banded: the variance moves little in a step)
        self._bands = []
        for i in range(M):
            js = np.flatnonzero(live[i])
            ker = np.stack([_tent_weights(d, h, ch.m[i, j], ch.s[i, j])[::-1] for j in js])    # flipped: a correlation
            self._bands.append((js, growth * ch.P[i, js, None] * np.fft.rfft(ker, nfft, axis=1)))
        self._R, self._nfft = R, nfft
        x_pad = self.x[0] + h * np.arange(-R, n + R)
        pay_pad = core.payoff(x_pad)
        left = x_pad < self.x[0]
        V = np.broadcast_to(core.payoff(self.x), (M, n)).copy()     # V_N
        self.margin = np.empty((N, M, n), dtype=np.float32)
        pay = core.payoff(self.x)
        for k in range(N - 1, -1, -1):
            Vp = np.where(left, pay_pad, 0.0)[None, :].repeat(M, axis=0)
            Vp[:, R:R + n] = V
            spec = np.fft.rfft(Vp, nfft, axis=1)
            C = np.empty((M, n))
            for i, (js, ker) in enumerate(self._bands):
                C[i] = np.fft.irfft((ker * spec[js]).sum(axis=0), nfft)[2 * R:2 * R + n]
            self.margin[k] = pay - C
            V = np.maximum(pay, C) if self.exercisable[k] else C
        self.value0 = V                                    # V_0(x, i) on the grid
        self.core = core

    def value(self, x0, i0=None) -> np.ndarray:
        """V_0 at log-moneyness x0 in variance state i0 (default: averaged over the start distribution)."""
        x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
        if i0 is not None:
            return np.interp(x0, self.x, self.value0[int(i0)])
        return sum(p * np.interp(x0, self.x, self.value0[i]) for i, p in enumerate(self.core.chain.initial) if p > 0)

    def exercise(self, k: np.ndarray, x: np.ndarray, i: np.ndarray) -> np.ndarray:
        """The optimal decision (bool) at steps k, log-moneyness x, variance states i (all (B,))."""
        c = self.core
        k = np.clip(k, 0, c.n_steps - 1)
        pos = (np.clip(x, -self.X, self.X) + self.X) / self.h
        lo = np.minimum(pos.astype(np.int64), len(self.x) - 2)
        w = pos - lo
        D = (1.0 - w) * self.margin[k, i, lo] + w * self.margin[k, i, lo + 1]
        D = np.where(x < -self.X, 1.0, np.where(x > self.X, -1.0, D))   # beyond the grid: deep in / out of the money
        return self.exercisable[k] & (x < 0.0) & (D >= 0.0)


def _state(core: OptionExercise, obs: np.ndarray):
    """(step k, log-moneyness x, variance state i) from a batch of observations."""
    o = obs.astype(np.float64)
    k = np.rint(core.n_steps - o[:, 0] / core.dt).astype(np.int64)
    if core.model == "heston":
        vol = core.chain.volatility
        i = np.searchsorted(0.5 * (vol[1:] + vol[:-1]), o[:, 2])
    else:
        i = np.zeros(len(o), dtype=np.int64)
    return k, o[:, 1], i


class OptimalExercise:
    """The exact optimal exercise rule of the env's own discretisation (ExerciseDP): the expert."""

    def __init__(self, core, points: int | None = None):
        self.core = _core(core, "option-exercise/dp-optimal")
        self.dp = ExerciseDP(self.core, points)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k, x, i = _state(self.core, obs)
        return np.where(self.dp.exercise(k, x, i), EXERCISE, HOLD).astype(np.int64)


class ExerciseAtMaturity:
    """Never exercise early: the put is exercised at maturity if in the money (the European put)."""

    def __init__(self, core):
        _core(core, "option-exercise/at-maturity")

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.full(obs.shape[0], HOLD, dtype=np.int64)


def _basis(core: OptionExercise, x: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Regression features: powers of S/K (Longstaff–Schwartz use polynomials of the price), and with
    Heston the variance and its product with S/K."""
    s = np.exp(x)
    cols = [np.ones_like(s), s, s * s, s ** 3]
    if core.model == "heston":
        v = core.chain.variance[i] / core.chain.variance.mean()
        cols += [v, v * s, v * v]
    return np.stack(cols, axis=1)


def longstaff_schwartz(core: OptionExercise, x: np.ndarray, i: np.ndarray):
    """Longstaff & Schwartz (2001) on paths (x, i), each (n, N+1): per exercise date, the least-squares
    coefficients of the discounted realised cash flow on the in-the-money paths' features, and the
    in-sample estimate of the price (the mean discounted cash flow of the fitted rule on these paths)."""
    N, n = core.n_steps, len(x)
    cash = core.payoff(x[:, N]) * core.discount[N]        # discounted to t = 0
    coef = np.zeros((N, _basis(core, x[:1, 0], i[:1, 0]).shape[1]))
    for k in range(N - 1, -1, -1):
        if not core.exercisable[k]:
            continue
        pay = core.payoff(x[:, k])
        itm = pay > 0
        if itm.sum() < 2 * coef.shape[1]:
            coef[k] = np.nan  # too few paths to regress on: never exercise at this date
            continue
        A = _basis(core, x[itm, k], i[itm, k])
        coef[k], *_ = np.linalg.lstsq(A, cash[itm] / core.discount[k], rcond=None)
        go = np.zeros(n, dtype=bool)
        go[itm] = pay[itm] >= A @ coef[k]
        cash = np.where(go, pay * core.discount[k], cash)
    return coef, float(cash.mean()), cash


class LongstaffSchwartz:
    """The Longstaff–Schwartz exercise rule, fitted at construction on `paths` fresh paths of the env's own
    model (seed `seed`), then applied out of sample: exercise where the payoff is positive and at least
    the regression's continuation value. A baseline: the method finance uses when no grid is possible."""

    def __init__(self, core, paths: int = 20_000, seed: int = 0):
        self.core = _core(core, "option-exercise/longstaff-schwartz")
        x, i = self.core.sample_paths(np.random.default_rng(seed), paths)
        self.coef, self.in_sample, _ = longstaff_schwartz(self.core, x, i)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.core
        k, x, i = _state(c, obs)
        k = np.clip(k, 0, c.n_steps - 1)
        pay = c.payoff(x)
        cont = (_basis(c, x, i) * self.coef[k]).sum(axis=1)
        go = c.exercisable[k] & (pay > 0) & (pay >= np.nan_to_num(cont, nan=np.inf))
        return np.where(go, EXERCISE, HOLD).astype(np.int64)
