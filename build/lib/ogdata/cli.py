"""The `ogdata` command line: list · envs · show · profile · download · generate · verify · publish · delete.

Exit codes, the same for every subcommand: 0 success; 1 the command ran and failed (an ogdata
error: unknown id, not found, integrity, offline — the message says what to do); 2 the command
line itself is wrong (unknown option, missing or malformed argument), as argparse reports it.
Every string that comes from a dataset or the Hub is printed escaped, never as Rich markup.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ogdata import config
from ogdata.console import console, esc, print_table
from ogdata.errors import OgdataError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_EPILOG = ("exit status: 0 success, 1 the command failed (the message says why and what to do), "
           "2 the command line is wrong")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is an integer in [0, 2**63), got {v}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ogdata", epilog=_EPILOG,
        description="Offline-RL datasets for markets: list, inspect, profile, download, generate, verify, publish.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("list", help="datasets in the catalogue, the local cache and (--remote) on the Hub",
                       epilog=_EPILOG)
    s.add_argument("--remote", action="store_true", help="also read the Hub's repo trees")

    sub.add_parser("envs", help="every registered environment id", epilog=_EPILOG)

    s = sub.add_parser("show", help="what a dataset holds, before you download it", epilog=_EPILOG)
    s.add_argument("target", help="dataset id (<env-id>/<tier>-v<N>) or path")

    s = sub.add_parser("profile", help="TQ, SACo and return statistics of a dataset, with plots", epilog=_EPILOG)
    s.add_argument("target", help="dataset id or path")
    s.add_argument("--reference", help="SACo reference dataset (default: the env's replay tier)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--plot", metavar="OUT.png", help="write return-distribution and TQ-vs-SACo plots")

    s = sub.add_parser("download", help="install datasets into OGDATA_HOME (Hub, else rebuilt from the recipe)",
                       epilog=_EPILOG)
    s.add_argument("ids", nargs="+", help="dataset ids")
    s.add_argument("--revision", help="branch, tag or commit of the Hub repo")
    s.add_argument("--force", action="store_true", help="fetch again even if installed")

    s = sub.add_parser("generate", help="generate a dataset tier from an environment", epilog=_EPILOG)
    s.add_argument("env", help="environment id (see `ogdata envs`)")
    s.add_argument("--tier", required=True, choices=["good", "medium", "poor", "replay", "random"])
    s.add_argument("--transitions", type=_positive, default=100_000)
    s.add_argument("--workers", type=_positive, default=1)
    s.add_argument("--out", help="output path (default: the installed location of the catalogue id when the job is "
                                 "exactly the catalogue recipe's, else OGDATA_HOME/custom/<env>/<tier>-n<N>-s<seed>)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset at the output path")
    s.add_argument("--ray", metavar="ADDRESS", help="run the jobs on a Ray cluster")

    s = sub.add_parser("verify", help="check every file of a dataset against its manifest (and recipe)",
                       epilog=_EPILOG)
    s.add_argument("target", help="dataset id or path")

    s = sub.add_parser("publish", help="upload a dataset and its card to the Hub", epilog=_EPILOG)
    s.add_argument("target", help="dataset id or path")
    s.add_argument("--repo", help="Hub dataset repo (default: <org>/<env-id>)")
    s.add_argument("--revision", help="branch to commit to")
    s.add_argument("--token", help="Hub token (default: HF_TOKEN); never printed")

    s = sub.add_parser("delete", help="remove installed datasets from OGDATA_HOME", epilog=_EPILOG)
    s.add_argument("ids", nargs="+", help="dataset ids")
    return p


# ------------------------------------------------------------------------------------ output

def _fail(command: str, message: Any) -> int:
    console(stderr=True).print(f"[red]ogdata {command}: error:[/red] {esc(message)}", soft_wrap=True)
    return EXIT_FAILED


# ---------------------------------------------------------------------------------- commands

def _envs() -> int:
    from ogdata.envs import env_spec, list_envs

    rows = []
    for i in list_envs():
        s = env_spec(i)
        rows.append([i, "multi" if s.multi_agent else "single", s.family, ",".join(s.extras) or "-",
                     s.description.split(".")[0]])
    print_table("ogdata environments", ["id", "agents", "family", "needs", "description"], rows)
    return EXIT_OK


def _list(remote: bool) -> int:
    from ogdata import catalogue, hub
    from ogdata.ids import installed_path
    from ogdata.resolve import custom, env_ids, installed
    from ogdata.storage.install import read_source

    cat, local = set(catalogue.catalogue_ids()), set(installed())
    remote_ids: set[str] = set()
    status, note = EXIT_OK, None
    if remote:
        try:
            remote_ids = set(hub.list_remote(env_ids()))
        except OgdataError as e:
            status, note = EXIT_FAILED, f"Hub not listed: {e}"
    columns = ["dataset", "catalogue", "local"] + ([f"hub ({config.hub_org()})"] if remote else [])
    rows = []
    for i in sorted(cat | local | remote_ids):
        src = read_source(installed_path(i)) if i in local else {}
        loc = ("rebuilt" if src.get("rebuilt") else f"@{str(src['commit'])[:7]}" if src.get("commit") else "yes") \
            if i in local else "-"
        rows.append([i, "yes" if i in cat else "-", loc] + (["yes" if i in remote_ids else "-"] if remote else []))
    print_table(f"ogdata datasets (OGDATA_HOME={config.home()})", columns, rows, wrap_last=False)
    extra = custom()
    if extra:
        print_table("custom datasets (ogdata generate with another size, seed or recipe; no catalogue id)",
                    ["path"], [[p] for p in extra], wrap_last=False)
    if not cat:
        print("(no catalogue in this install: ogdata/catalogue/*.json is absent)")
    if note:
        console(stderr=True).print(f"[yellow]{esc(note)}[/yellow]", soft_wrap=True)
    return status


def _download(ids: Iterable[str], revision: str | None, force: bool) -> int:
    from ogdata.resolve import resolve
    from ogdata.storage.install import read_source

    out, status = console(), EXIT_OK
    for i in ids:
        try:
            p = resolve(i, revision=revision, force=force)
        except OgdataError as e:
            status = _fail("download", f"{i}: {e}")
            continue
        src = read_source(p)
        how = "rebuilt from its recipe" if src.get("rebuilt") else \
            f"{src.get('repo_id', '?')}@{str(src.get('commit', '?'))[:12]}"
        out.print(esc(f"{i} -> {p} ({how})"), soft_wrap=True)
    return status


def _generate(a: argparse.Namespace) -> int:
    from ogdata.envs.registry import env_spec
    from ogdata.generate import catalogue_path, generate

    env_id = env_spec(a.env).id
    path = Path(a.out) if a.out else catalogue_path(env_id, a.tier, a.transitions, a.seed)
    t0 = time.perf_counter()
    ds = generate(env_id, a.tier, a.transitions, path, workers=a.workers, seed=a.seed, ray_address=a.ray,
                  overwrite=a.overwrite)
    dt = time.perf_counter() - t0
    m = ds.measures

    def fmt(x) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    print(f"wrote {ds.path}: {len(ds)} transitions, {ds.num_episodes} episodes in {dt:.1f} s "
          f"({len(ds) / max(dt, 1e-9):,.0f} transitions/s); id {ds.dataset_id or 'none (custom)'}; "
          f"TQ={fmt(m.get('tq'))} SACo={fmt(m.get('saco'))}")
    return EXIT_OK


def _verify(target: str) -> int:
    from ogdata.resolve import verify

    try:
        r = verify(target)
    except OgdataError as e:
        console(stderr=True).print(f"[red]FAILED[/red] {esc(target)}: {esc(e)}", soft_wrap=True)
        return EXIT_FAILED
    recipe = {"match": "recipe matches the catalogue",
              "not in catalogue": "not a catalogue id, recipe not compared",
              "no catalogue": "no catalogue in this install (ogdata/catalogue/*.json), recipe not compared"}
    console().print(esc(f"OK {target}: {r['files']} files match the manifest; {recipe[r['recipe']]}"),
                     soft_wrap=True)
    return EXIT_OK


def _publish(a: argparse.Namespace) -> int:
    from ogdata.publishing import publish

    sha = publish(a.target, repo_id=a.repo, token=a.token, revision=a.revision)
    console().print(esc(f"published {a.target} at commit {sha[:12]} on {config.hub_endpoint()}"), soft_wrap=True)
    return EXIT_OK


def _delete(ids: Iterable[str]) -> int:
    from ogdata.resolve import delete

    status = EXIT_OK
    for i in ids:
        try:
            print(f"{i}: {'deleted' if delete(i) else 'not installed'}")
        except OgdataError as e:
            status = _fail("delete", f"{i}: {e}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)   # exits with EXIT_USAGE on a wrong command line
    try:
        if args.command == "envs":
            return _envs()
        if args.command == "list":
            return _list(args.remote)
        if args.command == "show":
            from ogdata.profile import run_show

            return run_show(args.target)
        if args.command == "profile":
            from ogdata.profile import run_profile

            return run_profile(args.target, args.reference, args.json, args.plot)
        if args.command == "download":
            return _download(args.ids, args.revision, args.force)
        if args.command == "generate":
            return _generate(args)
        if args.command == "verify":
            return _verify(args.target)
        if args.command == "publish":
            return _publish(args)
        if args.command == "delete":
            return _delete(args.ids)
    except OgdataError as e:
        return _fail(args.command, e)
    except KeyboardInterrupt:
        print(f"ogdata {args.command}: interrupted; nothing half-written is left visible", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse's choices make this unreachable


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]
