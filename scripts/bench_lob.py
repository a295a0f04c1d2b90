"""Book-steps per second of the vectorised order book, side by side with the sequential oracle and
with the bare cost of the random draws a step needs.

    python scripts/bench_lob.py [--quick] [--rounds 7]

Rows, for B = 1, 64, 1,024 books and K = 5, 10, 20 levels a side (CST calibration, one agent order
resting on each side so the queue-position path runs too):
- book: `ogdata.envs.lob.Book.advance` on B books (cancellations, arrivals, market orders, shifts);
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


def _book(B, K, seed=0):
    bk = Book(B, K)
    rng = np.random.default_rng(seed)
    bk.reset(np.ones(B, bool), rng)
    bk.post(BID, 0, 1)
    bk.post(ASK, 0, 1)
    return bk, rng


def book_runner(B, K):
    bk, rng = _book(B, K)

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps a trial")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "lob.md"))
    args = ap.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    rows = []  # (what, B, K, runner, steps a trial)
    for K in (5, 10, 20):
        rows.append(("oracle (one book, one lot at a time)", 1, K, oracle_runner(K), int(400 * scale) or 1))
        for B, steps in ((1, 2000), (64, 600), (1024, 60)):
            rows.append(("book", B, K, book_runner(B, K), max(int(steps * scale), 2)))
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
        vs_draw = f"{m / med[('draws only', B, K)]:.2f}" if w == "book" else "—"
        lines.append(f"| {w} | {B} | {K} | {m:,.0f} | {min(x):,.0f}–{max(x):,.0f} | {m / oracle[K]:,.1f} | {vs_draw} |")
    big = med[("book", 1024, 10)]
    ok = big >= 3e5 and big >= 100 * oracle[10]
    lines += ["", f"Floor (B = 1,024, K = 10): {big:,.0f} book-steps/s (≥ 300k) = {big / oracle[10]:,.0f}× the oracle "
              f"(≥ 100×): {'met' if ok else 'NOT met'}."]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
