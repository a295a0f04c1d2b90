"""The `ogdata` command line: list · show · profile · download · generate · verify · publish · envs."""

from __future__ import annotations

import argparse
import sys

from ogdata.errors import OgdataError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ogdata",
        description="Offline-RL datasets for markets: list, inspect, profile, download, generate, verify, publish.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("list", help="datasets in the catalogue, the local cache and (--remote) on the Hub")
    s.add_argument("--remote", action="store_true", help="also read the Hub's repo trees")

    s = sub.add_parser("envs", help="every registered environment id")

    s = sub.add_parser("show", help="what a dataset holds, before you download it")
    s.add_argument("target", help="dataset id (<env-id>/<tier>-v<N>) or path")

    s = sub.add_parser("profile", help="TQ, SACo and return statistics of a dataset, with plots")
    s.add_argument("target", help="dataset id or path")
    s.add_argument("--reference", help="SACo reference dataset (default: the env's replay tier)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--plot", metavar="OUT.png", help="write return-distribution and TQ-vs-SACo plots")

    s = sub.add_parser("download", help="fetch datasets from the Hub into OGDATA_HOME (verified)")
    s.add_argument("ids", nargs="+", help="dataset ids")
    s.add_argument("--revision", help="branch, tag or commit of the Hub repo")
    s.add_argument("--force", action="store_true", help="download again even if cached")

    s = sub.add_parser("generate", help="generate a dataset tier from an environment")
    s.add_argument("env", help="environment id (see `ogdata envs`)")
    s.add_argument("--tier", required=True, choices=["good", "medium", "poor", "replay", "random"])
    s.add_argument("--transitions", type=int, default=100_000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--out", help="output path (default: OGDATA_HOME/datasets/<env>/<tier>-v0)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ray", metavar="ADDRESS", help="run the jobs on a Ray cluster")

    s = sub.add_parser("verify", help="check every file of a dataset against its manifest (and recipe)")
    s.add_argument("target", help="dataset id or path")

    s = sub.add_parser("publish", help="upload a dataset and its card to the Hub")
    s.add_argument("target", help="dataset id or path")
    s.add_argument("--repo", help="Hub dataset repo (default: <org>/<env-id>)")
    s.add_argument("--revision", help="branch to commit to")
    s.add_argument("--token", help="Hub token (default: HF_TOKEN); never printed")
    return p


def _envs() -> int:
    from rich.console import Console
    from rich.table import Table

    from ogdata.envs import env_spec, list_envs

    t = Table(title="ogdata environments")
    for c in ("id", "agents", "family", "needs", "description"):
        t.add_column(c)
    for i in list_envs():
        s = env_spec(i)
        t.add_row(i, "multi" if s.multi_agent else "single", s.family, ",".join(s.extras) or "-",
                  s.description.split(".")[0])
    Console().print(t)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "envs":
            return _envs()
        if args.command == "list":
            from ogdata.hub import run_list

            return run_list(remote=args.remote)
        if args.command == "show":
            from ogdata.profile import run_show

            return run_show(args.target)
        if args.command == "profile":
            from ogdata.profile import run_profile

            return run_profile(args.target, args.reference, args.json, args.plot)
        if args.command == "download":
            from ogdata.hub import run_download

            return run_download(args.ids, args.revision, args.force)
        if args.command == "generate":
            from ogdata.generate import run_generate

            return run_generate(args.env, args.tier, args.transitions, args.workers, args.out, args.seed, args.ray)
        if args.command == "verify":
            from ogdata.hub import run_verify

            return run_verify(args.target)
        if args.command == "publish":
            import os

            from ogdata.hub import run_publish

            if args.token:
                os.environ["HF_TOKEN"] = args.token
            return run_publish(args.target, args.repo, args.revision)
    except OgdataError as e:
        print(f"ogdata {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse makes this unreachable


if __name__ == "__main__":
    sys.exit(main())
