"""Book-steps per second of the vectorised order book, side by side with the sequential oracle and
with the bare cost of the random draws a step needs.

    python scripts/bench_lob.py [--quick] [--rounds 7]

Rows, for B = 1, 64, 1,024 books and K = 5, 10, 20 levels a side (CST calibration, one agent order
resting on each side so the queue-position path runs too):
- book: `ogdata.envs.lob.Book.advance` on B books (cancellations, arrivals, market orders, shifts);
- book, calibration latent: the same under calibration "latent" (arrival rows keyed by each level's
  distance beyond the fundamental, the early reference move, the fundamental's step);
- draws only: only the draws one step of B books makes — one uint64 uniform per count and coin,
  (B, 4K + 8), and the inverse-CDF look-ups of the counts (`ogdata.envs.lob_draws`) on the book's
  own table keys: the floor of the step's randomness;
- numpy samplers (before): the same counts from numpy's per-element samplers (binomial (B, 2, K+1),
  poisson (B, 2, K), poisson (B, 3), random (B, 2), poisson (B,)), what the step drew until the
  inverse-CDF tables replaced them;
- oracle: `tests/lob_oracle.py`, one book, one lot at a time in Python (B = 1 only; its rate per
  book is what "× oracle" divides by).
Trials of every row are interleaved round-robin (each round runs every row once), each trial timed
in CPU time of this process; a row reports the median and min–max over the rounds. Floors (issue
#16): B = 1,024, K = 10 ≥ 300k book-steps/s and ≥ 100× the oracle per book. Writes bench_out/lob.md.
On a shared machine the figures are indicative: other jobs slow every row alike, not the ratios.

    python scripts/bench_lob.py --agents [--rounds 5]

Many agents on one book (issue #17), B = 1,024 books, K = 10: per-agent-step throughput (book-steps/s
× n agents) against the single-agent book, at two layers —
- book: `AgentBook` with n = 1, 2, 3, 4 agents (each one order a side, levels 0..2, so agents share
  queues) against `Book` with one order a side;
- env: the multi-agent cores (`lob-competing-makers-2/3`, `lob-desks-2/4`, `lob-makers-and-executor`:
  orders posted, desks' market orders, the step, rewards and observations) against the single-agent
  cores `lob-market-making` (for makers) and `lob-execution` (for desks and the mixed id), uniform
  random actions drawn before timing, resets included.
Same method (CPU time, interleaved rounds, median). Writes bench_out/lob_agents.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lob_oracle import OracleBook  # noqa: E402

from ogdata.envs.lob import ASK, BID, Book  # noqa: E402
from ogdata.envs.lob_agents import AgentBook  # noqa: E402


def _book(B, K, seed=0, calibration="cst"):
    bk = Book(B, K, calibration=calibration)
    rng = np.random.default_rng(seed)
    bk.reset(np.ones(B, bool), rng)
    bk.post(BID, 0, 1)
    bk.post(ASK, 0, 1)
    return bk, rng


def book_runner(B, K, calibration="cst"):
    bk, rng = _book(B, K, calibration=calibration)

    def run(steps):
        for _ in range(steps):
            bk.advance(rng)

    return run


def draws_runner(B, K):
    """The draws of one step as the book makes them: one uint64 uniform per count and per coin, and the
    inverse-CDF look-ups of the counts (`ogdata.envs.lob_draws`) on the book's own table keys."""
    bk, rng = _book(B, K)
    bk.advance(rng)                      # fills the key buffer for the current state
    keys, table, scratch = bk._rowbuf.copy(), bk._draws.table, np.empty_like(bk._scratch)

    def run(steps):
        for _ in range(steps):
            v = rng.integers(0, 2**64, size=(B, bk._W), dtype=np.uint64)
            table.draw_keyed(keys, v[:, :-2], scratch)

    return run


def numpy_draws_runner(B, K):
    """What the step drew before the inverse-CDF sampler: numpy's binomial (B, 2, K+1), poisson (B, 2, K),
    poisson (B, 3), random (B, 2), poisson (B,) at the book's rates."""
    bk, rng = _book(B, K)
    n = np.concatenate([bk.q, np.ones((B, 2, 1), np.int64)], axis=2)
    p = np.broadcast_to(np.append(bk._pc, bk._pc[0]), (B, 2, K + 1)).copy()
    lam = np.ascontiguousarray(np.broadcast_to(bk._lam_dt, (B, 2, K)))
    rates = np.tile([bk._mu_base, bk._mu_base, bk._mu_inf], (B, 1))
    deep = bk._deep

    def run(steps):
        for _ in range(steps):
            rng.binomial(n, p)
            rng.poisson(lam)
            rng.poisson(rates)
            rng.random((B, 2))
            rng.poisson(deep, B)

    return run


def oracle_runner(K):
    bk, _ = _book(1, K)
    o = OracleBook(bk)
    rng = np.random.default_rng(1)

    def run(steps):
        for _ in range(steps):
            o.advance(rng)
            if o.agent(ASK)[1] == 0:
                o.post(ASK, 0, 1)
            if o.agent(BID)[1] == 0:
                o.post(BID, 0, 1)

    return run


def agent_book_runner(B, K, n):
    bk = AgentBook(B, n, K)
    rng = np.random.default_rng(0)
    bk.reset(np.ones(B, bool), rng)
    for i in range(n):
        bk.post(i, BID, i % 3, 1)
        bk.post(i, ASK, i % 3, 1)

    def run(steps):
        for _ in range(steps):
            bk.advance(rng)

    return run


def core_runner(env_id, B):
    from ogdata.envs import make_core
    from ogdata.policies import make_policy

    core = make_core(env_id, num_envs=B)
    obs, _ = core.reset(seed=0)
    rng = np.random.default_rng(0)
    pol = make_policy("random", core)
    pool = [pol(obs, rng) for _ in range(16)]
    k = [0]

    def run(steps):
        for _ in range(steps):
            _, _, term, trunc, _ = core.step(pool[k[0] % len(pool)])
            k[0] += 1
            ended = term | trunc
            if core.multi_agent:
                ended = ended.all(axis=1)
            if ended.any():
                core.reset(mask=ended)

    return run, (len(core.agents) if core.multi_agent else 1)


SINGLE_OF = {"lob-competing-makers-2": "lob-market-making", "lob-competing-makers-3": "lob-market-making",
             "lob-desks-2": "lob-execution", "lob-desks-4": "lob-execution",
             "lob-makers-and-executor": "lob-execution"}


def agents_main(args) -> int:
    """Per-agent-step throughput of many agents on one book against the single-agent book (issue #17)."""
    B, K = 1024, 10
    scale = 0.25 if args.quick else 1.0
    st = max(int(40 * scale), 2)
    rows = [("book", "Book (single agent)", 1, book_runner(B, K))]
    rows += [("book", f"AgentBook, {n} agent{'s' if n > 1 else ''}", n, agent_book_runner(B, K, n)) for n in (1, 2, 3, 4)]
    for env_id in ("lob-market-making", "lob-execution", *SINGLE_OF):
        run, n = core_runner(env_id, B)
        rows.append(("env", env_id, n, run))
    steps = {"book": st, "env": max(int(10 * scale), 2)}
    rates = [[] for _ in rows]
    print(f"benchmarking {len(rows)} rows at B = {B}, {args.rounds} interleaved rounds...", flush=True)
    for r in range(args.rounds):
        for i, (layer, _, _, fn) in enumerate(rows):
            t = time.process_time()
            fn(steps[layer])
            rates[i].append(steps[layer] * B / max(time.process_time() - t, 1e-9))
        print(f"  round {r + 1}/{args.rounds}", flush=True)
    med = {w: float(np.median(x)) for (_, w, _, _), x in zip(rows, rates, strict=True)}
    load = os.getloadavg()
    lines = [f"Many agents on one book ({time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} "
             f"cores, load average {load[0]:.1f}; numpy {np.__version__}): B = {B:,} books, K = {K}; CPU time of "
             f"this process, median (min–max) of {args.rounds} interleaved rounds. On a shared machine: "
             "indicative only.", "",
             "| layer | row | agents | book-steps/s | min–max | agent-steps/s | per agent-step vs the single-agent book |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (layer, w, n, _), x in zip(rows, rates, strict=True):
        base = "Book (single agent)" if layer == "book" else SINGLE_OF.get(w, w)
        rel = med[w] * n / med[base]
        lines.append(f"| {layer} | {w if layer == 'book' else f'`{w}`'} | {n} | {med[w]:,.0f} | "
                     f"{min(x):,.0f}–{max(x):,.0f} | {med[w] * n:,.0f} | "
                     f"{rel:.2f}× {'`' + base + '`' if layer == 'env' else ''} |")
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out if args.out != str(ROOT / "bench_out" / "lob.md") else ROOT / "bench_out" / "lob_agents.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps a trial")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "lob.md"))
    ap.add_argument("--agents", action="store_true", help="many agents on one book vs the single-agent book (#17)")
    args = ap.parse_args(argv)
    if args.agents:
        return agents_main(args)
    scale = 0.25 if args.quick else 1.0
    rows = []  # (what, B, K, runner, steps a trial)
    for K in (5, 10, 20):
        rows.append(("oracle (one book, one lot at a time)", 1, K, oracle_runner(K), int(400 * scale) or 1))
        for B, steps in ((1, 2000), (64, 600), (1024, 60)):
            rows.append(("book", B, K, book_runner(B, K), max(int(steps * scale), 2)))
            rows.append(("book, calibration latent", B, K, book_runner(B, K, "latent"), max(int(steps * scale), 2)))
            rows.append(("draws only", B, K, draws_runner(B, K), max(int(steps * scale), 2)))
            rows.append(("numpy samplers (before)", B, K, numpy_draws_runner(B, K), max(int(steps * scale), 2)))
    rates = [[] for _ in rows]
    print(f"benchmarking {len(rows)} rows, {args.rounds} interleaved rounds...", flush=True)
    for r in range(args.rounds):
        for i, (_, B, _, fn, steps) in enumerate(rows):
            t = time.process_time()
            fn(steps)
            rates[i].append(steps * B / max(time.process_time() - t, 1e-9))
        print(f"  round {r + 1}/{args.rounds}", flush=True)
    med = {(w, B, K): float(np.median(x)) for (w, B, K, _, _), x in zip(rows, rates, strict=True)}
    oracle = {K: med[(w, 1, K)] for (w, B, K, _, _) in rows if w.startswith("oracle")}
    load = os.getloadavg()
    lines = [f"Order-book steps per second ({time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
             f"{os.cpu_count()} cores, load average {load[0]:.1f}; numpy {np.__version__}); CPU time of this "
             f"process, median (min–max) of {args.rounds} interleaved rounds. CST calibration, one agent order "
             "a side. On a shared machine: indicative only.", "",
             "| row | B | K | book-steps/s | min–max | × oracle per book | book ÷ draws only |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (w, B, K, _, _), x in zip(rows, rates, strict=True):
        m = med[(w, B, K)]
        vs_draw = f"{m / med[('draws only', B, K)]:.2f}" if w.startswith("book") else "—"
        lines.append(f"| {w} | {B} | {K} | {m:,.0f} | {min(x):,.0f}–{max(x):,.0f} | {m / oracle[K]:,.1f} | {vs_draw} |")
    big = med[("book", 1024, 10)]
    ok = big >= 3e5 and big >= 100 * oracle[10]
    lat = med[("book, calibration latent", 1024, 10)]
    lines += ["", f"Floor (B = 1,024, K = 10): {big:,.0f} book-steps/s (≥ 300k) = {big / oracle[10]:,.0f}× the oracle "
              f"(≥ 100×): {'met' if ok else 'NOT met'}. The latent calibration (arrival rows keyed by the distance to "
              f"the fundamental, the early reference move) runs at {lat / big:.2f}× the cst book there ({lat:,.0f} book-steps/s)."]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
