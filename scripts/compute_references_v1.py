"""Compute the v1 references of every env id (issue #14): ogdata/envs/references-v1.json.

    python scripts/compute_references_v1.py                     # every registered id, writes the file
    python scripts/compute_references_v1.py --env execution-ac --dry-run

Per env id the file records, each on the same 2,048 markets (mean, sample std (ddof=1),
standard error, episodes):

- `random`: the uniform random policy;
- `expert`: the best policy known for the env, with its `kind`:
  "optimal" — a closed form or an exact dynamic programme, proved on small cases by the
  tests (Almgren–Chriss for execution, the (step, inventory) DP for market making,
  always-long for trading-synth, whose iid returns have a positive mean and a reward linear
  in the position, the exercise DP for option-exercise, the (step, level, position) DP for
  stat-arb), or "best-known" — the best of the analytic, numerically optimised (Kelly) and
  trained (the learned Good checkpoints of every catalogue version, deterministic) policies, *chosen on
  selection markets* (seed `selection_seed`, never the reported ones) and, for real prices,
  on the training years only: an `-eval` id makes the choice on its training id's markets, among the
  analytic and numerically optimised candidates only (HELD_OUT_RULE);
- `baselines`: the named policies a finance reader knows (TWAP, AC, AS, the DP optimum,
  1/N, buy-and-hold, the Kelly mix, always-long, the HMM regime filter (S&P 500 index ids), always
  flat (WTI, EUR/USD), exercise at maturity, Longstaff–Schwartz, the pairs-trading band rule; on the
  order book TWAP, AC with impact fitted to the book, the queue-aware seller, symmetric and
  inventory-skewed quotes — whichever apply; with many agents on one book, per-agent quoting and
  independent vs firm TWAPs) and the best trained checkpoint of the recipe (`trained/best`);
- general-sum ids (`lob-competing-makers-<n>`, `lob-makers-and-executor`): every reference is a joint
  policy, ranked (and its expert chosen) by the sum of the agents' returns, reported as their mean as
  for every multi-agent id; each row adds `per_agent` (each agent's own mean and SE) (COMPETITIVE_RULE);
- `gap`: expert − random and its standard error sqrt(SE_e² + SE_r²) (unpaired, conservative);
  the gap must be at least `min_gap_se` of them, else the id is listed under `failing`.

Markets: an env with B = episodes markets is reset once from `np.random.default_rng(seed)`
(`ogdata.policies.evaluate.episode_returns` with num_envs = episodes: one round), so every
policy of an id sees exactly the same markets (common random numbers). Real-price episodes
are random start dates of the period; they overlap in calendar time, so their standard
errors (computed as if independent) are optimistic there.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ogdata.envs.registry import env_spec, list_envs  # noqa: E402
from ogdata.errors import OgdataError  # noqa: E402
from ogdata.policies.evaluate import REFERENCES_V1_FILE, episode_returns  # noqa: E402
from ogdata.policies.reference import make_policy  # noqa: E402

EPISODES = 2048
SEED = 0
SELECTION_SEED = 1
MIN_GAP_SE = 20.0
CHECKPOINT = "checkpoint:"   # a policy reference "checkpoint:<stem under ogdata/policies/weights>"

LABELS = {
    "random": "uniform random",
    "execution/twap": "TWAP",
    "execution/ac-optimal": "Almgren–Chriss",
    "execution/joint-ac": "Almgren–Chriss (firm schedule split across desks)",
    "execution/independent-greedy": "Almgren–Chriss per desk (ignores the others' impact)",
    "market-making/avellaneda-stoikov": "Avellaneda–Stoikov",
    "market-making/fixed-symmetric": "fixed symmetric quotes",
    "market-making/dp-optimal": "DP optimum",
    "multi-market-making/cooperative-as": "Avellaneda–Stoikov on the firm's inventory",
    "multi-market-making/cooperative-dp": "DP optimum of the firm",
    "portfolio/equal-weight": "1/N",
    "portfolio/buy-and-hold": "buy-and-hold",
    "portfolio/kelly": "Kelly mix (growth-optimal long-only constant mix)",
    "trading/always-long": "always-long (= buy-and-hold)",
    "trading/flat": "always flat (no position)",
    "trading/regime-filter": "regime filter (calibrated HMM: long / flat / short)",
    "option-exercise/dp-optimal": "DP optimum (exact optimal exercise)",
    "option-exercise/at-maturity": "exercise at maturity (the European put)",
    "option-exercise/longstaff-schwartz": "Longstaff–Schwartz regression (20,000 paths)",
    "stat-arb/dp-optimal": "DP optimum",
    "stat-arb/band": "band rule (open at ±2 sd, close at the mean)",
    "stat-arb/band-1sd": "band rule (open at ±1 sd, close at the mean)",
    "lob-execution/twap": "TWAP (market orders)",
    "lob-execution/ac": "Almgren–Chriss, impact fitted to the book",
    "lob-execution/queue-aware": "queue-aware (rest at the touch, cross for the deficit)",
    "lob-market-making/symmetric": "symmetric one-lot quotes at the touch",
    "lob-market-making/inventory-skew": "inventory-skewed one-lot quotes",
    "lob-competing-makers/symmetric": "every maker symmetric one-lot quotes at the touch",
    "lob-competing-makers/inventory-skew": "every maker inventory-skewed one-lot quotes",
    "lob-desks/twap": "independent TWAPs (each desk its own child order)",
    "lob-desks/firm-twap": "firm TWAP (the net schedule, routed so desks never cross)",
    "lob-makers-and-executor/symmetric-and-twap": "symmetric makers, TWAP executor",
    "lob-makers-and-executor/skew-and-twap": "inventory-skewed makers, TWAP executor",
    "trained/best": "best trained checkpoint (PPO)",
}

# per family: the named baselines, the optimal expert (None: best-known among the candidates)
_EX = ["execution/twap", "execution/ac-optimal"]
_JEX = ["execution/twap", "execution/joint-ac", "execution/independent-greedy"]
_MM = ["market-making/avellaneda-stoikov", "market-making/fixed-symmetric", "market-making/dp-optimal"]
_MMM = ["market-making/avellaneda-stoikov", "multi-market-making/cooperative-as",
        "multi-market-making/cooperative-dp"]
_PF = ["portfolio/equal-weight", "portfolio/buy-and-hold", "portfolio/kelly"]
_TR = ["trading/always-long"]
_OX = ["option-exercise/at-maturity", "option-exercise/longstaff-schwartz", "option-exercise/dp-optimal"]
_SA = ["stat-arb/band", "stat-arb/band-1sd", "stat-arb/dp-optimal"]
_LOBX = ["lob-execution/twap", "lob-execution/ac", "lob-execution/queue-aware"]
_LOBM = ["lob-market-making/symmetric", "lob-market-making/inventory-skew"]
_LOBMA = {"lob-competing-makers": ["lob-competing-makers/symmetric", "lob-competing-makers/inventory-skew"],
          "lob-desks": ["lob-desks/twap", "lob-desks/firm-twap"],
          "lob-makers-and-executor": ["lob-makers-and-executor/symmetric-and-twap",
                                      "lob-makers-and-executor/skew-and-twap"]}
NOTES = {
    "execution/ac-optimal": "Almgren–Chriss closed form of the env's own mean-variance reward: the expected "
                            "reward is a concave quadratic of the schedule and price noise is a martingale, "
                            "so no adaptive policy does better",
    "execution/joint-ac": "the firm's Almgren–Chriss schedule: impact depends only on the firm's total sales "
                          "and the team reward is the firm's, so the joint problem is the single-desk one",
    "market-making/dp-optimal": "exact dynamic programme over (step, inventory) of the env's own fill "
                                "probabilities, depth box, inventory bounds and penalties",
    "multi-market-making/cooperative-dp": "the firm's exact DP (one maker with bound n·q_max on the summed "
                                          "inventory), routed to the makers with the least/most inventory",
    "trading/always-long": "iid calibrated returns with E[r] > 0 and a reward linear in the position: "
                           "always long maximises the expected return (n·E[r] − c > 0)",
    "option-exercise/dp-optimal": "backward induction (Snell envelope) over the env's own exercise dates and "
                                  "variance states with the exact one-step law of the log price, integrated "
                                  "exactly against a piecewise-linear value on a fine log-price grid: optimal up "
                                  "to the grid's interpolation (tests: a binomial tree and the published "
                                  "Longstaff–Schwartz and Clarke–Parrott prices within 1e-3, brute-force "
                                  "integration on two steps, Longstaff–Schwartz on the same paths)",
    "stat-arb/dp-optimal": "exact finite-horizon DP over (step, spread level, position) of the env's own spread "
                           "chain (the spread lives on the grid), whose whole state is observed (tests: "
                           "brute-force enumeration of every contingent plan on a 3-level, 3-step chain)",
}


BEST_KNOWN_NOTES = {
    "portfolio/kelly": "growth-optimal long-only constant mix of the calibrated training-years moments "
                       "(regime model: its stationary mixture); optimal without costs, while 10 bp costs make "
                       "a no-trade band around it (and, with regimes, a regime-aware mix) slightly better",
    "trading/regime-filter": "forward filter of the calibrated two-state HMM over the observed window, long / "
                             "flat / short by tomorrow's expected return net of switching costs; the POMDP's "
                             "optimum is not known",
    "trained/best": "the recipe's best Good checkpoint (PPO, deterministic) on the training markets",
    "trading/always-long": "the passive benchmark",
    "trading/flat": "no position: zero return, zero costs",
    "portfolio/equal-weight": "1/N rebalanced daily",
    "portfolio/buy-and-hold": "1/N bought once, then held",
    "lob-execution/twap": "a market order of remaining / steps left every step; no optimum is known for the "
                          "order book (its impact, resilience and fills emerge from the simulated flow)",
    "lob-execution/ac": "the Almgren–Chriss schedule with temporary/permanent impact and volatility fitted "
                        "to this book by simulation, executed by market orders; optimal only for the linear "
                        "model it fits, not for the book",
    "lob-execution/queue-aware": "rests the remainder at the touch (keeping its FIFO position) and crosses only "
                                 "for what the queue cannot deliver; a heuristic",
    "lob-market-making/symmetric": "one lot at the reference bid and ask whatever the inventory",
    "lob-market-making/inventory-skew": "one lot a side, the inventory-growing side stepped back a level per two "
                                        "lots held and withdrawn beyond half the bound; a heuristic, no optimum "
                                        "is known for the order book with informed flow",
    "lob-competing-makers/inventory-skew": "every maker runs the single-agent inventory-skewed quoter on its own "
                                           "inventory; a heuristic joint policy, not an equilibrium",
    "lob-competing-makers/symmetric": "every maker one lot at the reference bid and ask",
    "lob-desks/firm-twap": "the firm's net remainder at TWAP pace by market orders, routed to the desks on its "
                           "side (the offsetting child orders are crossed internally at the end); a heuristic, "
                           "no optimum is known for the order book",
    "lob-desks/twap": "each desk TWAPs its own child order by market orders, in its own direction",
    "lob-makers-and-executor/skew-and-twap": "inventory-skewed makers beside a TWAP executor; a heuristic joint "
                                             "policy, not an equilibrium",
    "lob-makers-and-executor/symmetric-and-twap": "symmetric makers beside a TWAP executor"
}
HELD_OUT_RULE = ("a held-out (-eval) id's expert is the best analytic or numerically optimised policy on the "
                 "training years, never a trained network: a network's training-years score is in-sample for its "
                 "~10^4 parameters (portfolio-sp500's v1 PPO earns 0.47 log growth a year there and 0.054 on the "
                 "held-out years, below 1/N), so as a normaliser it would fail the gap floor; the trained "
                 "checkpoint stays a named row")
REAL_PRICES_NOTE = ("real prices: episodes start at random dates of the period and overlap in calendar time, "
                    "so the standard errors (computed as if episodes were independent) are optimistic")


def plan(env_id: str) -> dict:
    """What the references of an id consist of: baselines, optimal expert (or None), training id."""
    spec = env_spec(env_id)
    fam, eid = spec.family, spec.id
    train_id = eid[: -len("-eval")] if eid.endswith("-eval") else None
    if fam == "execution":
        multi = spec.multi_agent
        return {"baselines": _JEX if multi else _EX,
                "optimal": "execution/joint-ac" if multi else "execution/ac-optimal", "train_id": None}
    if fam == "market-making":
        return {"baselines": _MM, "optimal": "market-making/dp-optimal", "train_id": None}
    if fam == "multi-market-making":
        return {"baselines": _MMM, "optimal": "multi-market-making/cooperative-dp", "train_id": None}
    if fam == "portfolio":
        return {"baselines": _PF, "optimal": None, "train_id": train_id}
    if fam == "option-exercise":
        return {"baselines": _OX, "optimal": "option-exercise/dp-optimal", "train_id": None}
    if fam == "stat-arb":
        return {"baselines": _SA, "optimal": "stat-arb/dp-optimal", "train_id": None}
    if fam == "trading":
        if spec.kwargs.get("source") == "gbm":
            return {"baselines": _TR, "optimal": "trading/always-long", "train_id": None}
        if spec.kwargs.get("universe", "sp500-index") != "sp500-index":  # the HMM is calibrated on the index
            return {"baselines": _TR + ["trading/flat"], "optimal": None, "train_id": train_id}
        return {"baselines": _TR + ["trading/regime-filter"], "optimal": None, "train_id": train_id}
    if fam in ("lob-execution", "lob-market-making"):  # the order book: no closed form, best-known
        return {"baselines": _LOBX if fam == "lob-execution" else _LOBM, "optimal": None, "train_id": None}
    if fam in _LOBMA:  # many agents on one book: best-known joint policies (COMPETITIVE_RULE for general-sum ids)
        return {"baselines": _LOBMA[fam], "optimal": None, "train_id": None}
    raise OgdataError(f"no v1 reference plan for family {fam!r} of {env_id!r}; add one to {__file__}")


COMPETITIVE_RULE = ("general-sum id: references are joint policies (every agent's rule) ranked by the sum of the "
                    "agents' returns (reported, as everywhere, as the mean over agents); each agent's own score "
                    "is under per_agent; the expert is the best-known joint policy, not an equilibrium")


def trained_checkpoints(env_id: str) -> list[str]:
    """The learned Good-tier checkpoints of every catalogue version's recipe of an id, as policy references
    (an `-eval` id passes its training id). Fallback Good tiers (the expert with noise) add nothing."""
    from ogdata.catalogue import catalogue_envs, catalogue_versions, recipe

    refs = []
    for v in catalogue_versions():
        if env_id not in catalogue_envs(v):
            continue
        for p in recipe(env_id, v).get("tiers", {}).get("good", {}).get("policies", []):
            if p.get("checkpoint") and p.get("source", "checkpoint") == "checkpoint":
                refs.append(CHECKPOINT + p["checkpoint"])
    return list(dict.fromkeys(refs))


def _policy(ref: str, core):
    if ref.startswith(CHECKPOINT):
        from ogdata.catalogue import weights_path
        from ogdata.policies.checkpoint import load_policy

        return load_policy(weights_path(ref[len(CHECKPOINT):]), noise=0.0, mode="deterministic")
    return make_policy(ref, core)


def evaluate(env_id: str, ref: str, episodes: int = EPISODES, seed: int = SEED, core=None) -> dict:
    """Mean, sample std, SE and episodes of policy `ref` on the `episodes` markets of `seed` (one round)."""
    core = core if core is not None else env_spec(env_id).make_core(num_envs=episodes)
    if core.num_envs != episodes:
        raise OgdataError(f"evaluate needs a core of num_envs = episodes = {episodes} (one round of markets)")
    out = episode_returns(core, _policy(ref, core), episodes=episodes, seed=seed)
    ret = out["returns"]
    std = float(ret.std(ddof=1))
    row = {"mean": float(ret.mean()), "std": std, "se": std / math.sqrt(len(ret)), "episodes": int(len(ret))}
    if "agent_returns" in out and getattr(core, "general_sum", False):   # general-sum: every agent's own score
        a = out["agent_returns"]
        row["per_agent"] = {name: {"mean": float(a[:, i].mean()), "se": float(a[:, i].std(ddof=1) / math.sqrt(len(a)))}
                            for i, name in enumerate(core.agents)}
    return row


def choose(env_id: str, candidates: list[str], episodes: int, selection_seed: int) -> tuple[str, dict]:
    """The best of `candidates` on the selection markets of `env_id` (a training id), and every mean."""
    core = env_spec(env_id).make_core(num_envs=episodes)
    means = {c: evaluate(env_id, c, episodes, selection_seed, core)["mean"] for c in candidates}
    return max(means, key=means.get), means


def _label(name: str, texts: dict = LABELS, multi_agent: bool = False) -> str:
    """A row's label (or note); a multi-agent id's trained checkpoints come from MAPPO, not PPO."""
    text = texts[name]
    return text.replace("(PPO", "(MAPPO") if multi_agent and name == "trained/best" else text


def compute_entry(env_id: str, episodes: int = EPISODES, seed: int = SEED,
                  selection_seed: int = SELECTION_SEED, min_gap_se: float = MIN_GAP_SE) -> dict:
    """The v1 reference entry of one id (see the module docstring)."""
    if seed == selection_seed:
        raise OgdataError("the selection markets must differ from the reported ones: pass another selection_seed")
    spec = env_spec(env_id)
    p = plan(spec.id)
    train_id = p["train_id"] or spec.id
    ckpts = trained_checkpoints(train_id)
    chosen_on = {"env_id": train_id, "seed": selection_seed, "episodes": episodes,
                 "num_envs": episodes, "rounds": 1}
    best_ckpt, ckpt_means = choose(train_id, ckpts, episodes, selection_seed) if ckpts else (None, {})
    if p["optimal"] is not None:
        expert, kind, cand_means = p["optimal"], "optimal", {}
    else:
        # a held-out id's expert is never a trained network: see HELD_OUT_RULE
        trained = [best_ckpt] if best_ckpt and not p["train_id"] else []
        expert, cand_means = choose(train_id, p["baselines"] + trained, episodes, selection_seed)
        kind = "best-known"
    core = spec.make_core(num_envs=episodes)
    rows = {name: evaluate(spec.id, name, episodes, seed, core) for name in ["random"] + p["baselines"]}
    if best_ckpt:
        rows["trained/best"] = {**evaluate(spec.id, best_ckpt, episodes, seed, core),
                                "checkpoint": best_ckpt[len(CHECKPOINT):]}
    exp_row = rows["trained/best"] if expert == best_ckpt else rows[expert]
    exp_name = "trained/best" if expert == best_ckpt else expert
    label = functools.partial(_label, multi_agent=spec.multi_agent)
    e = {"kind": kind, "name": exp_name, "label": label(exp_name),
         **{k: v for k, v in exp_row.items()}}
    if kind == "optimal":
        e["proof"] = NOTES[expert]
    else:
        e["note"] = label(exp_name, BEST_KNOWN_NOTES)
        e["chosen_on"] = {**chosen_on, "candidates": {("trained/best" if c == best_ckpt else c): m
                                                      for c, m in cand_means.items()}}
    r = rows["random"]
    gap = e["mean"] - r["mean"]
    gse = math.sqrt(e["se"] ** 2 + r["se"] ** 2)
    entry = {
        "env_id": spec.id,
        "markets": {"seed": seed, "num_envs": episodes, "episodes": episodes, "rounds": 1,
                    "rule": "episode_returns(core with num_envs = episodes, policy, episodes, seed): one reset "
                            "from np.random.default_rng(seed), the same markets for every policy"},
        "random": {**r, "name": "random", "label": label("random")},
        "expert": e,
        "baselines": {k: {**v, "label": label(k)} for k, v in rows.items() if k != "random"},
        "gap": {"expert_minus_random": gap, "se": gse, "n_se": gap / gse if gse > 0 else math.inf,
                "min_n_se": min_gap_se, "ok": bool(gap >= min_gap_se * gse)},
    }
    if "realdata" in spec.extras:
        entry["markets"]["note"] = REAL_PRICES_NOTE
    if p["train_id"]:
        e["held_out_rule"] = HELD_OUT_RULE
    if "per_agent" in e:
        e["competitive_rule"] = COMPETITIVE_RULE
    if ckpt_means:
        entry["baselines"]["trained/best"]["chosen_on"] = {
            **chosen_on, "candidates": {c[len(CHECKPOINT):]: m for c, m in ckpt_means.items()}}
    return entry


def build(ids: list[str], episodes: int = EPISODES, seed: int = SEED, selection_seed: int = SELECTION_SEED,
          min_gap_se: float = MIN_GAP_SE, log=print) -> dict:
    """The whole references document for `ids`."""
    envs = {}
    for env_id in ids:
        t0 = time.perf_counter()
        envs[env_id] = e = compute_entry(env_id, episodes, seed, selection_seed, min_gap_se)
        x, r = e["expert"], e["random"]
        log(f"{env_id}: random {r['mean']:.4f} ± {r['se']:.4f}, expert {x['kind']} {x['name']} "
            f"{x['mean']:.4f} ± {x['se']:.4f} (gap {e['gap']['n_se']:.0f} SE) "
            + ", ".join(f"{k} {v['mean']:.4f}" for k, v in e["baselines"].items())
            + f" [{time.perf_counter() - t0:.1f} s]")
    return {"format": "ogdata-references", "version": 1, "script": "scripts/compute_references_v1.py",
            "episodes": episodes, "seed": seed, "selection_seed": selection_seed, "min_gap_se": min_gap_se,
            "failing": sorted(k for k, v in envs.items() if not v["gap"]["ok"]), "envs": envs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=[], help="an env id (repeatable); default: every id")
    ap.add_argument("--episodes", type=int, default=EPISODES)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the file")
    args = ap.parse_args(argv)
    if args.episodes < 2048 and not args.dry_run:
        ap.error("the committed references need --episodes >= 2048 (use --dry-run to try fewer)")
    try:
        ids = [env_spec(i).id for i in (args.env or list_envs())]
    except OgdataError as err:
        ap.error(str(err))
    t0 = time.perf_counter()
    doc = build(ids, args.episodes)
    doc["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(f"{len(ids)} id(s) in {doc['wall_time_s']} s; failing the {MIN_GAP_SE:g}-SE gap: {doc['failing'] or 'none'}")
    if not args.dry_run:
        if args.env and REFERENCES_V1_FILE.exists():  # update the given ids only
            old = json.loads(REFERENCES_V1_FILE.read_text())
            old["envs"].update(doc["envs"])
            old["failing"] = sorted(k for k, v in old["envs"].items() if not v["gap"]["ok"])
            doc = {**old, "wall_time_s": old.get("wall_time_s")}
        REFERENCES_V1_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote {REFERENCES_V1_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
