"""The README's v1 reference and results rows are the committed records', digit for digit.

The references table is typed from `ogdata/envs/references-v1.json` and the protocol-v1 results rows are
printed by `scripts/results_rows.py` from `results/v1-lite.json` (the model-gap rows by `scripts/model_gap.py`); a re-run that moves a number and a README
left behind would otherwise disagree silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAIR = re.compile(r"([−-]?\d[\d,]*\.(\d+)) ± (\d+\.\d+)")


def _table(header: str) -> list[list[str]]:
    """The cells of every row of the README table whose header line starts with `header`."""
    lines = README.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith(header):
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                out.append([c.strip() for c in row.strip().strip("|").split("|")])
    return out


def _num(text: str) -> float:
    return float(text.replace("−", "-").replace(",", ""))


def _records(entry: dict) -> list[tuple[float, float]]:
    recs = [(entry["random"]["mean"], entry["random"]["se"]), (entry["expert"]["mean"], entry["expert"]["se"])]
    recs += [(b["mean"], b["se"]) for b in entry.get("baselines", {}).values()]
    return recs


REFS = json.loads((ROOT / "ogdata" / "envs" / "references-v1.json").read_text())["envs"]
REF_ROWS = _table("| env | random | expert (kind: policy) |")


def test_the_references_table_is_there():
    assert len(REF_ROWS) >= 20, "the README's references-v1 table was not found"


@pytest.mark.parametrize("cells", REF_ROWS, ids=[r[0] for r in REF_ROWS])
def test_reference_rows_match_references_v1(cells):
    env = cells[0].strip("`")
    assert env in REFS, f"README references row {env!r} has no entry in references-v1.json"
    recs = _records(REFS[env])
    rand = PAIR.search(cells[1])
    assert rand, f"{env}: no 'mean ± se' in the random cell {cells[1]!r}"
    nd = len(rand.group(2))
    assert (round(_num(rand.group(1)), nd), round(_num(rand.group(3)), nd)) == \
        (round(recs[0][0], nd), round(recs[0][1], nd)), f"{env}: random {cells[1]!r} vs {recs[0]}"
    nd_e = len(cells[3].split(".")[-1].split()[0]) if "." in cells[3] else 0
    assert f"{REFS[env]['expert']['mean']:.{nd_e}f}" == f"{_num(cells[3].split()[0]):.{nd_e}f}", \
        f"{env}: expert {cells[3]!r} vs {REFS[env]['expert']['mean']}"
    # every 'mean ± se' among the named baselines is one of the env's recorded rows at the README's precision
    for m in PAIR.finditer(cells[4]):
        nd = len(m.group(2))
        got = (round(_num(m.group(1)), nd), round(_num(m.group(3)), nd))
        assert got in {(round(a, nd), round(b, nd)) for a, b in recs}, \
            f"{env}: named baseline {m.group(0)!r} is not a row of references-v1.json"


V1_ROWS = [(hdr, r) for hdr in load_script("results_rows").README_TABLES for r in _table(hdr)]


def test_the_v1_results_tables_are_there():
    assert len(V1_ROWS) >= 30


@pytest.mark.parametrize("hdr,cells", V1_ROWS, ids=[c[0] for _, c in V1_ROWS])
def test_v1_results_rows_are_the_records(hdr, cells):
    doc = json.loads((ROOT / "results" / "v1-lite.json").read_text())
    rr = load_script("results_rows")
    want = rr.rows(doc, cells[0], rr.table_algos(hdr))
    assert want == ["| " + " | ".join(cells) + " |"], f"README row {cells} differs from results_rows.py: {want}"


def test_risk_reference_rows_are_the_records():
    """The README's risk-task references are `scripts/risk_references.py`'s rows of its committed record."""
    doc = json.loads((ROOT / "results" / "risk_references.json").read_text())
    printed = [line for line in load_script("risk_references").markdown(doc).splitlines() if line.startswith("|")]
    header = "| task | reference | mean | CVaR_α | objective |"
    readme = [line for line in README.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(readme) if line.startswith(header))
    assert readme[start:start + len(printed)] == printed
    # every task's reference does at least as well on its objective as the mean's expert on the same markets, or
    # (chosen on validation, e.g. flat on trading-sp500's held-out years) lies within the expert's test interval
    for tid, t in doc["tasks"].items():
        refs = [r for r in t["policies"].values() if r["role"].startswith("the task")]
        e = t["policies"][t["expert"]]["objective"]
        assert all(r["objective"]["value"] >= min(e["value"], e["ci95"][0]) for r in refs), tid


def test_risk_task_summary_is_the_records():
    """The README's summary of the risk tasks' objectives is `risk_table.py --task-table`'s, printed from its
    committed record, row for row."""
    doc = json.loads((ROOT / "results" / "risk_tasks_v1_lite.json").read_text())
    lines = load_script("risk_table").tasks_markdown(doc).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| task | reference | objective |"))
    printed = lines[start:start + next(i for i, line in enumerate(lines[start:]) if not line.startswith("|"))]
    assert len(printed) == 2 + len(doc["tasks"])
    readme = README.splitlines()
    at = readme.index(printed[0])
    assert readme[at:at + len(printed)] == printed


def test_hlgauss_ablation_summary_is_the_records():
    """The README's MSE vs HL-Gauss tables (per learner, per learner and env family) and its list of what the
    ablation has not yet run are `risk_table.py --suite-ablation`'s, printed from its committed record, row for row."""
    doc = json.loads((ROOT / "results" / "hlgauss_ablation_v1_lite.json").read_text())
    printed = load_script("risk_table").suite_ablation_summary(doc)
    readme = README.splitlines()
    at = readme.index(printed[0])
    assert readme[at:at + len(printed)] == printed
    assert len(printed) >= 2 + 6 + 1 + 2 + 6
    not_run = load_script("risk_table").not_run_lines(doc)  # what the ablation lacks, as the records say
    at = readme.index(not_run[0])
    assert readme[at:at + len(not_run)] == not_run


def test_the_ablation_rewriter_restores_a_stale_readme():
    """`risk_table.py --ablation-readme` leaves the committed README as it is, and rewrites a stale summary row, a
    stale cell count, a not-run list of the wrong length and a blank-line gap back to the record's; a README
    without the blocks is an error that says what to put back."""
    rt = load_script("risk_table")
    doc = json.loads((ROOT / "results" / "hlgauss_ablation_v1_lite.json").read_text())
    same, changed = rt.update_readme_ablation(README, doc)
    assert (same, changed) == (README, 0)
    cells, runs = rt.ablation_counts(doc)
    assert rt.counts_text(doc) in " ".join(README.split())  # the prose says the record's counts
    row = rt.suite_ablation_summary(doc)[2]  # td3bc's IQM row
    not_run = rt.not_run_lines(doc)
    stale = (README.replace(row, "| td3bc | 1 | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | 0 / 0 / 1 | 0 / 0 |")
             .replace(f"{cells:,} dataset × learner", "7 dataset × learner")
             .replace(f"cells, {runs:,} HL-Gauss runs", "cells, 35 HL-Gauss runs")
             .replace("\n".join(not_run), "\n".join([not_run[0], "", "- good: 1 cell, 1 run — cql: x", "- nowhere"])))
    assert stale != README
    back, changed = rt.update_readme_ablation(stale, doc)
    assert back == README and changed >= 3
    with pytest.raises(ValueError, match="no line starting 'Not yet run:'"):
        rt.update_readme_ablation(README.replace(not_run[0], "Nothing here"), doc)


def test_model_gap_rows_are_the_scripts():
    """The README's model-vs-true table (MOPO/LMOPO at three penalties) is scripts/model_gap.py's output, row for row."""
    header = "| dataset | algo | λ | seeds | true (test markets) |"
    readme_rows = ["| " + " | ".join(c) + " |" for c in _table(header)]
    md = (ROOT / "results" / "mb" / "model_gap.md").read_text().splitlines()
    start = next(i for i, line in enumerate(md) if line.startswith(header))
    script_rows = [line for line in md[start + 2:] if line.startswith("| ") and not line.startswith("| ---")]
    script_rows = script_rows[:next((i for i, r in enumerate(script_rows) if r.startswith("| env |")), None)]
    assert len(readme_rows) >= 12 and readme_rows == script_rows


def test_improvement_table_is_the_records():
    """The README's probability-of-improvement table is `results_rows.py --improvement`'s, row for row."""
    from baselines.report import improvement_table

    doc = json.loads((ROOT / "results" / "v1-lite.json").read_text())
    printed = improvement_table(doc["improvement"])
    readme = [line for line in README.splitlines() if line.startswith("|")]
    start = readme.index(printed[0])
    assert readme[start:start + len(printed)] == printed
    assert len(printed) >= 2 + 8


def test_the_readme_rewriter_changes_nothing_in_an_up_to_date_readme():
    """`results_rows.py --readme` leaves the committed README as it is (its tables are the records') and rewrites
    a stale row and a stale P(X > Y) line back to the records'."""
    rr = load_script("results_rows")
    doc = json.loads((ROOT / "results" / "v1-lite.json").read_text())
    assert rr.update_readme(README, doc) == (README, 0)
    hdr, cells = V1_ROWS[0]
    row = "| " + " | ".join(cells) + " |"
    stale = README.replace(row, "| " + cells[0] + " | 1.0 |" + " x |" * (len(cells) - 2), 1)
    imp = rr.improvement_table(doc["improvement"])[2]
    stale = stale.replace(imp, imp[:-2] + "? |", 1)
    assert stale != README and rr.update_readme(stale, doc) == (README, 2)
    bad = "| dataset | bc | cql | bcq |\n| --- | ---: | ---: | ---: |\n| nope/good-v1 | 1 | 2 | 3 |"
    with pytest.raises(ValueError, match="'nope/good-v1'.*no record"):
        rr.update_readme(bad, doc)


def test_every_dataset_with_the_issue_23_learners_has_its_row():
    """The continuous table lists every dataset where ARSQ, MOPO or LMOPO have records (the other tables choose
    their rows; every cell of every dataset is in results/v1-lite.md)."""
    rr = load_script("results_rows")
    doc = json.loads((ROOT / "results" / "v1-lite.json").read_text())
    hdr = rr.README_TABLES[0]
    ran = {did for did, d in doc["datasets"].items() if {"arsq", "mopo", "lmopo"} & set(d["algos"])}
    assert len(ran) >= 50 and ran - {cells[0] for cells in _table(hdr)} == set()
