"""Many agents on one order book (`ogdata.envs.lob_agents`, `ogdata.envs.lob_multi`): matching with
price-time priority among agents, conservation, the lot-by-lot oracle, PettingZoo faces, economics.

Statistical checks use fixed seeds and state their tolerance. No timing asserts (scripts/bench_multiagent.py).
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import ogdata
from ogdata.envs import make_core
from ogdata.envs.lob import ASK, BID, Book
from ogdata.envs.lob_agents import AgentBook
from ogdata.errors import EnvError, InvalidActionError
from ogdata.policies import episode_returns, make_policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lob_oracle import OracleBook  # noqa: E402

IDS = ["lob-competing-makers-2", "lob-competing-makers-3", "lob-desks-2", "lob-desks-4", "lob-makers-and-executor"]


def _book(B, n, cal="cst", seed=0, K=10, **kw):
    bk = AgentBook(B, n, K, calibration=cal, **kw)
    rng = np.random.default_rng(seed)
    bk.reset(np.ones(B, bool), rng)
    return bk, rng


# -- the oracle: same seed, same path, several agents -----------------------------------------------------
def _state(bk):
    return (int(bk.pb[0]), bk.q[0].tolist(), int(bk.z[0]),
            [[(int(bk.a_lv[0, i, s]) if bk.a_sz[0, i, s] else 0, int(bk.a_sz[0, i, s]), int(bk.a_ahead[0, i, s]))
              for s in (0, 1)] for i in range(bk.n)])


def _ostate(o):
    return (o.pb, [[o.background(s, j) for j in range(o.K)] for s in (0, 1)], o.z,
            [[o.agent(s, i) for s in (0, 1)] for i in range(o.n)])


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("cal, kw", [("cst", {}), ("qr", {}), ("cst", {"informed": 0.4, "hawkes": (0.5, 0.5)}),
                                     ("latent", {"informed": 0.3})])
def test_oracle_replays_the_same_path_with_several_agents(n, cal, kw):
    """n agents posting (one at a time and all at once in a rotating rank) near the touch, where they
    share levels, and sending market orders that cross each other's resting orders: the same queues,
    queue positions, agents' fills (background and cross), prices and reference moves, 300 steps."""
    bk, _ = _book(1, n, cal, seed=1, K=6, **kw)
    o = OracleBook(bk)
    r1, r2, act = np.random.default_rng(5), np.random.default_rng(5), np.random.default_rng(9)
    moved = crossed = shared = 0
    for t in range(300):
        if act.random() < 0.5:
            for i in range(n):
                if act.random() < 0.5:
                    s, lv, sz = int(act.integers(2)), int(act.integers(3)), int(act.integers(0, 4))
                    bk.post(i, s, lv, sz)
                    o.post(s, lv, sz, i)
        else:
            s = int(act.integers(2))
            lv, sz = act.integers(0, 3, (1, n)), act.integers(0, 4, (1, n))
            rank = np.roll(np.arange(n), t)[None]
            bk.post_all(s, lv, sz, rank)
            for i in np.argsort(rank[0]):
                o.post(s, int(lv[0, i]), int(sz[0, i]), int(i))
        if act.random() < 0.25:
            i, s, v = int(act.integers(n)), int(act.integers(2)), int(act.integers(0, 6))
            o.passive = [[0, 0] for _ in range(n)]
            got, value, passive, _ = bk.market(i, s, v)
            assert (int(got[0]), int(value[0])) == o.market(s, v, i), t
            assert passive[0].tolist() == o.passive, t
            crossed += int(passive.sum())
        shared += int(any(((bk.a_sz[0, :, s] > 0) & (bk.a_lv[0, :, s] == j)).sum() > 1 for s in (0, 1)
                          for j in range(bk.K)))
        fl, (fills, fill_px, vol, shift) = bk.advance(r1), o.advance(r2)
        assert fl.fills[0].tolist() == fills, t
        assert fl.fill_px[0].tolist() == fill_px, t
        assert tuple(fl.volume[0].tolist()) == vol and int(fl.shift[0]) == shift, t
        assert _state(bk) == _ostate(o) and bk.f[0] == o.fund, t
        moved += shift != 0
    assert moved > 0 and crossed > 0 and shared > 20, (moved, crossed, shared)


def test_one_agent_book_is_the_single_agent_book():
    """AgentBook with n = 1 draws the same columns and takes the same path as Book, step for step."""
    b1 = Book(16, 10, informed=0.3)
    b2 = AgentBook(16, 1, 10, informed=0.3)
    for b in (b1, b2):
        b.reset(np.ones(16, bool), np.random.default_rng(0))
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    act = np.random.default_rng(4)
    for _ in range(200):
        s, lv, sz = int(act.integers(2)), act.integers(0, 3, 16), act.integers(0, 3, 16)
        b1.post(s, lv, sz)
        b2.post(0, s, lv, sz)
        f1, f2 = b1.advance(r1), b2.advance(r2)
        np.testing.assert_array_equal(f1.fills, f2.fills[:, 0])
        np.testing.assert_array_equal(b1.q, b2.q)
        np.testing.assert_array_equal(b1.o_ahead, b2.a_ahead[:, 0])
        np.testing.assert_array_equal(b1.pb, b2.pb)


# -- matching with price-time priority among agents --------------------------------------------------------
def test_cross_agent_matching_follows_price_time_priority():
    """Two lots of background at the best ask, then agent 0's lot, then agent 1's: a market buy of k lots
    by agent 2 takes background first, then agent 0, then agent 1 — and a better-priced order first."""
    bk, _ = _book(1, 3)
    bk.q[0, ASK, 0] = 2
    for k, want in ((2, [0, 0]), (3, [1, 0]), (4, [1, 1])):
        b = AgentBook(1, 3)
        b.q[:], b.pb[:] = bk.q, bk.pb
        b.post(0, ASK, 0, 1)
        b.post(1, ASK, 0, 1)
        got, value, passive, px = b.market(2, BID, k)
        assert int(got[0]) == k and passive[0, :2, ASK].tolist() == want, k
        assert int(value[0]) == k * int(b.pb[0] + 1)
    # post_all with a rank: agent 1 ranked first queues ahead of agent 0 at the shared level
    b = AgentBook(1, 3)
    b.q[:], b.pb[:] = bk.q, bk.pb
    b.post_all(ASK, np.zeros((1, 3), np.int64), np.array([[1, 1, 0]]), rank=np.array([[1, 0, 2]]))
    _, _, passive, _ = b.market(2, BID, 3)
    assert passive[0, :2, ASK].tolist() == [0, 1]
    # price before time: agent 1 undercuts at a better ask (level 0) while agent 0 waits at level 1
    b = AgentBook(1, 3)
    b.q[:], b.pb[:] = bk.q, bk.pb
    b.q[0, ASK, 0] = 0
    b.post(0, ASK, 1, 1)
    b.post(1, ASK, 0, 1)
    _, value, passive, px = b.market(2, BID, 1)
    assert passive[0, :2, ASK].tolist() == [0, 1] and int(value[0]) == int(px[0, 1, ASK])
    # no self-trade: an agent's market order cancels its own order on the walked side first
    b.post(2, ASK, 0, 3)
    got, _, passive, _ = b.market(2, BID, 1)
    assert b.a_sz[0, 2, ASK] == 0 and passive[0, 2].sum() == 0


def test_background_flow_fills_agents_in_their_queue_order():
    """Two agents at the best ask in one queue (agent 0 first): in every book and step, agent 1 is
    filled only once agent 0's order is gone, and agent 0 fills more often (4,096 books, 30 steps)."""
    bk, rng = _book(4096, 2, seed=2)
    bk.post(0, ASK, 0, 1)
    bk.post(1, ASK, 0, 1)
    got = np.zeros((4096, 2), np.int64)
    for _ in range(30):
        fl = bk.advance(rng)
        assert not ((fl.fills[:, 1, ASK] > 0) & (bk.a_sz[:, 0, ASK] > 0)).any()
        got += fl.fills[:, :, ASK]
    assert got[:, 0].sum() > got[:, 1].sum() > 0, got.sum(axis=0)


def test_conservation_every_fill_has_a_counterparty():
    """Random posts and market orders by 3 agents on 256 books for 300 steps: an agent market order
    takes exactly the background lots removed from the queues plus the other agents' resting lots, at
    their prices; background market volume covers the agents' passive fills on each side; queues never
    go negative; and the agents' summed lots and cash move only by their trades with the background
    (what they trade among themselves cancels)."""
    n, B = 3, 256
    bk, rng = _book(B, n, seed=8, informed=0.3)
    act = np.random.default_rng(0)
    inv, cash = np.zeros((B, n), np.int64), np.zeros((B, n), np.int64)
    ext_inv, ext_cash = np.zeros(B, np.int64), np.zeros(B, np.int64)   # the background's side, mirrored
    crossed = 0
    for _ in range(300):
        for s in (BID, ASK):
            rank = act.permuted(np.tile(np.arange(n), (B, 1)), axis=1)
            bk.post_all(s, act.integers(0, 3, (B, n)), act.integers(0, 3, (B, n)), rank)
        i, side = int(act.integers(n)), int(act.integers(2))
        walked = ASK if side == BID else BID
        q0 = bk.q[:, walked].copy()
        prices = bk.pb[:, None] - np.arange(bk.K) if walked == BID else bk.pb[:, None] + 1 + np.arange(bk.K)
        got, value, passive, px = bk.market(i, side, act.integers(0, 6, B))
        bg = q0 - bk.q[:, walked]
        assert (bg >= 0).all() and passive[:, i].sum() == 0
        pas = passive[:, :, walked]
        np.testing.assert_array_equal(got, bg.sum(axis=1) + pas.sum(axis=1))
        np.testing.assert_array_equal(value, (bg * prices).sum(axis=1) + (pas * px[:, :, walked]).sum(axis=1))
        sgn = 1 if side == BID else -1                                    # +1: agent i bought
        inv[:, i] += sgn * got
        cash[:, i] -= sgn * value
        inv -= sgn * pas
        cash += sgn * pas * px[:, :, walked]
        ext_inv += sgn * bg.sum(axis=1)
        ext_cash -= sgn * (bg * prices).sum(axis=1)
        crossed += int(pas.sum())
        fl = bk.advance(rng)
        assert (bk.q >= 0).all() and (bk.a_sz >= 0).all() and (bk.a_ahead >= 0).all()
        assert (fl.fills[:, :, ASK].sum(axis=1) <= fl.volume[:, 0]).all()
        assert (fl.fills[:, :, BID].sum(axis=1) <= fl.volume[:, 1]).all()
        f, p = fl.fills, fl.fill_px
        inv += f[:, :, BID] - f[:, :, ASK]
        cash += f[:, :, ASK] * p[:, :, ASK] - f[:, :, BID] * p[:, :, BID]
        ext_inv += (f[:, :, BID] - f[:, :, ASK]).sum(axis=1)
        ext_cash += (f[:, :, ASK] * p[:, :, ASK] - f[:, :, BID] * p[:, :, BID]).sum(axis=1)
    np.testing.assert_array_equal(inv.sum(axis=1), ext_inv)
    np.testing.assert_array_equal(cash.sum(axis=1), ext_cash)
    assert crossed > 100 and np.abs(inv).sum() > 0


def test_env_ledgers_conserve_lots_and_cash():
    """In the env: the lots agents trade with each other (`crossed`) are bought by one and sold by
    another, so the agents' summed cash moves only by their background trades, and every maker's
    wealth is cash + inventory × mid."""
    core = make_core("lob-makers-and-executor", num_envs=256)
    core.reset(seed=0)
    rng = np.random.default_rng(1)
    saw = 0
    for _ in range(core.T):
        a = rng.uniform(0, 1, (256, 3, 4)).astype(np.float32)
        a[:, 2, 0] = rng.uniform(0, 1, 256) ** 0.5              # the executor crosses often
        _, _, _, _, info = core.step(a)
        cr = info["crossed"]
        assert (cr[:, :2].sum(axis=1) == cr[:, 2]).all()        # every crossed lot has an agent on each side
        saw += int(cr.sum())
        np.testing.assert_allclose(info["wealth"][:, :2], info["cash"][:, :2] + info["inventory"][:, :2]
                                   * info["mid"][:, None])
        assert (np.abs(info["inventory"][:, :2]) <= core.q_max).all()
    assert saw > 0 and (info["inventory"][:, 2] == 0).all()


@pytest.mark.parametrize("env_id", ["lob-competing-makers-3", "lob-makers-and-executor", "lob-desks-4"])
def test_env_agents_cash_and_lots_move_only_with_the_background(env_id):
    """A full ledger in the env: the book's market orders and background steps are wrapped to record the
    background's side of every trade (lots removed from background queues at their prices, the
    background's market orders filling agents). The agents' summed cash and signed lots must equal the
    background's mirror image after every step — trades among agents cancel (no fees). The last step is
    checked on the maker-only id: there desks may send leftovers beyond the K levels (a counterparty
    outside the book, at the stated penalty price), and a firm crosses its desks' offsetting leftovers."""
    B = 128
    core = make_core(env_id, num_envs=B)
    obs, _ = core.reset(seed=7)
    bk, ext = core.book, {"cash": np.zeros(B), "lots": np.zeros(B)}
    market, advance = bk.market, bk.advance

    def rec_market(i, side, volume):
        got, value, passive, px = market(i, side, volume)
        walked = ASK if side == BID else BID
        sgn = 1 if side == BID else -1                       # +1: agent i bought
        bg_lots = got - passive[:, :, walked].sum(axis=1)
        bg_value = value - (passive[:, :, walked] * px[:, :, walked]).sum(axis=1)
        ext["lots"] += sgn * bg_lots
        ext["cash"] -= sgn * bg_value
        return got, value, passive, px

    def rec_advance(rng):
        fl = advance(rng)
        f, p = fl.fills, fl.fill_px
        ext["lots"] += (f[:, :, BID] - f[:, :, ASK]).sum(axis=1)
        ext["cash"] += (f[:, :, ASK] * p[:, :, ASK] - f[:, :, BID] * p[:, :, BID]).sum(axis=1)
        return fl

    bk.market, bk.advance = rec_market, rec_advance
    pol, rng = make_policy("random", core), np.random.default_rng(0)
    held0 = core._held().astype(float)
    for t in range(core.T):
        obs, _, term, _, info = core.step(pol(obs, rng))
        lots = core._held() - held0                  # lots each agent bought (a selling desk's remaining falls)
        if t < core.T - 1:
            np.testing.assert_allclose(info["cash"].sum(axis=1), ext["cash"], atol=1e-6)
            np.testing.assert_array_equal(lots.sum(axis=1), ext["lots"])
    assert term.all() and np.abs(ext["lots"]).sum() > 0
    if not core.desk.any():
        np.testing.assert_array_equal(lots.sum(axis=1), ext["lots"])
        np.testing.assert_allclose(info["cash"].sum(axis=1), ext["cash"], atol=1e-6)


# -- PettingZoo faces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"calibration": "latent"}], ids=["cst", "latent"])
@pytest.mark.parametrize("env_id", IDS)
def test_pettingzoo_api_seed_and_state(env_id, kw):
    env = ogdata.make_env(env_id, **kw)
    parallel_api_test(env, num_cycles=250)
    parallel_seed_test(lambda: ogdata.make_env(env_id, **kw), num_cycles=50)
    obs, infos = env.reset(seed=0)
    assert env.state_space.contains(env.state())
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a])
        assert set(infos[a]) >= {"cash", "inventory", "wealth", "shortfall", "fills", "crossed", "mid"}


@pytest.mark.parametrize("env_id", IDS)
def test_episodes_end_for_every_agent_together(env_id):
    core = make_core(env_id, num_envs=8)
    obs, _ = core.reset(seed=3)
    pol = make_policy("random", core)
    rng = np.random.default_rng(0)
    for t in range(core.T):
        obs, rew, term, trunc, info = core.step(pol(obs, rng))
        assert term.all() if t == core.T - 1 else not term.any()
    assert term.all() and not trunc.any()
    if core.desk.any():
        assert (info["inventory"][:, core.desk] == 0).all()     # every child order done at the end


# -- economics -------------------------------------------------------------------------------------------
def test_two_makers_at_the_same_level_split_fills_in_time_priority():
    """Both makers quote one lot at the touch; orders new in the same step queue in a rotating agent
    order and a maker already resting keeps its place, so over 1,024 books × 50 steps they share the
    fills within 5 %; at the book level the first in the queue always fills first (tested above)."""
    core = make_core("lob-competing-makers-2", num_envs=1024)
    core.reset(seed=0)
    a = np.tile(np.float32([0, 0.2, 0, 0.2]), (1024, 2, 1))
    tot = np.zeros(2)
    for _ in range(50):
        _, _, _, _, info = core.step(a)
        tot += info["fills"].sum(axis=(0, 2))
    assert tot.sum() > 10_000 and abs(tot[0] - tot[1]) < 0.05 * tot.sum(), tot


def test_queue_rank_is_pairwise_fair_over_every_2n_steps():
    from ogdata.envs.lob_multi import queue_rank

    for n in (2, 3, 4, 5):
        for start in (0, 1, 7):
            r = queue_rank(np.arange(start, start + 2 * n), n)
            assert (np.sort(r, axis=1) == np.arange(n)).all()                 # a permutation every step
            ahead = (r[:, :, None] < r[:, None, :]).sum(axis=0)
            assert (ahead + np.eye(n, dtype=int) * n == n).all(), (n, start, ahead)
    np.testing.assert_array_equal(queue_rank(np.arange(4), 2)[:, 0], [0, 1, 0, 1])   # n = 2: alternation


@pytest.mark.parametrize("env_id", ["lob-competing-makers-3", "lob-makers-and-executor"])
def test_makers_at_one_level_share_fills_evenly_with_three_agents(env_id):
    """Every maker one lot at the touch both sides (the executor idle): over 1,024 books × 60 steps no maker
    gets more than its share ± 5 % of the fills. (Plain rotation of three agents put agent 0 ahead of agent 1
    two steps in three: maker_0 filled ~10 % more than maker_1 beside the executor.)"""
    core = make_core(env_id, num_envs=1024, informed=0.0)
    core.reset(seed=1)
    a = np.tile(np.float32([0, 0.2, 0, 0.2]), (1024, core.n, 1))
    a[:, core.desk] = 0.0
    tot = np.zeros(core.n)
    for _ in range(60):
        _, _, _, _, info = core.step(a)
        tot += info["fills"].sum(axis=(0, 2))
    share = tot[core.maker] / tot[core.maker].sum()
    assert tot.sum() > 10_000 and np.abs(share - 1 / core.n_makers).max() < 0.05 / core.n_makers, share


def test_identical_makers_earn_the_same_under_one_joint_policy():
    """Beside the executor both makers run the same skewed quoter: paired over 256 episodes their returns
    differ by less than 3 SE. (With the cycle always starting at agent 0, maker_0 was first in the queue at
    the opening of every episode and earned 2.7 ± 0.2 more.)"""
    core = make_core("lob-makers-and-executor", num_envs=256)
    a = episode_returns(core, make_policy("lob-makers-and-executor/skew-and-twap", core), 256, seed=0)["agent_returns"]
    d = a[:, 0] - a[:, 1]
    assert abs(d.mean()) < 3 * d.std() / math.sqrt(len(d)), (d.mean(), d.std() / math.sqrt(len(d)))


def test_a_maker_undercut_by_another_fills_less():
    """Maker 0 asks one lot at level 1; maker 1 asks at level 0 (undercuts it) or at level 3 (does not):
    maker 0's ask fills are lower when undercut, paired over 1,024 books and 50 steps (> 4 SE)."""
    per = {}
    for name, lv1 in (("undercut", 0.0), ("not", 3 / 9)):
        core = make_core("lob-competing-makers-2", num_envs=1024, informed=0.0)
        core.reset(seed=5)
        a = np.zeros((1024, 2, 4), np.float32)
        a[:, 0, 2], a[:, 0, 3] = 1 / 9, 0.2
        a[:, 1, 2], a[:, 1, 3] = lv1, 0.2
        got = np.zeros(1024)
        for _ in range(50):
            _, _, _, _, info = core.step(a)
            got += info["fills"][:, 0, ASK]
        per[name] = got
    d = per["not"] - per["undercut"]
    assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (per["not"].mean(), per["undercut"].mean())


def test_makers_rewards_are_their_own():
    core = make_core("lob-competing-makers-3", num_envs=64, running_penalty=0.02, terminal_penalty=0.7, steps=30)
    obs, info0 = core.reset(seed=4)
    pol = make_policy("random", core)
    rng = np.random.default_rng(0)
    w = info0["wealth"]
    for t in range(30):
        obs, rew, _, _, info = core.step(pol(obs, rng))
        inv2 = info["inventory"].astype(float) ** 2
        want = info["wealth"] - w - 0.02 * inv2 - 0.7 * (t == 29) * inv2
        np.testing.assert_allclose(rew, want, atol=1e-9)
        w = info["wealth"]


def test_desks_team_reward_is_minus_the_firm_shortfall():
    core = make_core("lob-desks-4", num_envs=128)
    obs, _ = core.reset(seed=2)
    pol = make_policy("random", core)
    rng = np.random.default_rng(0)
    ret = np.zeros((128, 4))
    for _ in range(core.T):
        obs, rew, *_, info = core.step(pol(obs, rng))
        ret += rew
    assert (ret == ret[:, :1]).all()                                      # one team reward
    np.testing.assert_allclose(ret[:, 0], -info["firm_shortfall_bp"], atol=1e-9)
    np.testing.assert_allclose(info["firm_shortfall_bp"],
                               info["shortfall"].sum(axis=1) * 1e4 / (20 * core.m0))


def test_desks_crossing_each_other_shows_up_in_the_shortfall():
    """The selling desk rests 5 lots at the best ask; the buying desk market-buys its 10 lots at once and
    lifts them in their FIFO turn in part of the books. The crossed lots are a sale of one desk and a
    purchase of the other at the same price: each desk's shortfall counts them, the firm's (their sum)
    gets nothing from them — it equals the shortfall of the firm's trades with the background alone."""
    B = 2048
    core = make_core("lob-desks-2", num_envs=B)
    core.reset(seed=1)
    m0, pb = core.m0.copy(), core.book.pb.copy()
    a = np.zeros((B, 2, 3), np.float32)
    a[:, 0, 1] = 5 / 30                         # desk_0 (sells 30): 5 lots resting at ask level 0
    a[:, 1, 0] = 1.0                            # desk_1 (buys 10): all at once
    _, _, _, _, info = core.step(a)
    c = info["crossed"][:, 0]
    assert (c == info["crossed"][:, 1]).all() and (c > 0).mean() > 0.2 and c.max() <= 5
    sold0 = info["fills"][:, 0, ASK]
    np.testing.assert_allclose(info["shortfall"][:, 0], sold0 * (m0 - (pb + 1)))  # every lot at its ask
    bought1 = info["fills"][:, 1, BID]
    assert (bought1 == 10).all()
    paid1 = info["shortfall"][:, 1] + 10 * m0                                      # = what desk_1 paid
    external = (sold0 - c) * (m0 - (pb + 1)) + (paid1 - c * (pb + 1)) - (10 - c) * m0
    np.testing.assert_allclose(info["shortfall"].sum(axis=1), external, atol=1e-6)
    np.testing.assert_allclose(info["firm_shortfall_bp"], external * 1e4 / (20 * m0), atol=1e-9)


@pytest.mark.parametrize("env_id", ["lob-desks-2", "lob-desks-4"])
def test_firm_twap_beats_independent_twaps(env_id):
    """Independent TWAPs buy and sell against the background at once (the spread paid twice on the
    offsetting lots); the firm's one schedule trades only the net: paired over 512 episodes, > 4 SE."""
    core = make_core(env_id, num_envs=512)
    ind = episode_returns(core, make_policy("lob-desks/twap", core), 512, seed=3)["returns"]
    firm = episode_returns(core, make_policy("lob-desks/firm-twap", core), 512, seed=3)["returns"]
    d = firm - ind
    assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (firm.mean(), ind.mean())


def test_skewed_makers_beat_symmetric_ones_on_the_joint_score():
    core = make_core("lob-competing-makers-2", num_envs=256)
    ret = {n: episode_returns(core, make_policy(f"lob-competing-makers/{n}", core), 256, seed=0)["returns"]
           for n in ("symmetric", "inventory-skew")}
    assert ret["inventory-skew"].mean() > ret["symmetric"].mean()


# -- bad actions and kwargs -----------------------------------------------------------------------------
def test_bad_actions_and_kwargs_raise_clear_errors():
    env = ogdata.make_env("lob-competing-makers-2")
    env.reset(seed=0)
    ok = np.full(4, 0.5, np.float32)
    with pytest.raises(InvalidActionError, match="missing"):
        env.step({"maker_0": ok})
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step({"maker_0": ok, "maker_1": np.float32([np.nan, 0, 0, 0])})
    with pytest.raises(InvalidActionError, match="do not form one array"):
        env.step({"maker_0": ok, "maker_1": np.ones(3, np.float32)})
    with pytest.raises(InvalidActionError, match="takes a dict"):
        env.step([ok, ok])
    env = ogdata.make_env("lob-desks-2")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        env.step({"desk_0": ok, "desk_1": ok})                         # desks act in [0, 1]^3
    bk, _ = _book(2, 2)
    with pytest.raises(InvalidActionError, match="level"):
        bk.post(0, BID, 10, 1)
    with pytest.raises(InvalidActionError, match="size"):
        bk.post(1, ASK, 0, -1)
    with pytest.raises(InvalidActionError, match="market-order size"):
        bk.market(0, BID, -3)
    with pytest.raises(EnvError, match="agent 2 is not one"):
        bk.post(2, BID, 0, 1)
    with pytest.raises(EnvError, match="1..16 agents"):
        AgentBook(1, 0)
    for kw in ({"lots": (0, 5)}, {"lots": (1.5, 2)}, {"lots": ("a",)}, {"lots": (10, -10)}):
        with pytest.raises(EnvError, match="lots|net"):
            ogdata.make_env("lob-desks-2", **kw)
    with pytest.raises(EnvError, match="n_agents"):
        ogdata.make_env("lob-competing-makers-2", n_agents=1)
    with pytest.raises(EnvError, match="lots"):
        ogdata.make_env("lob-desks-2", lots=(True, -1))                 # a bool is not a lot count
    for bad in ("x", 5, (0.5,), (0.5, "a"), (1.2, 1.0), (0.5, float("inf"))):
        for env_id in ("lob-competing-makers-2", "lob-execution"):
            with pytest.raises(EnvError, match=r"hawkes=.*pair \(branching, decay"):
                ogdata.make_env(env_id, hawkes=bad)
    assert ogdata.make_env("lob-competing-makers-2", hawkes=[0.5, 0.5]).core.book.hawkes == (0.5, 0.5)


# -- tiers of general-sum ids: the joint score defines the tier, each agent's own score is recorded --------
def test_agent_reference_returns_follow_the_scale_of_the_joint_ones():
    from ogdata.policies.evaluate import (
        agent_reference_returns,
        load_references_v1,
        reference_returns,
    )

    v0 = reference_returns("lob-competing-makers-2")
    a0 = agent_reference_returns("lob-competing-makers-2", v0)
    assert set(a0) == {"maker_0", "maker_1"}
    # the joint references are the mean over agents of the per-agent ones (same episodes)
    for k in ("random", "expert"):
        assert np.mean([a0[a][k] for a in a0]) == pytest.approx(v0[k], rel=1e-12)
    e1 = load_references_v1()["envs"]["lob-makers-and-executor"]
    a1 = agent_reference_returns("lob-makers-and-executor", {"random": e1["random"]["mean"],
                                                             "expert": e1["expert"]["mean"]})
    assert a1["desk_0"]["expert"] == e1["expert"]["per_agent"]["desk_0"]["mean"]
    assert agent_reference_returns("lob-competing-makers-2", {"random": 0.0, "expert": 1.0}) is None  # another scale
    assert agent_reference_returns("lob-desks-2", reference_returns("lob-desks-2")) is None        # cooperative
    assert agent_reference_returns("multi-market-making-2", reference_returns("multi-market-making-2")) is None


@pytest.mark.parametrize("env_id", ["lob-competing-makers-2", "lob-desks-2"])
def test_a_general_sum_dataset_records_every_agents_own_score(env_id, tmp_path):
    """A small random tier: per-agent return statistics average to the joint ones; on the general-sum id
    each agent's own TQ is against its own references and the card shows the per-agent table; on the
    cooperative id there are no per-agent references (one team reward) and no own TQ."""
    from ogdata import cards
    from ogdata.generate import generate

    ds = generate(env_id, "random", 1200, tmp_path / "d", progress=False)
    m = ds.measures
    stats, ret = m["agent_return_stats"], ds.agent_episode_returns()
    assert list(stats) == ds.agents and ret.shape == (ds.num_episodes, len(ds.agents))
    np.testing.assert_allclose(ret.mean(axis=1), ds.episode_returns(), rtol=1e-12, atol=1e-12)
    assert np.mean([s["mean"] for s in stats.values()]) == pytest.approx(m["return_stats"]["mean"], rel=1e-9)
    card = cards.render(ds)
    assert "| agent | episode return, mean ± std | own normalised score" in card
    if env_id == "lob-desks-2":
        assert m["agent_tq"] is None and "agent_reference_returns" not in ds.metadata
        assert cards.AGENT_NOTE not in card
        return
    refs = ds.metadata["agent_reference_returns"]
    for i, a in enumerate(ds.agents):
        want = (ret[:, i].mean() - refs[a]["random"]) / (refs[a]["expert"] - refs[a]["random"])
        assert m["agent_tq"][a] == pytest.approx(want, rel=1e-9)
    assert cards.AGENT_NOTE in card and "maker_1" in card
    with pytest.raises(ogdata.errors.InvalidArgumentError, match="single-agent"):
        ogdata.Dataset(generate("lob-execution", "random", 60, tmp_path / "s", progress=False).path
                       ).agent_episode_returns()
