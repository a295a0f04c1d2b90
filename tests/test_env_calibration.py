"""The synthetic price models' calibration is re-derived from the source data (issue #12, item 20).

`ogdata/envs/calibration.json` ships with ogdata so that the synthetic envs need no extra; here it
is recomputed from the real prices (skfolio's 20 S&P 500 stocks and arch's S&P 500 index, the
`realdata` extra, no network) and compared with the committed file.

Tolerance: the calibration is deterministic (sample moments; EM from a fixed initialisation), so
the only source of difference between machines is floating-point summation order (BLAS). Every
array must agree to 1e-8 relative to its largest entry, and the EM iteration count exactly;
on the machine that committed it the agreement is ~1e-12. Any edit of the file, of the training
period, of the data or of the EM (a changed initialisation, tolerance or update) fails this test.
"""

import json

import numpy as np
import pytest

from ogdata.envs import prices

pytest.importorskip("skfolio", reason="the source prices need `pip install ogdata[realdata]`")
pytest.importorskip("arch", reason="the source prices need `pip install ogdata[realdata]`")

RTOL = 1e-8


@pytest.fixture(scope="module")
def committed():
    return json.loads(prices.CALIBRATION_FILE.read_text())


@pytest.fixture(scope="module")
def fresh():
    return prices.calibrate()


def _close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = max(float(np.abs(want).max()), 1e-300)
    err = float(np.abs(got - want).max()) / scale
    assert err <= RTOL, f"{what}: re-derived differs from calibration.json by {err:.2e} (relative) > {RTOL}"


def test_calibration_json_is_re_derived_from_the_source_data(committed, fresh):
    assert sorted(fresh) == sorted(committed) == sorted(prices.UNIVERSES)
    for u, c in committed.items():
        f = fresh[u]
        for key in ("names", "period", "num_returns", "source"):
            assert f[key] == c[key], (u, key)
        for k in ("mean", "cov"):
            _close(f["gbm"][k], c["gbm"][k], f"{u} gbm {k}")
        assert f["regime"]["iterations"] == c["regime"]["iterations"], u
        for k in ("mean", "cov", "transition", "stationary", "loglik"):
            _close(f["regime"][k], c["regime"][k], f"{u} regime {k}")


def _train_returns(universe):
    hist = prices.UNIVERSES[universe]()
    i0, i1, _, _ = prices.period_rows(hist, "train")
    return np.diff(np.log(hist.prices[i0:i1 + 1]), axis=0)


@pytest.mark.parametrize("universe", sorted(prices.UNIVERSES))  # the calibrated universes
def test_committed_regime_model_is_a_consistent_fit(committed, universe):
    """Independent checks of the committed HMM, not through `fit_regimes`: a log-space forward pass
    (scipy's Gaussian densities) gives the likelihood EM recorded, within 2 nats (EM's recorded value
    starts from its smoothed first-day distribution, this pass from the stationary one; both are
    ~10^4–10^5 nats); the stationary distribution is that of the transition matrix; regime 0 is the calm one;
    and the GBM block is the sample mean and covariance of the training-years log returns."""
    stats = pytest.importorskip("scipy.stats")
    x = _train_returns(universe)
    c = committed[universe]
    np.testing.assert_allclose(c["gbm"]["mean"], x.mean(0), rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(np.atleast_2d(c["gbm"]["cov"]), np.atleast_2d(np.cov(x, rowvar=False)),
                               rtol=1e-10, atol=1e-18)
    r = c["regime"]
    A, pi = np.asarray(r["transition"]), np.asarray(r["stationary"])
    np.testing.assert_allclose(A.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(pi @ A, pi, atol=1e-12)
    cov = np.asarray(r["cov"])
    assert np.trace(cov[0]) < np.trace(cov[1])
    logb = np.stack([np.atleast_1d(stats.multivariate_normal(r["mean"][k], cov[k]).logpdf(x)) for k in range(2)], 1)
    logA = np.log(A)
    la = np.log(pi) + logb[0]
    for t in range(1, len(x)):
        la = np.logaddexp(la[0] + logA[0], la[1] + logA[1]) + logb[t]
    assert abs(np.logaddexp(*la) - r["loglik"]) < 2.0
