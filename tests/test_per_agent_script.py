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
    assert row.startswith("| lob-competing-makers-2/good-v1 | iiql | 3 | maker_0 30.00 [") and "| 20.00" in row
    assert "(reference)" in out                        # the references' own split beside the runs'
    assert mod.main(["--runs-dir", str(tmp_path), "--datasets", "lob-desks-*"]) == 1


def test_per_agent_names_each_agent_in_the_envs_order(tmp_path, capsys):
    """Records list returns in the env's agent order (makers first beside the executor); the references
    file keys them by name: both are printed by name, in the env's order."""
    d = tmp_path / "lob-makers-and-executor__good-v1" / "mabc" / "seed0"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"dataset": "lob-makers-and-executor/good-v1", "algo": "mabc",
                                               "final": {"per_agent": {"return_mean": [16.0, 17.0, -1.5]}}}))
    mod = load_script("per_agent")
    assert mod.agent_names("lob-makers-and-executor") == ("maker_0", "maker_1", "desk_0")
    assert mod.main(["--runs-dir", str(tmp_path), "--datasets", "lob-makers-and-executor/*"]) == 0
    out = capsys.readouterr().out.splitlines()
    run = next(line for line in out if "| mabc |" in line)
    assert "maker_0 16.00 · maker_1 17.00 · desk_0 −1.50 | 18.50" in run
    ref = next(line for line in out if "(reference)" in line)
    assert [part.split()[0] for part in ref.split(" | ")[3].split(" · ")] == ["maker_0", "maker_1", "desk_0"]
