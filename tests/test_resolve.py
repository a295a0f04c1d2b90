"""The resolver, generation's atomic unit, the public Minari-style API and the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_flat_episodes

import ogdata
from ogdata import cards, catalogue, cli
from ogdata.errors import InvalidArgumentError, InvalidIdError, OfflineError
from ogdata.generate import generate
from ogdata.policies.ppo import PPOConfig

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **extra}
    env.pop("COLUMNS", None)
    return env


def run_cli(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ogdata", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(**env), timeout=300)


@pytest.fixture
def tiny_catalogue(tmp_path, monkeypatch):
    """market-making-as with a two-seed, 4k-step training run as its Replay tier, and a Random tier."""
    d = tmp_path / "catalogue"
    d.mkdir()
    monkeypatch.setattr(catalogue, "CATALOGUE_DIR", d)
    cfg = PPOConfig(total_steps=4096, num_envs=16, n_steps=32, checkpoints=1, early_checkpoints=0, eval_episodes=8)
    recipe = {"format": "ogdata-recipe", "env_id": "market-making-as", "env_kwargs": {}, "version": 0,
              "reference_returns": {"random": -11.6, "expert": 37.5},
              "training": {"config": cfg.to_json(), "seeds": [0, 1], "record_envs": 2,
                           "wall_time_s": {"0": 3.0, "1": 3.0}},
              "tiers": {"replay": {"transitions": 600}, "random": {"transitions": 300, "seed": 1}}}
    (d / "market-making-as.json").write_text(json.dumps(recipe))
    return recipe


# ----------------------------------------------------------------------------------- resolver

def test_a_rebuilt_tier_carries_its_coverage_and_says_when_it_retrains(tiny_catalogue, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = ogdata.load("market-making-as/random-v0")
    err = capsys.readouterr().err
    assert "resolving market-making-as/replay-v0 first" in err
    assert "re-trained now" in err and "seed(s) [0, 1]" in err          # said up front, before minutes of PPO
    m = ds.measures
    assert m["saco"] is not None and m["saco_coarse"] is not None and m["tq"] is not None
    replay = ogdata.load("market-making-as/replay-v0", download=False)  # installed on the way
    assert replay.measures["saco"] == 1.0
    assert ogdata.verify("market-making-as/random-v0")["recipe"] == "match"


def test_offline_and_not_in_the_catalogue_names_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        ogdata.load("execution-ac/good-v9")


@pytest.mark.parametrize("bad", [None, 3, "x" * 5000, f"execution-ac/good-v{'9' * 5000}",
                                 f"{'a' * 5000}/good-v0", "execution-ac/great-v0"])
def test_bad_ids_raise_ogdata_errors(bad):
    with pytest.raises(InvalidIdError):
        ogdata.download(bad)
    with pytest.raises((InvalidIdError, ogdata.errors.DatasetNotFoundError)):
        ogdata.load(bad)


def test_delete_removes_only_the_installed_copy(tmp_path, monkeypatch):
    from ogdata.ids import installed_path

    did = "toy-del/good-v0"
    arrays = make_flat_episodes(np.random.default_rng(0), [3, 4])
    ogdata.create_dataset(installed_path(did), metadata={"dataset_id": did}, **arrays)
    assert ogdata.load(did, download=False).num_episodes == 2
    assert ogdata.delete(did) is True and not installed_path(did).exists()
    assert ogdata.delete(did) is False
    assert run_cli("delete", "toy-del/good-v0", OGDATA_HOME=os.environ["OGDATA_HOME"]).stdout.strip() == \
        "toy-del/good-v0: not installed"


def test_combine_and_split_datasets(tmp_path):
    a = ogdata.create_dataset(tmp_path / "a", **make_flat_episodes(np.random.default_rng(1), [3, 5]))
    b = ogdata.create_dataset(tmp_path / "b", **make_flat_episodes(np.random.default_rng(2), [4]))
    c = ogdata.combine_datasets([a, b.path], tmp_path / "c")
    assert c.num_episodes == 3 and len(c) == 12 and c.dataset_id is None
    for k in ("observations", "actions", "rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(c.arrays()[k], np.concatenate([a.arrays()[k], b.arrays()[k]]))
    assert [p["episodes"] for p in c.metadata["combined_from"]] == [2, 1]
    parts = ogdata.split_dataset(c, [2, 1], seed=0)
    assert [p.num_episodes for p in parts] == [2, 1]
    assert sorted(np.concatenate([p.episode_returns() for p in parts])) == sorted(c.episode_returns())
    with pytest.raises(InvalidArgumentError):
        ogdata.split_dataset(c, [3, 1])
    other = ogdata.create_dataset(tmp_path / "d", **make_flat_episodes(np.random.default_rng(3), [3], obs_dim=5))
    with pytest.raises(ogdata.errors.DataValidationError, match="observation_space differ"):
        ogdata.combine_datasets([a, other], tmp_path / "e")


# ------------------------------------------------------------------------- generation's unit

def test_a_generate_killed_while_profiling_leaves_nothing_visible(tmp_path):
    """Measures are part of the atomic unit: SIGKILL during profiling leaves no dataset at the path."""
    out = tmp_path / "random-v0"
    code = (
        "import os, signal\n"
        "import ogdata.generate as G\n"
        "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
        "G._profile = die\n"
        f"G.generate('execution-ac', 'random', 300, {str(out)!r}, progress=False)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, timeout=300)
    assert r.returncode == -9
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    ds = generate("execution-ac", "random", 300, out, progress=False)   # a rerun starts clean
    assert ds.measures["tq"] is not None


def test_an_ad_hoc_job_never_carries_a_catalogue_id(tmp_path):
    with pytest.raises(InvalidIdError, match="never carries a catalogue id"):
        generate("execution-ac", "random", 500, tmp_path / "x", dataset_id="execution-ac/random-v0", progress=False)
    ds = generate("execution-ac", "random", 500, tmp_path / "random-v0", progress=False)
    assert ds.dataset_id is None and ogdata.verify(ds.path)["recipe"] == "not in catalogue"


@pytest.mark.parametrize("kw", [{"seed": -1}, {"workers": 0}, {"workers": -2}, {"transitions": 0},
                                {"seed": 1.5}, {"workers": True}])
def test_generate_rejects_out_of_range_arguments(tmp_path, kw):
    args = {"transitions": 300, "workers": 1, "seed": 0, **kw}
    with pytest.raises(InvalidArgumentError):
        generate("execution-ac", "random", args.pop("transitions"), tmp_path / "x", progress=False, **args)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------- CLI

def test_cli_exit_codes_are_one_convention():
    assert run_cli("generate", "execution-ac", "--tier", "random", "--seed", "-1").returncode == cli.EXIT_USAGE
    assert run_cli("generate", "execution-ac", "--tier", "random", "--workers", "0").returncode == cli.EXIT_USAGE
    assert run_cli("nonsense").returncode == cli.EXIT_USAGE
    for args in (("show", "toy-nothing/good-v0"), ("verify", "toy-nothing/good-v0"),
                 ("download", "toy-nothing/good-v0"), ("profile", "no/such/path"), ("delete", "bad id")):
        r = run_cli(*args)
        assert r.returncode == cli.EXIT_FAILED, (args, r.stderr)
        assert "error" in r.stderr.lower() or "FAILED" in r.stderr
        assert "Traceback" not in r.stderr


def test_cli_generate_overwrite_list_custom_and_plain_progress(tmp_path):
    home = tmp_path / "home"
    r = run_cli("generate", "execution-ac", "--tier", "random", "--transitions", "400", OGDATA_HOME=str(home))
    assert r.returncode == 0, r.stderr
    custom = home / "custom" / "execution-ac" / "random-n400-s0"
    assert str(custom) in r.stdout and "id none (custom)" in r.stdout
    assert "\r" not in r.stderr and "generate" in r.stderr                # progress as plain lines in a pipe
    again = run_cli("generate", "execution-ac", "--tier", "random", "--transitions", "400", OGDATA_HOME=str(home))
    assert again.returncode == cli.EXIT_FAILED and "already exists" in again.stderr
    assert "--overwrite" in again.stderr or "overwrite" in again.stderr
    assert run_cli("generate", "execution-ac", "--tier", "random", "--transitions", "400", "--overwrite",
                   OGDATA_HOME=str(home)).returncode == 0
    listed = run_cli("list", OGDATA_HOME=str(home))
    assert listed.returncode == 0 and "random-n400-s0" in listed.stdout.replace("\n", "")
    helptext = run_cli("generate", "--help").stdout
    assert "OGDATA_HOME/custom" in helptext and "--overwrite" in helptext


def test_cli_envs_prints_whole_ids_when_piped():
    r = run_cli("envs", COLUMNS="80")
    assert r.returncode == 0
    ids = [line.split("\t")[0] for line in r.stdout.splitlines()[2:]]  # after the title and header lines
    assert ids == ogdata.list_envs()


def test_cli_show_a_catalogue_id_offline_from_its_recipe():
    r = run_cli("show", "execution-ac/good-v0")
    assert r.returncode == 0, r.stderr
    assert "catalogue recipe" in r.stdout and "Box(" in r.stdout and "execution-ac" in r.stdout
    r = run_cli("show", "execution-acc/good-v0")
    assert r.returncode == cli.EXIT_FAILED and "Did you mean 'execution-ac'" in r.stderr


def test_cli_smoke_every_subcommand(tmp_path, monkeypatch):
    from ogdata.ids import installed_path

    home = tmp_path / "home"
    monkeypatch.setenv("OGDATA_HOME", str(home))
    did = "toy-cli-smoke/good-v0"
    path = installed_path(did)
    ogdata.create_dataset(path, metadata={"dataset_id": did}, **make_flat_episodes(np.random.default_rng(0), [4, 5]))
    env = {"OGDATA_HOME": str(home)}
    assert run_cli("verify", did, **env).returncode == 0
    r = run_cli("profile", did, "--json", **env)
    assert r.returncode == cli.EXIT_FAILED and "replay" in r.stderr.lower()        # no reference: says so
    r = run_cli("profile", did, "--json", "--reference", str(path), **env)
    assert r.returncode == 0 and json.loads(r.stdout)["saco"] == 1.0
    assert run_cli("show", did, **env).returncode == 0
    assert run_cli("download", did, **env).returncode == 0                         # installed: nothing to do
    r = run_cli("publish", did, **env)
    assert r.returncode == cli.EXIT_FAILED and "HF_HUB_OFFLINE" in r.stderr
    assert run_cli("delete", did, **env).stdout.strip() == f"{did}: deleted"


# -------------------------------------------------------------------------------------- cards

def test_env_card_tags_every_tier_it_holds(tmp_path):
    metas = [{"dataset_id": f"execution-ac/{t}-v0", "env_id": "execution-ac", "tier": t, "num_transitions": 1}
             for t in ("good", "random", "replay")]
    text = cards.render_env_card("execution-ac", metas)
    tags = text.split("tags:")[1].split("task_categories")[0]
    assert all(f"- {t}" in tags for t in ("good", "random", "replay")) and "- medium" not in tags
    one = cards.render({"dataset_id": "execution-ac/random-v0", "env_id": "execution-ac", "tier": "random"})
    assert "- good" not in one.split("tags:")[1].split("task_categories")[0]


# --------------------------------------------------------------------------------------- fuzz

def test_fuzz_ids_give_an_ogdata_error_or_a_dataset_id():
    """Any text handed to the id layer: an OgdataError or a parsed id, never anything else."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ogdata.ids import parse_id
    from ogdata.resolve import resolve

    pieces = st.sampled_from(["execution-ac", "x", "-", "/", "good", "-v", "0", "9" * 7, "é", "\x00", " ", "..",
                              "\n", "[/]", "A"])
    text = st.one_of(st.text(max_size=80), st.lists(pieces, max_size=12).map("".join))

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(text)
    def check(s):
        try:
            did = parse_id(s)
        except ogdata.errors.OgdataError:
            pass
        else:
            assert str(did).count("/") == 1 and len(str(did)) <= 160
        try:
            resolve(s, fetch=False)   # installed copies only: nothing is fetched or rebuilt
        except ogdata.errors.OgdataError:
            pass

    check()


def test_download_never_returns_a_damaged_installed_copy():
    """An installed copy is checked before it is returned: a flipped byte or a missing chunk is named."""
    from ogdata.errors import IntegrityError
    from ogdata.ids import installed_path

    did = "toy-damaged/good-v0"
    path = installed_path(did)
    ogdata.create_dataset(path, metadata={"dataset_id": did}, **make_flat_episodes(np.random.default_rng(0), [6, 7]))
    assert ogdata.download(did) == path                                  # intact: returned as is
    chunk = path / "data" / "observations" / "c" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"damaged.*observations/c/0/0.*--force"):
        ogdata.download(did)
    chunk.unlink()
    with pytest.raises(IntegrityError, match=r"observations/c/0/0"):
        ogdata.load(did)
