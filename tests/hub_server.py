"""A Hub-compatible server on loopback for tests: olah 0.5.4 for reads, plus a local write stand-in.

READS are served by olah (PyPI `olah`), an independent, unmodified Hub-compatible server, in
offline mode with a dead upstream (127.0.0.1:9), so nothing leaves loopback. It serves plain
git repositories under `<root>/mirrors/datasets/<org>/<repo>`; the ogdata code under test talks
to it through unmodified `huggingface_hub` with HF_ENDPOINT pointing here.

WRITES: olah has no write routes, and no installable server implements the Hub's commit API.
The four POST routes added here — /api/repos/create, /api/validate-yaml,
/api/{type}s/{org}/{repo}/preupload/{rev} and /api/{type}s/{org}/{repo}/commit/{rev} — plus a
fifth, /api/{type}s/{org}/{repo}/branch/{branch} (create_branch), are a LOCAL STAND-IN FOR THE
HUB'S WRITE API, not the Hub: preupload answers every file as
"regular" (content travels base64 in the NDJSON commit body) and commit applies the operations
to the same git repository with git plumbing, then refreshes the `meta_head.json` that olah's
offline mode needs for `repo_info()` without a revision. Tests check what was uploaded only by
downloading it back through olah's read routes, never by reading the stand-in's files.

Run as a script (`python tests/hub_server.py --config olah.toml`), olah's own app starts with
the write routes added; `HubServer` manages such a process (start, kill, restart on the same
port) and the session fixture `hub` shares one per test session.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "ogdata-test", "GIT_AUTHOR_EMAIL": "test@ogdata.invalid",
    "GIT_COMMITTER_NAME": "ogdata-test", "GIT_COMMITTER_EMAIL": "test@ogdata.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}
READY_REPO = ("ogdata-test", "ready")  # a tiny dataset repo polled for readiness


# ---------------------------------------------------------------- git plumbing (server side)

def _git(repo: Path, *args: str, input: bytes | None = None, index: str | None = None) -> str:
    env = {**os.environ, **_GIT_ENV, "HOME": str(repo)}
    if index is not None:
        env["GIT_INDEX_FILE"] = index
    r = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode()


def head_sha(repo: Path, branch: str = "main") -> str | None:
    try:
        return _git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}").strip() or None
    except RuntimeError:
        return None


def tree_blobs(repo: Path, rev: str) -> dict[str, str]:
    """{path: blob sha1} of every file at `rev`."""
    out = _git(repo, "ls-tree", "-r", "-z", rev)
    blobs = {}
    for entry in out.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            blobs[path] = meta.split()[2]
    return blobs


def git_commit(repo: Path, adds: dict[str, bytes], deletes=(), deleted_folders=(), message: str = "update",
               branch: str = "main") -> str:
    """Commit `adds` (path -> bytes) and deletions onto `branch` without touching a working tree."""
    parent = head_sha(repo, branch)
    with tempfile.TemporaryDirectory() as tmp:
        index = os.path.join(tmp, "index")
        if parent:
            _git(repo, "read-tree", parent, index=index)
        lines = []
        if deletes or deleted_folders:
            current = tree_blobs(repo, parent) if parent else {}
            gone = set(deletes)
            for folder in deleted_folders:
                prefix = folder.rstrip("/") + "/"
                gone.update(p for p in current if p.startswith(prefix))
            lines += [f"0 {'0' * 40}\t{p}" for p in sorted(gone) if p in current]
        if adds:
            paths = []
            for i, data in enumerate(adds.values()):
                f = os.path.join(tmp, f"blob{i}")
                with open(f, "wb") as fh:
                    fh.write(data)
                paths.append(f)
            shas = _git(repo, "hash-object", "-w", "--stdin-paths", input="\n".join(paths).encode()).split()
            lines += [f"100644 {sha}\t{path}" for path, sha in zip(adds, shas)]
        if lines:
            _git(repo, "update-index", "--index-info", input=("\n".join(lines) + "\n").encode(), index=index)
        tree = _git(repo, "write-tree", index=index).strip()
        args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
        sha = _git(repo, *args).strip()
    _git(repo, "update-ref", f"refs/heads/{branch}", sha)
    return sha


def init_repo(path: Path) -> str:
    """An empty git repo with the initial commit the Hub makes (.gitattributes), on branch main."""
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    return git_commit(path, {".gitattributes": b"*.zarr filter=lfs diff=lfs merge=lfs -text\n"},
                      message="initial commit")


def write_meta_head(repos_path: Path, repo_type: str, org: str, name: str, repo: Path, branch: str = "main"):
    """The file olah's offline mode reads for `repo_info()` without a revision."""
    sha = head_sha(repo, branch)
    d = Path(repos_path) / "api" / repo_type / org / name / "revision" / branch
    d.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tmp = d / "meta_head.json.tmp"
    tmp.write_text(json.dumps({"sha": sha, "lastModified": stamp}))
    os.replace(tmp, d / "meta_head.json")


# ------------------------------------------------------- the write stand-in (inside olah's app)

def add_write_routes(app, mirrors_path: Path, repos_path: Path) -> None:
    """Add the POST routes of the local write stand-in to olah's FastAPI `app` (see module doc)."""
    import yaml
    from fastapi import Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute

    mirrors_path, repos_path = Path(mirrors_path), Path(repos_path)
    lock = threading.Lock()

    def repo_dir(repo_type: str, org: str, name: str) -> Path:
        return mirrors_path / repo_type / org / name

    def url_for(request: Request, repo_type: str, org: str, name: str) -> str:
        base = str(request.base_url).rstrip("/")
        return f"{base}/{org}/{name}" if repo_type == "models" else f"{base}/{repo_type}/{org}/{name}"

    async def create_repo(request: Request):
        body = await request.json()
        repo_type = (body.get("type") or "model") + "s"
        org, name = body.get("organization"), body.get("name")
        if not org or not name or "/" in name or name.startswith("."):
            return JSONResponse({"error": "organization and name are required"}, status_code=400)
        path = repo_dir(repo_type, org, name)
        url = url_for(request, repo_type, org, name)
        with lock:
            if path.exists():
                return JSONResponse({"error": "You already created this repo", "url": url}, status_code=409)
            await run_in_threadpool(init_repo, path)
            write_meta_head(repos_path, repo_type, org, name, path)
        return JSONResponse({"url": url, "name": f"{org}/{name}", "id": f"{org}/{name}"})

    async def validate_yaml(request: Request):
        body = await request.json()
        content = body.get("content", "")
        if content.lstrip().startswith("---"):
            front = content.lstrip()[3:].split("\n---", 1)[0]
            try:
                data = yaml.safe_load(front)
            except yaml.YAMLError as e:
                return JSONResponse({"errors": [{"message": f"invalid YAML: {e}"}]}, status_code=400)
            if data is not None and not isinstance(data, dict):
                return JSONResponse({"errors": [{"message": "front matter must be a mapping"}]}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def preupload(repo_type: str, org: str, repo: str, rev: str, request: Request):
        path = repo_dir(repo_type, org, repo)
        if not path.exists():
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        body = await request.json()
        sha = head_sha(path, rev)
        current = tree_blobs(path, sha) if sha else {}
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": current.get(f["path"])} for f in body.get("files", [])]
        return JSONResponse({"files": files, "commitOid": sha})

    async def commit(repo_type: str, org: str, repo: str, rev: str, request: Request):
        path = repo_dir(repo_type, org, repo)
        if not path.exists():
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        header, adds, deletes, folders = {}, {}, [], []
        for line in (await request.body()).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    return JSONResponse({"error": "only base64 file content is supported"}, status_code=400)
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            else:  # lfsFile and anything else: this stand-in never asks for LFS uploads
                return JSONResponse({"error": f"operation {key!r} is not supported by the stand-in"},
                                    status_code=400)
        with lock:
            parent = head_sha(path, rev)
            if parent is None:
                return JSONResponse({"error": f"Invalid rev id: {rev}"}, status_code=404)
            if header.get("parentCommit") and header["parentCommit"] != parent:
                return JSONResponse({"error": "A commit has happened since the parent commit"}, status_code=412)
            message = header.get("summary") or "update"
            sha = await run_in_threadpool(git_commit, path, adds, deletes, folders, message, rev)
            write_meta_head(repos_path, repo_type, org, repo, path, rev)
        return JSONResponse({"success": True, "commitOid": sha, "pullRequestUrl": None,
                             "commitUrl": f"{url_for(request, repo_type, org, repo)}/commit/{sha}"})

    async def create_branch(repo_type: str, org: str, repo: str, branch: str, request: Request):
        path = repo_dir(repo_type, org, repo)
        if not path.exists():
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        body = await request.json() if await request.body() else {}
        with lock:
            if head_sha(path, branch):
                return JSONResponse({"error": "Reference already exists"}, status_code=409)
            start = body.get("startingPoint") or "main"
            try:
                sha = _git(path, "rev-parse", "--verify", f"{start}^{{commit}}").strip()
            except RuntimeError:
                return JSONResponse({"error": f"Invalid rev id: {start}"}, status_code=404)
            _git(path, "update-ref", f"refs/heads/{branch}", sha)
            write_meta_head(repos_path, repo_type, org, repo, path, branch)
        return JSONResponse({"success": True})

    routes = [
        APIRoute("/api/repos/create", create_repo, methods=["POST"]),
        APIRoute("/api/{repo_type}/{org}/{repo}/branch/{branch:path}", create_branch, methods=["POST"]),
        APIRoute("/api/validate-yaml", validate_yaml, methods=["POST"]),
        APIRoute("/api/{repo_type}/{org}/{repo}/preupload/{rev:path}", preupload, methods=["POST"]),
        APIRoute("/api/{repo_type}/{org}/{repo}/commit/{rev:path}", commit, methods=["POST"]),
    ]
    # first, so olah's GET/HEAD patterns on the same paths never answer 405
    app.router.routes[:0] = routes


# ------------------------------------------------------------------ process management (tests)

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubServer:
    """One olah process (+ write stand-in) on 127.0.0.1:<port>, serving `<root>/mirrors`."""

    def __init__(self, root: Path, port: int | None = None, piece_bytes: int = 0):
        self.root = Path(root)
        self.piece_bytes = piece_bytes   # 0: olah's own 4 KiB pieces (see `larger_pieces`)
        self.mirrors = self.root / "mirrors"
        self.repos = self.root / "repos"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.config = self.root / "olah.toml"
        self.log = self.root / "olah.log"
        for d in (self.mirrors, self.repos, self.root / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"""[basic]
host = "127.0.0.1"
port = {self.port}
repos-path = "{self.repos}"
mirrors-path = ["{self.mirrors}"]
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{self.port}"
mirror-lfs-netloc = "127.0.0.1:{self.port}"
[accessibility]
offline = true
""")
        ready = self.mirrors / "datasets" / READY_REPO[0] / READY_REPO[1]
        if not ready.exists():
            init_repo(ready)
            write_meta_head(self.repos, "datasets", *READY_REPO, ready)

    def start(self, timeout: float = 30.0) -> "HubServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--config", str(self.config),
             "--log-path", str(self.root / "logs"), "--piece-bytes", str(self.piece_bytes)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            env={k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OGDATA_"))})
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        import httpx

        probe = f"{self.url}/api/datasets/{READY_REPO[0]}/{READY_REPO[1]}/revision/main"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                if httpx.get(probe, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"olah not ready on {self.url} after {timeout}s; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown): in-flight connections just drop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def restart(self) -> "HubServer":
        self.kill()
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session", name="hub")
def hub_fixture(tmp_path_factory):
    """One olah (+ write stand-in) per test session; tests use distinct repo names to stay independent."""
    server = HubServer(tmp_path_factory.mktemp("hub"))
    server.start()
    yield server
    server.stop()


def point_at(hub: HubServer, monkeypatch, org: str) -> HubServer:
    """Point huggingface_hub and ogdata at the loopback server (restarted if a previous test killed it),
    online and without a token, with datasets under `org`."""
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("OGDATA_HUB_ORG", org)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return hub


def larger_pieces(piece_bytes: int) -> None:
    """Make olah send a mirrored file in `piece_bytes` pieces rather than 4 KiB ones (a benchmark option).

    olah 0.5.4 reads a mirrored file whole, then yields it 4 KiB at a time through Starlette, which hops
    to a worker thread for every piece: ~16k hops for a 64 MiB shard, which caps it at a few MiB/s on a
    busy machine — a property of the test server, not of the Hub (which serves files from a CDN). The
    bytes, headers and routes are olah's own; only the size of the pieces changes.
    """
    from olah.mirror.repos import LocalMirrorRepo

    original = LocalMirrorRepo.get_file

    def get_file(self, commit_hash: str, path: str):
        pieces = original(self, commit_hash, path)
        if pieces is None:
            return None

        def regrouped():
            buf = bytearray()
            for piece in pieces:
                buf += piece
                if len(buf) >= piece_bytes:
                    yield bytes(buf)
                    buf.clear()
            if buf:
                yield bytes(buf)

        return regrouped()

    LocalMirrorRepo.get_file = get_file


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="olah with the local write stand-in (tests only)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-path", default="./logs")
    parser.add_argument("--piece-bytes", type=int, default=0,
                        help="send mirrored files in pieces of this size instead of olah's 4 KiB (0: olah's own)")
    args = parser.parse_args()
    sys.argv = [sys.argv[0], "--config", args.config, "--log-path", args.log_path]
    from olah import server

    if args.piece_bytes:
        larger_pieces(args.piece_bytes)
    olah_args = server.init()
    cfg = server.app.state.app_settings.config
    add_write_routes(server.app, Path(cfg.mirrors_path[0]), Path(cfg.repos_path))
    server.run_server(olah_args)


if __name__ == "__main__":
    _main()
