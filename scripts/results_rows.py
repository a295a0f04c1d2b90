"""Markdown rows of a v1 results table for the README: final checkpoint, test markets, mean over seeds
[95 % bootstrap interval], read from the committed results document (so every README row has a script).

    python scripts/results_rows.py --datasets 'lob-*' --algos bc,iql,td3bc
    python scripts/results_rows.py --datasets 'option-exercise-*/medium-v1' --algos bc,cql,bcq --header
    python scripts/results_rows.py --improvement     # the probability-of-improvement table, whole
    python scripts/results_rows.py --readme README.md  # rewrite the README's v1 rows and P(X > Y) table in place

A cell with fewer seeds than the suite's minimum shows its seed count; a cell not run shows "—".
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baselines.report import improvement_table  # noqa: E402


def cell(entry: dict | None) -> str:
    """`mean [lo, hi]` of a cell's final scores, its seed count when short of the minimum, or a dash."""
    if entry is None:
        return "—"
    f = entry["final"]
    lo, hi = f["ci95"]
    known = all(isinstance(x, int | float) and math.isfinite(x) for x in (lo, hi))  # one seed: no interval
    text = (f"{f['mean']:.1f} [{lo:.1f}, {hi:.1f}]" if known else f"{f['mean']:.1f}").replace("-", "−")
    n = entry["n_seeds"]
    return text if entry.get("enough_seeds", True) else f"{text} ({n} seed{'' if n == 1 else 's'})"


# the headers of the README's v1 results tables: each row below one is `rows(doc, its dataset, the header's algos)`
README_TABLES = ("| dataset | bc | cql | iql | td3bc | arsq | mopo | lmopo |", "| dataset | bc | cql | bcq |",
                 "| dataset | mabc | iiql | itd3bc | matd3bc |")


def rows(doc: dict, pattern: str, algos: list[str]) -> list[str]:
    """One markdown row per dataset matching `pattern` that has a result for any of `algos`."""
    out = []
    for did, d in sorted(doc["datasets"].items()):
        if fnmatch.fnmatch(did, pattern) and any(a in d["algos"] for a in algos):
            out.append(f"| {did} | " + " | ".join(cell(d["algos"].get(a)) for a in algos) + " |")
    return out


def table_algos(header: str) -> list[str]:
    return [a.strip() for a in header.strip().strip("|").split("|")[1:]]


def update_readme(text: str, doc: dict) -> tuple[str, int]:
    """`text` with every row of the README_TABLES and the P(X > Y) table rewritten from `doc` (the datasets a
    table lists stay its choice; a row whose dataset has no record is an error), and how many lines changed."""
    lines = text.split("\n")
    changed = 0
    for i, line in enumerate(lines):
        hdr = next((h for h in README_TABLES if line.startswith(h)), None)
        if hdr is None:
            continue
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            did = lines[j].strip("|").split("|")[0].strip()
            new = rows(doc, did, table_algos(hdr))
            if len(new) != 1:
                raise ValueError(f"README row {did!r} under {hdr!r} has no record in the results document: "
                                 "remove the row or run its dataset (scripts/reproduce.py)")
            changed += new[0] != lines[j]
            lines[j] = new[0]
            j += 1
    imp = improvement_table(doc.get("improvement") or [])
    if imp:
        start = next((i for i, line in enumerate(lines) if line.startswith(imp[0])), None)
        if start is not None:
            end = start
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            changed += lines[start:end] != imp
            lines[start:end] = imp
    return "\n".join(lines), changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "v1-lite.json")
    ap.add_argument("--datasets", default="*", help="glob over dataset ids")
    ap.add_argument("--algos", help="comma-separated algorithms, one column each")
    ap.add_argument("--header", action="store_true", help="print the table's header first")
    ap.add_argument("--improvement", action="store_true", help="print the P(X > Y) table instead")
    ap.add_argument("--readme", type=Path, help="rewrite this README's v1 rows and P(X > Y) table in place")
    a = ap.parse_args(argv)
    doc = json.loads(a.results.read_text())
    if a.readme:
        try:
            text, changed = update_readme(a.readme.read_text(), doc)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 1
        a.readme.write_text(text)
        print(f"{a.readme}: {changed} table lines rewritten from {a.results}")
        return 0
    if a.improvement:
        print("\n".join(improvement_table(doc.get("improvement") or [])))
        return 0
    if not a.algos:
        ap.error("--algos is required (or --improvement)")
    algos = [x for x in a.algos.split(",") if x]
    lines = rows(doc, a.datasets, algos)
    if not lines:
        print(f"no dataset in {a.results} matches {a.datasets!r} with any of {algos}", file=sys.stderr)
        return 1
    if a.header:
        print("| dataset | " + " | ".join(algos) + " |\n| --- |" + " ---: |" * len(algos))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
