"""python -m baselines {train, list, evaluate}."""

from __future__ import annotations

import argparse
import json
import sys

from baselines.train import PROTOCOLS


def cmd_list(args) -> int:
    from baselines.registry import ALGORITHMS

    rows = [("algo", "agents", "discrete", "continuous", "implementation", "what")]
    for a in ALGORITHMS.values():
        rows.append((a.name, "multi" if a.multi_agent else "single", "yes" if "discrete" in a.action_types else "-",
                     "yes" if "continuous" in a.action_types else "-", a.implementation, a.description))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    return 0


def cmd_train(args) -> int:
    from baselines.train import RunSettings, parse_overrides, train

    s = RunSettings(algo=args.algo, dataset=args.dataset, steps=args.steps, seed=args.seed, device=args.device,
                    hidden=args.hidden, layers=args.layers, batch_size=args.batch_size,
                    eval_episodes=args.eval_episodes, evals=args.evals, log_every=args.log_every, out=args.out,
                    progress=not args.no_progress, threads=args.threads, protocol=args.protocol,
                    overrides=parse_overrides(args.set))
    res = train(s)
    summary = {k: res.get(k) for k in ("algo", "dataset", "seed", "steps", "updates_per_s")}
    if args.protocol == "v1":
        summary["final_test_score"] = res.get("final", {}).get("normalised_score")
        summary["best_on_validation_test_score"] = (res.get("best_on_validation") or {}).get("test", {}).get(
            "normalised_score")
    elif args.protocol == "v1-validation":
        summary["final_validation_score"] = res.get("final_validation")
    else:
        summary["last_score"] = res.get("last", {}).get("normalised_score")
        summary["best_score"] = res.get("best", {}).get("normalised_score")
    print(json.dumps(summary))
    return 0


def cmd_evaluate(args) -> int:
    import ogdata
    from baselines.evaluate import Evaluator
    from baselines.train import load_learner

    learner = load_learner(args.checkpoint, device=args.device)
    ds = ogdata.load(args.dataset)
    if args.protocol == "v1":
        from baselines.evaluate import MarketEvaluator

        ev = MarketEvaluator(ds.env_id, args.split, ds.metadata.get("env_kwargs") or {})
    else:
        ev = Evaluator(ds.env_id, ds.metadata.get("env_kwargs") or {}, episodes=args.episodes, seed=args.seed)
    print(json.dumps(ev(learner.policy), indent=1, default=float))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m baselines", description="Offline RL baselines for ogdata datasets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="algorithms and the action types they support").set_defaults(fn=cmd_list)

    t = sub.add_parser("train", help="train one algorithm on one dataset")
    t.add_argument("--algo", required=True, help="see `python -m baselines list`")
    t.add_argument("--dataset", required=True, help="dataset id (<env-id>/<tier>-v<N>) or local path")
    t.add_argument("--steps", type=int, required=True, help="gradient updates")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--eval-episodes", type=int, default=10, help="held-out episodes per evaluation (0: none)")
    t.add_argument("--evals", type=int, default=5, help="evaluations spread over the run (the last at the end)")
    t.add_argument("--hidden", type=int, default=256, help="hidden units per layer")
    t.add_argument("--layers", type=int, default=2, help="hidden layers")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--log-every", type=int, default=100, help="updates between JSONL loss lines")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--out", default=None, help="run directory (default runs/<dataset>/<algo>/seed<S>)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--protocol", choices=PROTOCOLS, default="v0",
                   help="v1: validation markets for the curve, the final checkpoint on the fixed test markets; "
                        "v1-validation: the validation markets alone (for choosing a setting)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an algorithm config field, repeatable: --set value_loss=hl_gauss, --set risk=cvar --set alpha=0.05")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint in the dataset env's held-out setting")
    e.add_argument("--checkpoint", required=True, help="a run's checkpoint/ directory")
    e.add_argument("--dataset", required=True, help="the dataset it was trained on (names the env)")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--protocol", choices=("v0", "v1"), default="v0", help="v1: the fixed markets of the env")
    e.add_argument("--split", choices=("test", "validation"), default="test", help="v1 markets to score on")
    e.set_defaults(fn=cmd_evaluate)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except Exception as exc:  # clear one-line errors for the expected failures
        from ogdata.errors import OgdataError

        if isinstance(exc, OgdataError | ValueError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
