"""Write the committed dataset cards: dataset_cards/<env-id>/<tier>-v<N>.md for every dataset in a directory.

    python scripts/render_cards.py [DIR] [--out dataset_cards] [--check]
    python scripts/render_cards.py [DIR] --catalogue-table [--version 1]   # the README's catalogue table
    python scripts/render_cards.py --baselines results/v1-lite.json        # a suite's results into the cards

DIR holds generated datasets (default: $OGDATA_HOME/datasets, where `ogdata generate` puts the
catalogue); each card is the README.md the Hub shows for that tier, and <env-id>/README.md is
the environment's repo card. --check writes nothing and exits 1 when a card is missing or stale.
--baselines puts a protocol-v1 suite's results (its results JSON, e.g. results/v1-lite.json) into the
committed cards of its datasets, replacing their results section and nothing else: the datasets need not
be installed here (a copy rebuilt without its Replay tier would otherwise re-render a card without SACo).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ogdata import cards, config
from ogdata.ids import TIERS

ROOT = Path(__file__).resolve().parent.parent


def catalogue_table(src: Path, version: int = 1) -> str:
    """Markdown: one block of rows per env (TQ, coarse SACo, 100-bin SACo, behaviour score) × the five tiers
    of catalogue `version`."""
    import ogdata

    found: dict[str, dict[str, dict]] = {}
    for meta_file in sorted(src.glob(f"*/*-v{int(version)}/metadata.json")):
        ds = ogdata.load(meta_file.parent)
        source = str((ds.metadata.get("recipe") or {}).get("policy_source", ""))
        mark = " (expert+noise)" if "expert" in source else " (mixed)" if "mixed" in source else ""
        found.setdefault(ds.env_id, {})[ds.metadata["tier"]] = {"m": ds.measures, "ma": ds.multi_agent, "mark": mark,
                                                                "label": cards.saco_100_label(ds.metadata)}
    fmt = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    lines = ["| env | agents | measure | " + " | ".join(TIERS) + " |", "|---|---|---|" + "---:|" * len(TIERS)]
    for env, tiers in sorted(found.items()):
        ma = next(iter(tiers.values()))["ma"]
        # the informative coarse SACo first; the paper's 100-bin SACo labelled as its Replay tier's card labels it
        label = (tiers.get("replay") or {}).get("label", "SACo (100 bins)")
        rows = [("TQ", "tq", fmt), ("SACo (coarse)", "saco_coarse", fmt), (label, "saco", fmt),
                ("behaviour score", "behaviour_normalised_score", lambda x: "–" if x is None else f"{x:.0f}")]
        for i, (label, key, f) in enumerate(rows):
            head = f"| `{env}` | {'multi' if ma else 'single'} |" if i == 0 else "| | |"
            cells = [f((tiers.get(t) or {}).get("m", {}).get(key))
                     + ((tiers.get(t) or {}).get("mark", "") if key == "behaviour_normalised_score" else "")
                     for t in TIERS]
            lines.append(f"{head} {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def put_baselines(results_json: Path, out: Path) -> list[Path]:
    """The suite's results (`baselines.report.card_entries`) into each of its datasets' committed cards."""
    from baselines.report import card_entries

    doc = json.loads(results_json.read_text())
    changed = []
    for did, entry in card_entries(doc).items():
        path = out / f"{did}.md"
        if not path.is_file():
            print(f"no committed card for {did} at {path}: render it from the dataset first", file=sys.stderr)
            continue
        text = path.read_text()
        new = cards.with_baselines(text, {doc["suite"]: entry})
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?", default=None, help="directory of generated datasets (default: OGDATA_HOME/datasets)")
    p.add_argument("--out", default=str(ROOT / "dataset_cards"), help="where the cards go (default: dataset_cards/)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any card is missing or stale")
    p.add_argument("--catalogue-table", action="store_true", help="print the README's catalogue table; write nothing")
    p.add_argument("--version", type=int, default=1, help="catalogue version of the table (default 1)")
    p.add_argument("--baselines", type=Path, metavar="RESULTS_JSON",
                   help="put a v1 suite's results into the committed cards of its datasets; nothing else changes")
    args = p.parse_args(argv)
    if args.baselines:
        changed = put_baselines(args.baselines, Path(args.out))
        print(f"{len(changed)} card(s) given {args.baselines.name}'s results")
        return 0
    src = Path(args.dir) if args.dir else config.datasets_dir()
    if not src.is_dir():
        print(f"no datasets at {src}; generate the catalogue first (scripts/ or `ogdata generate`)", file=sys.stderr)
        return 2
    if args.catalogue_table:
        print(catalogue_table(src, args.version))
        return 0
    changed = cards.write_cards(src, args.out, check=args.check)
    verb = "stale or missing" if args.check else "written"
    for f in changed:
        print(f"{verb}: {f}")
    print(f"{len(changed)} card(s) {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
