"""scripts/per_agent.py: each agent's return per (dataset, algorithm) from run records, and the gap."""

from __future__ import annotations

import json

from tests.scripts import load_script


def test_per_agent_rows_from_records(tmp_path, capsys):
    for seed, split in enumerate(([30.0, 10.0], [32.0, 12.0], [28.0, 8.0])):
        d = tmp_path / "lob-competing-makers-2__good-v1" / "iiql" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"dataset": "lob-competing-makers-2/good-v1", "algo": "iiql",
                                                   "final": {"per_agent": {"return_mean": split}}}))
    old = tmp_path / "lob-competing-makers-2__good-v1" / "mabc" / "seed0"   # a record from before per_agent
    old.mkdir(parents=True)
    (old / "result.json").write_text(json.dumps({"dataset": "lob-competing-makers-2/good-v1", "algo": "mabc",
                                                 "final": {}}))
    mod = load_script("per_agent")
    runs = mod.collect(tmp_path, "lob-competing-makers-*")
    assert list(runs) == [("lob-competing-makers-2/good-v1", "iiql")]
    assert mod.main(["--runs-dir", str(tmp_path), "--datasets", "lob-competing-makers-*"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "| iiql |" in line)
    assert row.startswith("| lob-competing-makers-2/good-v1 | iiql | 3 | 30.00 [") and "| 20.00" in row
    assert "(reference)" in out                        # the references' own split beside the runs'
    assert mod.main(["--runs-dir", str(tmp_path), "--datasets", "lob-desks-*"]) == 1
