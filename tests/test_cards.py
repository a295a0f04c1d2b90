"""Dataset cards: Hub front matter that huggingface_hub parses, the sections a reader needs, and
the committed cards under dataset_cards/ kept in step with the catalogue."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_flat_episodes
from huggingface_hub import DatasetCard

import ogdata
from ogdata import cards, catalogue
from ogdata.envs.registry import EnvSpec
from ogdata.storage import update_metadata

ROOT = Path(__file__).resolve().parent.parent


def make_ds(tmp_path, dataset_id, lengths=(5, 7, 4), n_agents=None, **meta):
    env_id, folder = dataset_id.split("/")
    arrays = make_flat_episodes(np.random.default_rng(0), list(lengths), n_agents=n_agents)
    metadata = {"dataset_id": dataset_id, "env_id": env_id, "tier": folder.split("-v")[0], **meta}
    return ogdata.create_dataset(tmp_path / folder, metadata=metadata, **arrays)


RECIPE = {"tier": "good", "rule": "policies at or above the Good threshold", "threshold": 0.6, "noise": 0.05,
          "policies": [{"checkpoint": "execution-ac/good-0", "score": 71.5}],
          "generation": {"seed": 3, "transitions_requested": 16}}


def test_front_matter_parses_with_huggingface_hub(tmp_path):
    ds = make_ds(tmp_path, "execution-ac/good-v0", recipe=RECIPE)
    card = DatasetCard(cards.render(ds))
    d = card.data.to_dict()
    assert d["license"] == "apache-2.0"  # execution-ac simulates its prices
    assert d["pretty_name"] == "ogdata execution-ac/good-v0"
    assert d["task_categories"] == ["reinforcement-learning"]
    assert d["size_categories"] == ["n<1K"]
    assert {"ogdata", "offline-reinforcement-learning", "single-agent", "execution", "good"} <= set(d["tags"])
    assert d["configs"] == [{"config_name": "good-v0",
                             "data_files": [{"split": "train", "path": "good-v0/metadata.json"}]}]
    assert d["viewer"] is False
    assert card.text.lstrip().startswith("# execution-ac/good-v0")


@pytest.mark.parametrize("n, label", [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (99_999, "10K<n<100K"),
                                      (999_999, "100K<n<1M"), (1_000_000, "1M<n<10M"), (10**8, "100M<n<1B")])
def test_size_categories(n, label):
    assert cards.size_category(n) == label


def test_sections_say_what_a_reader_needs(tmp_path):
    ds = make_ds(tmp_path, "execution-ac/good-v0", recipe=RECIPE, env_kwargs={"sigma": 0.95},
                 reference_returns={"random": -120.5, "expert": -20.25},
                 measures={"tq": 0.8125, "saco": 0.3, "returns": {"mean": -40.0, "std": 5.5}})
    text = cards.render(ds)
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads == ["Load it", "Environment and dynamics", "Tier recipe", "Size", "Spaces", "Measures",
                     "Licence and attribution"]
    assert "**16 transitions** in **3 episodes**" in text
    assert 'ogdata.load("execution-ac/good-v0")' in text and 'allow_patterns=["good-v0/*"]' in text
    assert "Almgren" in text  # the registered env's description (dynamics)
    assert '`{"sigma": 0.95}`' in text
    assert "| threshold | 0.6 |" in text  # thresholds that define the tier
    assert "| policies | " in text and "execution-ac/good-0" in text
    assert "expert -20.25, random -120.5" in text
    nbytes = sum(v["size"] for v in ds.metadata["manifest"].values())
    assert f"| bytes on disk | {nbytes:,} |" in text and "| mean episode length | 5.333 |" in text
    assert "| observation | Box(shape (3,), float32, [-inf, inf]) |" in text
    assert "| TQ | 0.8125 |" in text and "| SACo (100 bins) | 0.3 |" in text and "| returns.std | 5.5 |" in text
    assert "| episode return, mean ± std | -40 ± 5.5 |" in text
    assert "| normalised score of the mean return | 80.3 |" in text  # 100 (-40 + 120.5) / (-20.25 + 120.5)
    assert "| exploration noise | 0.05 |" in text and "Selection rule: policies at or above" in text
    assert "no third-party market data" in text and "Dataset licence: `apache-2.0`" in text
    digest = cards.card_recipe_digest(text)
    assert digest == cards.recipe_digest(catalogue.recipe_identity(ds.metadata))
    # one function of the metadata: any input form, any time, the same text
    assert cards.render(ds.path) == cards.render(dict(ds.metadata)) == text


def test_plots_and_baselines_when_present(tmp_path):
    meta = dict(make_ds(tmp_path, "execution-ac/medium-v0").metadata)
    meta["manifest"] = {**meta["manifest"], "plots/returns.png": {"sha256": "0" * 64, "size": 10}}
    meta["baselines"] = {"cql": {"score": 60.0, "std": 2.0}, "bc": {"score": 51.25, "std": 3.125}}
    text = cards.render(meta)
    assert "## Plots" in text and "![returns](plots/returns.png)" in text
    assert "## Baseline results" in text
    assert "| algorithm | score | std |" in text and "| bc | 51.25 | 3.125 |" in text
    assert text.index("| bc |") < text.index("| cql |")
    bare = make_ds(tmp_path / "b", "execution-ac/poor-v0")
    assert "## Plots" not in cards.render(bare) and "## Baseline results" not in cards.render(bare)
    assert "Not profiled yet" in cards.render(bare) and "No return thresholds recorded" in cards.render(bare)


@pytest.mark.parametrize("meta, license, phrase", [
    ({"price_source": "skfolio"}, "bsd-3-clause", "for testing and examples"),
    ({"env_kwargs": {"source": "skfolio-sp500"}}, "bsd-3-clause", "BSD-3-Clause"),
    ({"price_source": "arch"}, "ncsa", "NCSA"),
    ({"env_kwargs": {"prices": "arch.sp500"}}, "ncsa", "Kevin Sheppard"),
    ({}, "apache-2.0", "simulated by the environment"),
])
def test_licence_follows_the_price_source(tmp_path, meta, license, phrase):
    ds = make_ds(tmp_path, "execution-ac/good-v0", **meta)
    text = cards.render(ds)
    assert DatasetCard(text).data.license == license and phrase in text


@pytest.mark.parametrize("env_id, license, phrase", [
    ("portfolio-sp500", "bsd-3-clause", "for testing and examples"),
    ("trading-sp500", "ncsa", "Kevin Sheppard"),
    ("portfolio-synth", "apache-2.0", "calibrated on the training-period returns of the 20 S&P 500 stocks"),
    ("trading-synth-regime", "apache-2.0", "S&P 500 index in `arch.data`"),
    ("market-making-as", "apache-2.0", "no third-party market data"),
])
def test_licence_of_the_registered_environments(tmp_path, env_id, license, phrase):
    if env_id not in ogdata.list_envs():
        pytest.skip(f"{env_id} is not registered in this tree")
    text = cards.render(make_ds(tmp_path, f"{env_id}/good-v0"))
    assert DatasetCard(text).data.license == license and phrase in text


def test_order_book_cards_cite_where_every_parameter_comes_from(tmp_path):
    """The LOB ids' cards name the paper and the estimates behind the default calibration, and say which
    parameters are ours (issue #16: cite every parameter's source in the cards)."""
    text = cards.render(make_ds(tmp_path, "lob-execution/good-v1"))
    said = text.split("Parameters and their sources:")[1].split("\n")[0]
    for fact in ("Cont, Stoikov & Talreja (2010)", "k = 1.92, α = 0.52", "μ = 0.94", "0.71, 0.81, 0.68, 0.56, 0.47",
                 "Huang, Lehalle & Rosenbaum (2015)", "Ours, not estimated"):
        assert fact in said, fact
    assert "Parameters and their sources" not in cards.render(make_ds(tmp_path / "ac", "execution-ac/good-v1"))


def test_real_data_env_without_a_recorded_source_says_so(tmp_path, monkeypatch):
    spec = EnvSpec(id="portfolio-x", core="m:C", family="portfolio", description="Real prices.",
                   extras=("realdata",))
    monkeypatch.setattr(cards, "_spec", lambda env_id: spec)
    text = cards.render(make_ds(tmp_path, "portfolio-x/good-v0"))
    assert DatasetCard(text).data.license == "other" and "does not record their source" in text
    assert "pip install ogdata[realdata]" in text


def test_multi_agent_card(tmp_path):
    ds = make_ds(tmp_path, "joint-execution-2/replay-v0", lengths=(4, 4), n_agents=2)
    text = cards.render(ds)
    assert "multi-agent" in DatasetCard(text).data.tags
    assert "agents: agent_0, agent_1" in text and "| global state | Box(shape (4,)" in text
    assert "the SACo reference" in text  # the replay tier's meaning


def test_cards_lead_with_the_coarse_saco_and_label_the_saturated_one(tmp_path):
    """The paper's 100-bin SACo is labelled saturated when nearly every transition is its own cell,
    comes after the informative coarse SACo, and the card says why (deterministic MDPs vs continuous)."""
    sat = make_ds(tmp_path / "s", "execution-ac/good-v0",
                  measures={"tq": 0.9, "saco": 0.9999, "saco_coarse": 0.7, "unique_state_actions": 15})
    text = cards.render(sat)
    head = text.split("## Measures")[1].split("<details>")[0]
    assert head.index("| SACo (coarse grid) | 0.7 |") < head.index("| SACo (100 bins, saturated) | 0.9999 |")
    assert "deterministic MDPs" in head and "saturates at ≈ 1" in head and "as the paper defines" not in text
    wide = make_ds(tmp_path / "w", "trading-sp500/good-v0",  # real prices repeat: few distinct cells, not saturated
                   measures={"saco": 0.72, "saco_coarse": 0.72, "unique_state_actions": 4})
    assert "| SACo (100 bins) | 0.72 |" in cards.render(wide)
    env = cards.render_env_card("execution-ac", [sat])
    assert "| TQ | SACo (coarse grid) | SACo (100 bins) |" in env and "| 0.9 | 0.7 | 0.9999 |" in env
    assert "deterministic MDPs" in env


def test_env_card_lists_every_tier(tmp_path):
    good = make_ds(tmp_path / "g", "execution-ac/good-v0", measures={"tq": 0.9, "saco": 0.2})
    rnd = make_ds(tmp_path / "r", "execution-ac/random-v0", lengths=(3,) * 400, measures={"tq": 0.0})
    text = cards.render_env_card("execution-ac", [rnd, good.path])
    card = DatasetCard(text)
    assert [c["config_name"] for c in card.data.configs] == ["good-v0", "random-v0"]
    assert card.data.size_categories == ["1K<n<10K"]  # 16 + 1200 transitions
    assert "| [execution-ac/good-v0](good-v0/README.md) | 16 | 3 | 0.9 | — | 0.2 |" in text
    assert "| [execution-ac/random-v0](random-v0/README.md) | 1,200 | 400 | 0 | — | — |" in text
    assert "Almgren" in text


def test_write_cards_and_check(tmp_path):
    src = tmp_path / "datasets"
    make_ds(src / "execution-ac", "execution-ac/good-v0", recipe=RECIPE)
    make_ds(src / "execution-ac", "execution-ac/poor-v0")
    (src / "execution-ac" / ".poor-v0.partial").mkdir()  # staging dirs are skipped
    out = tmp_path / "cards"
    written = cards.write_cards(src, out)
    assert sorted(Path(f).relative_to(out).as_posix() for f in written) == [
        "execution-ac/README.md", "execution-ac/good-v0.md", "execution-ac/poor-v0.md"]
    assert (out / "execution-ac" / "good-v0.md").read_text() == cards.render(src / "execution-ac" / "good-v0")
    assert cards.write_cards(src, out, check=True) == []
    update_metadata(src / "execution-ac" / "poor-v0", measures={"tq": 0.1})
    stale = cards.write_cards(src, out, check=True)
    assert [Path(f).name for f in stale] == ["README.md", "poor-v0.md"]
    # the script: --check exits 1 while stale, writing fixes it
    script = [sys.executable, str(ROOT / "scripts" / "render_cards.py"), str(src), "--out", str(out)]
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(script, capture_output=True).returncode == 0
    r = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert r.returncode == 0 and "0 card(s)" in r.stdout


def test_committed_cards_match_the_catalogue():
    cat = catalogue.entries()
    if not cat:
        pytest.skip("no catalogue yet (ogdata/catalogue/*.json): nothing to keep in sync")
    cards_dir = ROOT / "dataset_cards"
    committed = {f"{p.parent.name}/{p.stem}" for p in cards_dir.glob("*/*.md") if p.name != "README.md"}
    fix = "regenerate them with `python scripts/render_cards.py <datasets dir>`"
    if not committed:
        pytest.skip(f"the catalogue has {len(cat)} datasets but no card is committed yet: generate the catalogue, "
                    f"then {fix}; from the first committed card on, this test enforces the full set")
    assert sorted(set(cat) - committed) == [], f"catalogue datasets without a committed card; {fix}"
    assert sorted(committed - set(cat)) == [], f"cards for datasets not in the catalogue; {fix}"
    for did, entry in sorted(cat.items()):
        env_id, folder = did.split("/")
        text = (cards_dir / env_id / f"{folder}.md").read_text()
        card = DatasetCard(text)
        assert card.data.pretty_name == f"ogdata {did}" and card.data.task_categories == ["reinforcement-learning"]
        assert cards.card_recipe_digest(text) == cards.recipe_digest(entry["expect"]), \
            f"{did}: the committed card was rendered from a dataset of another recipe; {fix}"
    for env_id in {d.split("/")[0] for d in cat}:
        env_card = DatasetCard((cards_dir / env_id / "README.md").read_text())
        assert {c["config_name"] for c in env_card.data.configs} == {d.split("/")[1] for d in cat
                                                                     if d.startswith(env_id + "/")}


def test_reproduction_results_render_as_a_table(tmp_path):
    """The layout scripts/reproduce.py writes into metadata becomes a readable table, not raw JSON."""
    meta = dict(make_ds(tmp_path, "execution-ac/medium-v0").metadata)
    meta["baselines"] = {"lite": {"algos": {"iql": {"last_mean": 54.88, "last_std": 1.6, "best_mean": 55.58,
                                                    "return_mean": -642.8, "n_seeds": 3}},
                                  "settings": {"steps": 5000, "hidden": 64, "layers": 2, "batch_size": 256,
                                               "seeds": 3, "eval_episodes": 10, "evals": 5}}}
    text = cards.render(meta)
    section = text.split("## Baseline results")[1].split("## ")[0]
    assert "**lite** suite: 5000 updates, MLP 2×64" in section
    assert "| iql | 54.88 ± 1.6 | 55.58 | -642.8 | 3 |" in section, section
    assert "{" not in section


def test_v1_reproduction_results_render_final_scores_with_intervals(tmp_path):
    """Protocol-v1 results (scripts/reproduce.py update_cards_v1) render the final checkpoint's mean and
    bootstrap interval on the fixed test markets, the validation-chosen checkpoint labelled beside it."""
    meta = dict(make_ds(tmp_path, "execution-ac/medium-v1").metadata)
    meta["baselines"] = {"v1-lite": {"protocol": "v1", "markets": "execution-ac",
                                     "settings": {"steps": 5000, "hidden": 64, "layers": 2, "batch_size": 256},
                                     "algos": {"bc": {"final_mean": 71.25, "final_ci95": [68.5, 74.0], "n_seeds": 5,
                                                      "best_on_validation_mean": 72.5},
                                               "iql": {"final_mean": 60.0, "final_ci95": [60.0, 60.0], "n_seeds": 1,
                                                       "best_on_validation_mean": None}}}}
    section = cards.render(meta).split("## Baseline results")[1].split("## ")[0]
    assert "**v1-lite** suite (evaluation protocol v1)" in section and "final checkpoint" in section
    assert "| bc | 71.25 | [68.5, 74] | 72.5 | 5 |" in section, section
    assert "| iql | 60 | — | — | 1 |" in section, section
    assert "{" not in section


def test_suite_results_patched_into_a_card_read_as_a_render_with_them(tmp_path):
    """cards.with_baselines gives exactly the card `render` writes for metadata carrying those results, from a
    card without a results section or with another one; scripts/render_cards.py --baselines writes them from a
    suite's results JSON (baselines.report.card_entries) into the committed card and touches nothing else."""
    import json

    from tests.scripts import load_script

    meta = dict(make_ds(tmp_path, "execution-ac/medium-v1").metadata)
    entry = {"protocol": "v1", "markets": "execution-ac", "settings": {"steps": 5000, "hidden": 64, "layers": 2,
                                                                         "batch_size": 256},
             "algos": {"bc": {"final_mean": 71.25, "final_ci95": [68.5, 74.0], "n_seeds": 5,
                              "best_on_validation_mean": 72.5}}}
    bare = cards.render(meta)
    want = cards.render({**meta, "baselines": {"v1-lite": entry}})
    assert cards.with_baselines(bare, {"v1-lite": entry}) == want
    other = cards.render({**meta, "baselines": {"v1-lite": {**entry, "algos": {}}}})
    assert cards.with_baselines(other, {"v1-lite": entry}) == want
    with pytest.raises(ValueError, match="pass every suite it should keep"):
        cards.with_baselines(want, {})          # a suite's results are never dropped silently
    both = cards.render({**meta, "baselines": {"v1-lite": entry, "lite": {**entry, "protocol": "v1"}}})
    with pytest.raises(ValueError, match=r"suite\(s\) \['lite'\]"):
        cards.with_baselines(both, {"v1-lite": entry})
    assert cards.with_baselines(both, {"v1-lite": entry, "lite": {**entry, "protocol": "v1"}}) == both
    with pytest.raises(ValueError, match="not a rendered dataset card"):
        cards.with_baselines("# a README\n", {"v1-lite": entry})
    # the script: a results JSON in the layout of results/v1-lite.json, and a committed card
    out = tmp_path / "cards"
    (out / "execution-ac").mkdir(parents=True)
    (out / "execution-ac" / "medium-v1.md").write_text(bare)
    doc = {"suite": "v1-lite", "settings": {**entry["settings"], "jobs": 2, "threads": 1},
           "datasets": {"execution-ac/medium-v1": {"algos": {"bc": {
               "markets": "execution-ac", "final": {"mean": 71.25, "ci95": [68.5, 74.0]}, "n_seeds": 5,
               "best_on_validation": {"mean": 72.5}}}},
               "execution-ac/good-v1": {"algos": {}}}}
    (tmp_path / "v1-lite.json").write_text(json.dumps(doc))
    changed = load_script("render_cards").put_baselines(tmp_path / "v1-lite.json", out)
    assert changed == [out / "execution-ac" / "medium-v1.md"]
    assert changed[0].read_text() == want
