"""ogdata.hub against a real Hub-compatible server on loopback.

Reads go through unmodified huggingface_hub to olah 0.5.4 (tests/hub_server.py). Uploads go
through the LOCAL WRITE STAND-IN added to olah's app (four POST routes; it is not the Hub's
API, only a stand-in for it); what was uploaded is checked only by downloading it back through
olah. Each test uses its own environment id, so the session's one server is shared safely.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from conftest import make_flat_episodes
from hub_server import hub_fixture, point_at  # noqa: F401  (the session-scoped `hub` fixture)
from huggingface_hub import DatasetCard, HfApi, hf_hub_download, snapshot_download

import ogdata
from ogdata import catalogue, cli, config, hub, resolve
from ogdata.errors import DatasetNotFoundError, HubError, IntegrityError, MetadataError, OfflineError
from ogdata.ids import hub_repo, installed_path
from ogdata.storage.install import read_source

ORG = "ogtest"
TOKEN = "hf_SECRETtokenNEVERprinted123"


@pytest.fixture
def online(hub, monkeypatch):  # noqa: F811
    """HF_ENDPOINT at the loopback server (restarted if a previous test killed it)."""
    return point_at(hub, monkeypatch, ORG)


def make_ds(tmp_path, dataset_id, seed=0, lengths=(5, 7, 4), **meta):
    env_id, folder = dataset_id.split("/")
    arrays = make_flat_episodes(np.random.default_rng(seed), list(lengths))
    metadata = {"dataset_id": dataset_id, "env_id": env_id, "tier": folder.split("-v")[0],
                "recipe": {"policy": "test", "seed": seed}, **meta}
    return ogdata.create_dataset(tmp_path / f"{env_id}-{folder}-{seed}", metadata=metadata, **arrays)


def same_arrays(a, b):
    xa, xb = a.arrays(), b.arrays()
    return xa.keys() == xb.keys() and all(np.array_equal(xa[k], xb[k]) for k in xa)


def api(online):
    return HfApi(endpoint=online.url, token="unused")


def leftovers(dataset_id):
    """Anything in the env's cache directory besides the installed dataset and lock files."""
    env_dir = config.datasets_dir() / dataset_id.split("/")[0]
    if not env_dir.exists():
        return []
    return sorted(p.name for p in env_dir.iterdir() if not p.name.endswith(".lock") and p.name != dataset_id.split("/")[1])


# ----------------------------------------------------------------------------- round trips

def test_publish_then_download_roundtrip(online, tmp_path, capsys, caplog):
    did = "toy-roundtrip/good-v0"
    src = make_ds(tmp_path, did, measures={"tq": 0.75, "saco": 0.25})
    with caplog.at_level(logging.DEBUG):
        sha = ogdata.publish(src.path, token=TOKEN)
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + caplog.text

    path = ogdata.download(did)
    assert path == installed_path(did) == config.datasets_dir() / "toy-roundtrip" / "good-v0"
    got = ogdata.load(path)
    assert same_arrays(got, src) and got.metadata["manifest"] == src.metadata["manifest"]
    src_rec = read_source(path)
    assert src_rec["commit"] == sha and src_rec["revision"] == "main" and src_rec["rebuilt"] is False
    assert src_rec["repo_id"] == f"{ORG}/toy-roundtrip" and src_rec["endpoint"] == online.url
    assert leftovers(did) == []
    # the tier card came along and parses as a Hub dataset card
    card = DatasetCard((path / "README.md").read_text())
    assert card.data.pretty_name == f"ogdata {did}" and card.data.configs[0]["config_name"] == "good-v0"
    # the repo-root env card, read back through olah, lists the tier
    root = DatasetCard(open(hf_hub_download(f"{ORG}/toy-roundtrip", "README.md", repo_type="dataset",
                                            endpoint=online.url, local_dir=tmp_path / "root")).read())
    assert [c["config_name"] for c in root.data.configs] == ["good-v0"]
    assert "[toy-roundtrip/good-v0](good-v0/README.md)" in root.text
    # olah's repo_info sees the card data too
    assert api(online).dataset_info(f"{ORG}/toy-roundtrip").card_data.license == "apache-2.0"
    # a second call is served from the cache: the same directory, untouched
    mtime = (path / "metadata.json").stat().st_mtime_ns
    assert ogdata.download(did) == path and (path / "metadata.json").stat().st_mtime_ns == mtime


def test_load_downloads_on_first_use(online, tmp_path):
    did = f"{ogdata.list_envs()[0]}/random-v0"  # load() accepts ids of registered environments only
    src = make_ds(tmp_path, did)
    ogdata.publish(src.path)
    assert not installed_path(did).exists()
    ds = ogdata.load(did)
    assert ds.path == installed_path(did) and same_arrays(ds, src)


def test_one_tier_alone_and_list_remote(online, tmp_path):
    good, medium = "toy-tiers/good-v0", "toy-tiers/medium-v0"
    ogdata.publish(make_ds(tmp_path, good, seed=1).path)
    src_medium = make_ds(tmp_path, medium, seed=2, lengths=(3, 3))
    ogdata.publish(src_medium.path)
    assert hub.list_remote(["toy-tiers", "toy-absent"]) == [good, medium]

    p = ogdata.download(medium)
    assert same_arrays(ogdata.load(p), src_medium)
    assert not installed_path(good).exists()  # only the tier asked for
    # a plain huggingface_hub user can fetch one tier alone
    d = snapshot_download(f"{ORG}/toy-tiers", repo_type="dataset", allow_patterns=["good-v0/*"],
                          endpoint=online.url, local_dir=tmp_path / "plain")
    tops = {p.name for p in (tmp_path / "plain").iterdir() if not p.name.startswith(".")}
    assert tops == {"good-v0"} and os.path.isfile(os.path.join(d, "good-v0", "metadata.json"))
    root = DatasetCard(open(hf_hub_download(f"{ORG}/toy-tiers", "README.md", repo_type="dataset",
                                            endpoint=online.url, local_dir=tmp_path / "root")).read())
    assert [c["config_name"] for c in root.data.configs] == ["good-v0", "medium-v0"]


def test_republish_and_pinned_revisions(online, tmp_path):
    did = "toy-revs/poor-v0"
    first = make_ds(tmp_path, did, seed=3, lengths=(4, 4))
    sha1 = ogdata.publish(first.path)
    second = make_ds(tmp_path, did, seed=4, lengths=(6,))
    sha2 = ogdata.publish(second.path)
    assert sha1 != sha2
    # files of the old version that the new one does not have are gone from the tier folder
    files = api(online).list_repo_files(f"{ORG}/toy-revs", repo_type="dataset", revision=sha2)
    assert sorted(f for f in files if f.startswith("poor-v0/")) == sorted(
        ["poor-v0/README.md", "poor-v0/metadata.json"] + [f"poor-v0/{r}" for r in second.metadata["manifest"]])

    assert same_arrays(ogdata.load(ogdata.download(did)), second)
    p = ogdata.download(did, revision=sha1)  # a pinned older commit replaces the cached copy
    assert same_arrays(ogdata.load(p), first) and read_source(p)["commit"] == sha1
    assert ogdata.download(did, revision=sha1[:10]) == p  # already there: no download
    p = ogdata.download(did, force=True)
    assert same_arrays(ogdata.load(p), second) and read_source(p)["commit"] == sha2
    assert leftovers(did) == []


def test_publish_to_a_branch(online, tmp_path):
    did = "toy-branch/good-v0"
    main_ds = make_ds(tmp_path, did, seed=8)
    ogdata.publish(main_ds.path)
    draft = make_ds(tmp_path, did, seed=9, lengths=(2, 3))
    sha = ogdata.publish(draft.path, revision="draft")
    p = ogdata.download(did, revision="draft")
    assert same_arrays(ogdata.load(p), draft) and read_source(p)["revision"] == "draft"
    assert read_source(p)["commit"] == sha
    p = ogdata.download(did, revision="main")  # main is untouched by the branch
    assert same_arrays(ogdata.load(p), main_ds)


# ----------------------------------------------------------------------------------- faults

def test_missing_revision_repo_or_tier(online, tmp_path):
    did = "toy-missing/good-v0"
    ogdata.publish(make_ds(tmp_path, did).path)
    with pytest.raises(DatasetNotFoundError, match="no-such-branch"):
        ogdata.download(did, revision="no-such-branch")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ogdata.download("toy-nobody-published-this/good-v0")
    with pytest.raises(DatasetNotFoundError, match=r"has no medium-v0/ folder .*good-v0"):
        ogdata.download("toy-missing/medium-v0")
    assert not installed_path(did).exists() and leftovers(did) == []


def test_corrupted_file_on_server(online, tmp_path):
    did = "toy-corrupt/good-v0"
    src = make_ds(tmp_path, did)
    ogdata.publish(src.path)
    victim = "data/rewards/c/0"
    data = bytearray((src.path / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped: only the checksum can tell
    api(online).upload_file(path_or_fileobj=bytes(data), path_in_repo=f"good-v0/{victim}",
                            repo_id=f"{ORG}/toy-corrupt", repo_type="dataset", commit_message="bit rot")
    with pytest.raises(IntegrityError, match="rewards/c/0") as e:
        ogdata.download(did)
    assert "nothing was installed" in str(e.value)
    assert not installed_path(did).exists() and leftovers(did) == []


@pytest.mark.parametrize("i, evil", enumerate(["../../outside.bin", "/etc/evil", "data/../../../x", "data\\..\\x"]))
def test_manifest_naming_a_path_outside_the_dataset_is_rejected(online, tmp_path, i, evil):
    env = f"toy-evil-{i}"
    did = f"{env}/good-v0"
    src = make_ds(tmp_path, did)
    meta = dict(src.metadata)
    meta["manifest"] = {**meta["manifest"], evil: {"sha256": "0" * 64, "size": 3}}
    client = api(online)
    client.create_repo(f"{ORG}/{env}", repo_type="dataset", exist_ok=True)
    client.upload_folder(folder_path=src.path, path_in_repo="good-v0", repo_id=f"{ORG}/{env}", repo_type="dataset")
    client.upload_file(path_or_fileobj=json.dumps(meta).encode(), path_in_repo="good-v0/metadata.json",
                       repo_id=f"{ORG}/{env}", repo_type="dataset")
    with pytest.raises(IntegrityError, match="outside the dataset"):
        ogdata.download(did)
    assert not config.datasets_dir().exists()  # rejected before anything was written


@pytest.mark.parametrize("bad, match", [
    ({"x/../../y": {"sha256": "0" * 64}}, "outside the dataset"),
    ({"data/a*": {"sha256": "0" * 64}}, "glob or control"),
    ({"metadata.json": {"sha256": "0" * 64}}, "reserved"),
    ({"data/a": {"sha256": "0" * 64, "size": -1}}, "invalid size"),
    ({"data/a": {"sha256": "abc"}}, "sha256"),
])
def test_check_remote_metadata_rejects(tmp_path, bad, match):
    meta = dict(make_ds(tmp_path, "toy-check/good-v0").metadata)
    hub.check_remote_metadata(meta, "toy-check/good-v0")  # the genuine one passes
    with pytest.raises(IntegrityError, match=match):
        hub.check_remote_metadata({**meta, "manifest": bad}, "toy-check/good-v0")
    with pytest.raises(IntegrityError, match="describes"):
        hub.check_remote_metadata(meta, "toy-check/medium-v0")
    with pytest.raises(MetadataError):
        hub.check_remote_metadata({**meta, "format": "minari"}, "toy-check/good-v0")


def _kill_after_first_file(monkeypatch, server, restart_after=None):
    """Let the first file through, then SIGKILL the server (optionally restarting it later)."""
    import huggingface_hub._snapshot_download as sd

    real, gate, done = sd.hf_hub_download, threading.Lock(), []

    def one_at_a_time(*args, **kwargs):
        with gate:
            out = real(*args, **kwargs)
            if not done:
                done.append(kwargs.get("filename", args[1] if len(args) > 1 else None))
                server.kill()
                if restart_after is not None:
                    threading.Timer(restart_after, server.start).start()
            return out

    monkeypatch.setattr(sd, "hf_hub_download", one_at_a_time)
    return done


def test_server_killed_mid_download_then_retry(online, tmp_path, monkeypatch):
    did = "toy-killed/good-v0"
    src = make_ds(tmp_path, did)
    ogdata.publish(src.path)
    import huggingface_hub.utils._http as hf_http

    with pytest.MonkeyPatch.context() as mp:
        done = _kill_after_first_file(mp, online)
        # huggingface_hub backs off 1+2+4+8+8 s per file against a dead server; skip only the waiting
        mp.setattr(hf_http, "time", types.SimpleNamespace(sleep=lambda s: None))
        with pytest.raises(HubError, match="interrupted.*run the same download again"):
            ogdata.download(did)
    assert len(done) == 1 and not online.alive
    assert not installed_path(did).exists()
    partial = config.datasets_dir() / "toy-killed" / ".good-v0.partial" / "good-v0"
    assert partial.is_dir()  # finished files are kept for the retry
    online.start()
    path = ogdata.download(did)
    assert same_arrays(ogdata.load(path, verify=True), src)
    assert leftovers(did) == []


def test_server_crash_and_restart_during_download_is_ridden_out(online, tmp_path, monkeypatch):
    did = "toy-restart/good-v0"
    src = make_ds(tmp_path, did)
    ogdata.publish(src.path)
    done = _kill_after_first_file(monkeypatch, online, restart_after=0.3)
    path = ogdata.download(did)  # huggingface_hub's own backoff waits for the server to come back
    assert len(done) == 1 and online.alive
    assert same_arrays(ogdata.load(path, verify=True), src)


def test_four_processes_download_one_id(online, tmp_path):
    did = "toy-race/good-v0"
    src = make_ds(tmp_path, did, lengths=(9, 9, 9, 9))
    ogdata.publish(src.path)
    code = f"import ogdata; print(ogdata.download({did!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ)) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1].decode()[-2000:] for o in outs]
    paths = {o[0].decode().strip().splitlines()[-1] for o in outs}
    assert paths == {str(installed_path(did))}
    assert same_arrays(ogdata.load(installed_path(did), verify=True), src)
    assert leftovers(did) == []


# ---------------------------------------------------------------------------------- offline

def test_offline_with_and_without_cache(online, tmp_path, monkeypatch):
    did = f"{ogdata.list_envs()[-1]}/good-v7"  # a registered env, so ogdata.load(id) accepts it
    ogdata.publish(make_ds(tmp_path, did).path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE.*not installed.*nor in the catalogue"):
        ogdata.download(did)
    assert not config.datasets_dir().exists()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = ogdata.download(did)
    # with a cache, offline mode never touches the network (the endpoint is even dead)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert ogdata.download(did) == path
    assert ogdata.download(did, revision=read_source(path)["commit"]) == path
    with pytest.raises(OfflineError, match="the installed copy is commit"):
        ogdata.download(did, revision="some-other-branch")
    assert ogdata.load(did).path == path


@pytest.fixture
def tmp_catalogue(tmp_path, monkeypatch):
    """A catalogue (ogdata/catalogue/<env>.json format) in a temp dir, for a registered env."""
    import ogdata.catalogue

    d = tmp_path / "catalogue"
    d.mkdir()
    monkeypatch.setattr(ogdata.catalogue, "CATALOGUE_DIR", d)

    def write(tiers, env_id="execution-ac", **extra):
        (d / f"{env_id}.json").write_text(json.dumps({"format": "ogdata-recipe", "env_id": env_id, "version": 0,
                                                      "env_kwargs": {}, "tiers": tiers, **extra}))
    return write


@pytest.mark.parametrize("how", ["offline", "unreachable"])
def test_rebuild_from_recipe_when_the_hub_is_out_of_reach(monkeypatch, capsys, tmp_catalogue, how):
    pytest.importorskip("ogdata.generate").rebuild  # noqa: B018 - the generation helper's entry point
    did = "execution-ac/random-v0"
    tmp_catalogue({"random": {"transitions": 300, "seed": 1}})
    assert catalogue.entries()[did]["expect"] == {"tier": "random", "env_kwargs": {}, "recipe.generation.seed": 1,
                                              "recipe.generation.transitions_requested": 300}
    if how == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    path = ogdata.download(did)
    assert "Rebuilding execution-ac/random-v0 from its recipe" in capsys.readouterr().err
    src = read_source(path)
    assert src["rebuilt"] is True and src["source"] == "rebuilt" and src["recipe"] == {"transitions": 300, "seed": 1}
    ds = ogdata.load(path, verify=True)
    assert ds.num_transitions >= 300 and ds.metadata["dataset_id"] == did
    assert ogdata.verify(did)["recipe"] == "match"
    mtime = (path / "metadata.json").stat().st_mtime_ns
    assert ogdata.download(did) == path and (path / "metadata.json").stat().st_mtime_ns == mtime  # not rebuilt again
    assert leftovers(did) == []
    # the catalogue moves on (another seed): this copy no longer matches its recipe
    tmp_catalogue({"random": {"transitions": 300, "seed": 2}})
    with pytest.raises(IntegrityError, match=r"recipe.generation.seed"):
        ogdata.verify(did)


def test_rebuild_without_a_generator_says_so(monkeypatch):
    did = "toy-nogen/good-v0"
    monkeypatch.setattr(catalogue, "entries", lambda: {did: {"dataset_id": did, "recipe": {}, "expect": {}}})
    monkeypatch.setitem(sys.modules, "ogdata.generate", None)  # import fails
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="in the catalogue.*generator is not available"):
        ogdata.download(did)


@pytest.fixture
def sleeps(monkeypatch):
    """Every time.sleep call (huggingface_hub's retry backoff sleeps between attempts), not slept."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: calls.append(s))
    return calls


def test_unreachable_hub_without_catalogue_entry(monkeypatch, sleeps):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(OfflineError, match="unreachable"):
        ogdata.download("toy-nowhere/good-v0")
    with pytest.raises(OfflineError, match="unreachable"):
        hub.list_remote(["toy-nowhere"])
    assert sleeps == []  # fails at the first API call, without per-file backoff


def test_show_reads_metadata_alone_and_fails_fast_on_a_dead_hub(online, tmp_path, capsys, monkeypatch, sleeps):
    from ogdata.profile import run_show

    did = "toy-show/good-v0"
    ogdata.publish(make_ds(tmp_path, did, measures={"tq": 0.5}).path)
    assert run_show(did) == 0
    out = capsys.readouterr().out
    assert "Hub (not installed)" in out and "toy-show" in out and "tq 0.5" in out
    assert not installed_path(did).exists()  # show downloads nothing
    with pytest.raises(DatasetNotFoundError, match="toy-show/medium-v0 is not installed and not on the Hub"):
        run_show("toy-show/medium-v0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    sleeps.clear()
    with pytest.raises(OfflineError, match="unreachable.*cannot show toy-show/good-v0"):
        run_show(did)
    assert sleeps == []  # the first API call fails; no per-file backoff


# ------------------------------------------------------------------- publish errors, verify, CLI

def test_publish_failure_does_not_leak_the_token(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    src = make_ds(tmp_path, "toy-leak/good-v0")
    with caplog.at_level(logging.DEBUG), pytest.raises(OfflineError) as e:
        ogdata.publish(src.path, token=TOKEN)
    out = capsys.readouterr()
    assert TOKEN not in str(e.value) + out.out + out.err + caplog.text
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli.main(["publish", str(src.path)]) == 1
    out = capsys.readouterr()
    assert "unreachable" in out.err and TOKEN not in out.out + out.err


def test_publish_refuses_a_corrupt_local_copy(tmp_path):
    src = make_ds(tmp_path, "toy-badlocal/good-v0")
    (src.path / "data" / "actions" / "c" / "0" / "0").write_bytes(b"junk")
    with pytest.raises(IntegrityError, match="actions/c/0/0"):
        ogdata.publish(src.path, repo_id="ogtest/never")


def test_verify_against_manifest_and_catalogue_recipe(tmp_path, monkeypatch, capsys):
    did = "toy-verify/medium-v0"
    recipe = {"tier": "medium", "threshold": 0.4, "generation": {"seed": 5, "transitions_requested": 16}}
    src = make_ds(tmp_path, did, seed=5, recipe=recipe, env_kwargs={"sigma": 0.6})
    identity = {"tier": "medium", "env_kwargs": {"sigma": 0.6}, "recipe.threshold": 0.4,
                "recipe.generation.seed": 5, "recipe.generation.transitions_requested": 16}
    assert catalogue.recipe_identity(src.metadata) == identity
    monkeypatch.setattr(catalogue, "entries", lambda: {})
    assert ogdata.verify(src.path)["recipe"] == "no catalogue"
    assert cli.main(["verify", str(src.path)]) == 0 and "no catalogue" in capsys.readouterr().out
    monkeypatch.setattr(catalogue, "entries", lambda: {"other/good-v0": {"expect": {}}})
    assert ogdata.verify(src.path)["recipe"] == "not in catalogue"
    monkeypatch.setattr(catalogue, "entries", lambda: {did: {"dataset_id": did, "expect": identity}})
    assert ogdata.verify(src.path) == {"path": str(src.path), "dataset_id": did,
                                    "files": len(src.metadata["manifest"]), "recipe": "match"}
    assert cli.main(["verify", str(src.path)]) == 0 and "recipe matches the catalogue" in capsys.readouterr().out
    wrong = {**identity, "env_kwargs": {"sigma": 1.9}, "recipe.threshold": 0.5}
    monkeypatch.setattr(catalogue, "entries", lambda: {did: {"dataset_id": did, "expect": wrong}})
    with pytest.raises(IntegrityError, match=r"recipe differs .*\['env_kwargs', 'recipe.threshold'\]"):
        ogdata.verify(src.path)
    assert cli.main(["verify", str(src.path)]) == 1 and "recipe.threshold" in capsys.readouterr().err
    (src.path / "data" / "rewards" / "c" / "0").write_bytes(b"x")
    assert cli.main(["verify", str(src.path)]) == 1 and "rewards/c/0" in capsys.readouterr().err
    assert cli.main(["verify", "toy-verify/good-v0"]) == 1 and "not installed" in capsys.readouterr().err


def test_catalogue_reads_the_committed_recipe_format(tmp_catalogue):
    tmp_catalogue({"good": {"threshold": 0.6, "noise": 0.05, "policies": [{"checkpoint": "a", "score": 0.7}],
                            "transitions": 1000, "seed": 3}, "random": {"transitions": 500}},
                  training={"steps": 10, "learning_curve": [1, 2]})
    tmp_catalogue({"replay": {"transitions": 900, "seed": 4}}, env_id="market-making-as",
                  training={"steps": 10, "learning_curve": [1, 2]}, env_kwargs={"sigma": 2.0})
    cat = catalogue.entries()
    assert sorted(cat) == ["execution-ac/good-v0", "execution-ac/random-v0", "market-making-as/replay-v0"]
    assert cat["execution-ac/good-v0"]["expect"] == {
        "tier": "good", "env_kwargs": {}, "recipe.threshold": 0.6, "recipe.noise": 0.05,
        "recipe.policies": [{"checkpoint": "a", "score": 0.7}], "recipe.generation.seed": 3,
        "recipe.generation.transitions_requested": 1000}
    assert cat["execution-ac/random-v0"]["expect"]["recipe.generation.seed"] == 0
    replay = cat["market-making-as/replay-v0"]["expect"]
    assert replay["recipe.training"] == {"steps": 10} and replay["env_kwargs"] == {"sigma": 2.0}
    assert catalogue.catalogue_identity("market-making-as/replay-v0") == replay


def test_cli_glue_download_and_list(online, tmp_path, capsys):
    did = "toy-cli/good-v0"
    ogdata.publish(make_ds(tmp_path, did).path)
    assert cli.main(["download", did, "toy-cli/medium-v0"]) == 1  # the second one does not exist
    out = capsys.readouterr()
    assert f"{did} -> {installed_path(did)} ({ORG}/toy-cli@" in out.out
    assert "toy-cli/medium-v0" in out.err and "not found" in out.err
    assert resolve.installed() == [did]
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert did in out and "@" in out
    assert hub.list_remote(["toy-cli"]) == [did]


def test_config_defaults_and_ids(monkeypatch):
    from pathlib import Path

    for var in ("OGDATA_HOME", "OGDATA_HUB_ORG", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert config.home() == Path("~/.cache/ogdata").expanduser()
    assert config.datasets_dir() == config.home() / "datasets"
    assert config.hub_org() == "ogdata" and config.hub_endpoint() == "https://huggingface.co"
    assert config.hub_token() is None and config.hub_offline() is False
    assert hub_repo("portfolio-sp500/good-v0") == ("ogdata/portfolio-sp500", "good-v0")
    assert installed_path("portfolio-sp500/replay-v2") == config.home() / "datasets" / "portfolio-sp500" / "replay-v2"
    monkeypatch.setenv("OGDATA_HUB_ORG", "my-lab")
    monkeypatch.setenv("OGDATA_HOME", "/data/og")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8090/")
    assert hub_repo("portfolio-sp500/good-v0") == ("my-lab/portfolio-sp500", "good-v0")
    assert installed_path("a-b/poor-v1") == Path("/data/og/datasets/a-b/poor-v1")
    assert config.hub_endpoint() == "http://mirror.local:8090"
    for value, offline in (("1", True), ("true", True), ("ON", True), ("0", False), ("", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert config.hub_offline() is offline
    with pytest.raises(ogdata.errors.InvalidIdError, match="malformed"):
        ogdata.download("not-an-id")
    with pytest.raises(ogdata.errors.InvalidIdError, match="unknown tier"):
        installed_path("env-a/great-v0")


# ------------------------------------------------------------------- resolver: sources in order

def test_a_catalogue_id_the_hub_does_not_hold_is_rebuilt_saying_so(online, capsys, tmp_catalogue, monkeypatch):
    """huggingface.co answers 'repository not found' for every catalogue id until someone publishes."""
    monkeypatch.setenv("OGDATA_HUB_ORG", "ogtest-nothing-published")
    did = "execution-ac/random-v0"
    tmp_catalogue({"random": {"transitions": 300, "seed": 1}})
    path = ogdata.download(did)
    err = capsys.readouterr().err
    assert "not found on the Hub" in err and f"Rebuilding {did} from its recipe" in err
    assert read_source(path)["rebuilt"] is True and ogdata.verify(did)["recipe"] == "match"


def test_a_misspelt_env_gets_did_you_mean_from_download_and_show(online):
    from ogdata.profile import run_show

    for call in (ogdata.download, run_show, ogdata.load):
        with pytest.raises(ogdata.errors.InvalidIdError, match="Did you mean 'execution-ac'"):
            call("execution-acc/good-v0")


def test_a_broken_sibling_tier_does_not_block_publishing(online, tmp_path, capsys):
    env = "toy-sibling"
    ogdata.publish(make_ds(tmp_path, f"{env}/good-v0").path)
    client = api(online)
    for folder, raw in (("medium-v0", b"[1, 2"), ("poor-v0", json.dumps({"format": "ogdata", "tier": "[/]"}).encode())):
        client.upload_file(path_or_fileobj=raw, path_in_repo=f"{folder}/metadata.json", repo_id=f"{ORG}/{env}",
                           repo_type="dataset")
    sha = ogdata.publish(make_ds(tmp_path, f"{env}/random-v0", seed=3).path)
    err = capsys.readouterr().err
    assert len(sha) == 40 and "medium-v0" in err and "poor-v0" in err and "left out" in err
    assert "HF_TOKEN" not in err
    card = hf_hub_download(f"{ORG}/{env}", "README.md", repo_type="dataset", endpoint=online.url)
    text = open(card).read()
    assert f"{env}/good-v0" in text and f"{env}/random-v0" in text and "poor-v0" not in text.split("## Datasets")[1]


@pytest.mark.parametrize("evil, match", [
    ({"tier": "[/]"}, None),
    ({"tier": "[link=https://evil.example]click[/link]"}, None),
    ({"observation_space": {"type": "Box", "shape": [12000, 12000], "dtype": "float32", "low": 0, "high": 1}},
     "more than"),
    ({"manifest_size": "big"}, None),
])
def test_show_escapes_and_bounds_hostile_remote_metadata(online, tmp_path, capsys, evil, match):
    import resource

    from ogdata.profile import run_show

    env = f"toy-hostile-{abs(hash(json.dumps(evil))) % 10**6}"
    did = f"{env}/good-v0"
    src = make_ds(tmp_path, did)
    meta = json.loads((src.path / "metadata.json").read_text())
    if "manifest_size" in evil:
        first = sorted(meta["manifest"])[0]
        meta["manifest"][first]["size"] = evil["manifest_size"]
        match = "invalid size"
    else:
        meta.update(evil)
    client = api(online)
    client.create_repo(f"{ORG}/{env}", repo_type="dataset", exist_ok=True)
    from ogdata.storage.format import metadata_digest

    meta.pop("metadata_sha256", None)
    meta["metadata_sha256"] = metadata_digest(meta)   # a hostile publisher seals it too
    client.upload_file(path_or_fileobj=json.dumps(meta).encode(), path_in_repo="good-v0/metadata.json",
                       repo_id=f"{ORG}/{env}", repo_type="dataset")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if match:
        with pytest.raises(ogdata.errors.OgdataError, match=match):
            run_show(did)
    else:
        assert run_show(did) == 0
        out = capsys.readouterr().out
        assert evil["tier"] in out.replace("\n", "")        # printed literally, not interpreted
        assert "\x1b]8;" not in out                          # no terminal hyperlink escape
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing was allocated


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tiny tmpfs needs root")
def test_a_download_onto_a_full_disk_says_so_and_leaves_nothing(online, tmp_path, monkeypatch):
    did = "toy-diskfull/good-v0"
    rng = np.random.default_rng(0)
    arrays = make_flat_episodes(rng, [1000] * 4, obs_dim=100)     # ~1.6 MB of incompressible observations
    src = ogdata.create_dataset(tmp_path / "src", metadata={"dataset_id": did}, **arrays)
    ogdata.publish(src.path)
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setenv("OGDATA_HOME", str(mnt))
        with pytest.raises(HubError, match="No space left on device.*partial files were removed"):
            ogdata.download(did)
        left = [p for p in (mnt / "datasets").rglob("*") if p.is_file()] if (mnt / "datasets").exists() else []
        assert left == [] and not installed_path(did).exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
