"""Self-test of tests/local_hub.py: the installed huggingface_hub, in child processes, downloads from LocalHub.

Children get HF_ENDPOINT=<hub>, their own HF_HOME, no HF_HUB_OFFLINE (conftest sets it here) and Xet off; what they
print (one JSON line) and what the hub recorded are checked. In-process requests use a bare httpx2 client, since
huggingface_hub's own session refuses every request while HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

from tests.local_hub import LocalHub, LocalProxy

pytestmark = pytest.mark.integration

REPO = "org/tiny-model"
PR = "refs/pr/66"
PEER_CLOSED = "peer closed connection without sending complete message body"  # httpx2's message for a cut body
CLIENT_CHUNK = 10 * 1024 * 1024  # huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE: what http_get writes at a time

_rng = random.Random(1234)
WEIGHTS_BIN = _rng.randbytes(300_000)
WEIGHTS_ST = _rng.randbytes(260_000)
# Over one client chunk, so a cut after it leaves written bytes to resume from (see test_cut_resumes_in_process).
BIG = _rng.randbytes(CLIENT_CHUNK + 200_000)

DOWNLOAD = """
import json, sys, traceback
import huggingface_hub as h
args = json.loads(sys.argv[1])
try:
    if args.get("snapshot"):
        path = h.snapshot_download(args["repo"], revision=args.get("revision"), allow_patterns=args.get("allow"))
    elif args.get("metadata_only"):
        path = str(h.get_hf_file_metadata(h.hf_hub_url(args["repo"], args["file"])))
    else:
        path = h.hf_hub_download(args["repo"], args["file"], revision=args.get("revision"))
    print(json.dumps({"ok": True, "path": path}))
except Exception as e:
    traceback.print_exc()
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)[:500]}))
    sys.exit(3)
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_child(env: dict, timeout: float = 60, **args) -> dict:
    result = subprocess.run([sys.executable, "-c", DOWNLOAD, json.dumps(args)], env=env, capture_output=True,
                            text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"child printed no result (rc={result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}"
    out = json.loads(lines[-1])
    out["rc"], out["stderr"] = result.returncode, result.stderr
    return out


@pytest.fixture
def hub():
    hub = LocalHub()
    hub.add_file(REPO, "config.json", b'{"model_type": "clip"}')
    hub.add_file(REPO, "pytorch_model.bin", WEIGHTS_BIN)
    hub.add_file(REPO, "config.json", b'{"model_type": "clip"}', revision=PR)
    hub.add_file(REPO, "pytorch_model.bin", WEIGHTS_BIN, revision=PR)
    hub.add_file(REPO, "model.safetensors", WEIGHTS_ST, revision=PR)
    hub.add_file(REPO, "big.bin", BIG)
    with hub:
        yield hub


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "hf_home"


def repo_cache(home: Path) -> Path:
    return home / "hub" / f"models--{REPO.replace('/', '--')}"


def test_main_and_pr_revision_download_into_the_cache_layout(hub, home):
    env = hub.child_env(home=home)
    main = run_child(env, repo=REPO, file="pytorch_model.bin")
    pr = run_child(env, repo=REPO, file="model.safetensors", revision=PR)
    absent = run_child(env, repo=REPO, file="model.safetensors")  # main has no safetensors, as on the real repo
    assert main["ok"] and pr["ok"], (main, pr)
    assert Path(main["path"]).read_bytes() == WEIGHTS_BIN
    assert Path(pr["path"]).read_bytes() == WEIGHTS_ST
    assert absent["error"] == "RemoteEntryNotFoundError" and absent["rc"] != 0

    cache, main_sha, pr_sha = repo_cache(home), hub.commit_sha(REPO), hub.commit_sha(REPO, PR)
    assert main_sha != pr_sha and len(main_sha) == 40
    assert (cache / "refs" / "main").read_text() == main_sha
    assert (cache / "refs" / "refs" / "pr" / "66").read_text() == pr_sha
    assert Path(main["path"]) == cache / "snapshots" / main_sha / "pytorch_model.bin"
    assert Path(pr["path"]) == cache / "snapshots" / pr_sha / "model.safetensors"
    assert Path(pr["path"]).is_symlink() and Path(pr["path"]).resolve() == cache / "blobs" / sha256(WEIGHTS_ST)
    assert (cache / "blobs" / sha256(WEIGHTS_BIN)).read_bytes() == WEIGHTS_BIN
    assert (cache / ".no_exist" / main_sha / "model.safetensors").exists()
    # The quoted revision arrived as one path segment and was served from the PR revision.
    assert f"{REPO}/{PR}/model.safetensors" in hub.files_served(REPO)
    assert hub.bytes_served() == len(WEIGHTS_BIN) + len(WEIGHTS_ST)


def test_snapshot_download_fetches_only_allowed_files(hub, home, tmp_path):
    folder = tmp_path / "pipeline"
    files = {"model_index.json": b'{"a": 1}', "unet/config.json": b'{"b": 2}', "unet/w.safetensors": b"u" * 70_000,
             "vae/config.json": b'{"c": 3}', "vae/w.safetensors": b"v" * 1000, "notes.md": b"skip me"}
    for name, data in files.items():  # distinct contents: equal files share one blob and are fetched once
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    hub.add_folder("org/pipe", folder, skip=["*.md"])
    out = run_child(hub.child_env(home=home), snapshot=True, repo="org/pipe", allow=["*.json", "unet/*"])
    assert out["ok"], out
    served = sorted(hub.files_served("org/pipe"))
    assert served == ["org/pipe/main/model_index.json", "org/pipe/main/unet/config.json",
                      "org/pipe/main/unet/w.safetensors", "org/pipe/main/vae/config.json"]
    snapshot = Path(out["path"])
    assert snapshot.name == hub.commit_sha("org/pipe")
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) == \
        ["model_index.json", "unet/config.json", "unet/w.safetensors", "vae/config.json"]
    assert (snapshot / "unet" / "w.safetensors").read_bytes() == b"u" * 70_000
    assert not any(r.file == "notes.md" for r in hub.requests)  # skipped by add_folder: not even listed
    api = [(r.method, r.path, r.query) for r in hub.requests if r.path.startswith("/api/")]
    sha = hub.commit_sha("org/pipe")
    assert api == [("GET", "/api/models/org/pipe/revision/main", ""),
                   ("GET", f"/api/models/org/pipe/tree/{sha}", "recursive=true&expand=false")]


def test_cut_resumes_in_process(hub, home):
    """huggingface_hub 2.4 retries a dropped download in the same call, from the bytes it had written."""
    cut_at = CLIENT_CHUNK + 100_000
    hub.cut_after("big.bin", cut_at)
    out = run_child(hub.child_env(home=home), repo=REPO, file="big.bin")
    assert out["ok"], out
    assert PEER_CLOSED in out["stderr"]  # the client saw the connection end (not a read timeout), then resumed
    assert sha256(Path(out["path"]).read_bytes()) == sha256(BIG)
    gets = [r for r in hub.requests if r.method == "GET" and r.file == "big.bin"]
    assert [(g.range, g.status, g.fault, g.complete) for g in gets][0] == (None, 200, "cut", False)
    assert gets[0].body_bytes == cut_at
    assert len(gets) == 2 and gets[1].status == 206 and gets[1].range is not None
    resumed_from = int(gets[1].range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_from <= cut_at
    assert gets[1].body_bytes == len(BIG) - resumed_from
    # Only what the client had not yet written to disk went over the wire twice: less than one client chunk.
    assert len(BIG) <= hub.bytes_served(REPO) < len(BIG) + CLIENT_CHUNK
    assert hub.files_served() == [f"{REPO}/main/big.bin"]


def test_cut_every_attempt_fails_and_leaves_nothing_to_resume(hub, home):
    """When every attempt is cut the call fails; 2.4 deletes its per-process temporary file, so the next run
    downloads the whole file again (no cross-process resume, no .incomplete left in the cache)."""
    hub.cut_after("pytorch_model.bin", 100_000, times=100)
    env = hub.child_env(home=home)
    first = run_child(env, repo=REPO, file="pytorch_model.bin")
    assert not first["ok"] and first["rc"] != 0 and first["error"] == "RemoteProtocolError", first
    assert PEER_CLOSED in first["message"]
    failed_gets = [r for r in hub.requests if r.method == "GET"]
    assert len(failed_gets) == 6 and all(r.fault == "cut" and r.body_bytes == 100_000 for r in failed_gets)
    cache = repo_cache(home)
    assert not list(cache.rglob("*.incomplete"))
    assert not (cache / "snapshots").exists() or not list((cache / "snapshots").rglob("pytorch_model.bin"))
    assert not (cache / "blobs" / sha256(WEIGHTS_BIN)).exists()

    hub.clear_faults()
    hub.reset_counters()
    second = run_child(env, repo=REPO, file="pytorch_model.bin")
    assert second["ok"], second
    assert sha256(Path(second["path"]).read_bytes()) == sha256(WEIGHTS_BIN)
    gets = [r for r in hub.requests if r.method == "GET"]
    assert [(g.range, g.status, g.body_bytes) for g in gets] == [(None, 200, len(WEIGHTS_BIN))]
    assert hub.bytes_served() == len(WEIGHTS_BIN)


def test_truncated_file_fails_the_consistency_check(hub, home):
    hub.truncate("pytorch_model.bin", 120_000)
    out = run_child(hub.child_env(home=home), repo=REPO, file="pytorch_model.bin")
    assert not out["ok"] and out["rc"] != 0, out
    assert out["error"] == "OSError" and "Consistency check failed" in out["message"]
    gets = [r for r in hub.requests if r.method == "GET"]
    assert [(g.fault, g.body_bytes, g.complete) for g in gets] == [("truncate", 120_000, True)]
    head = next(r for r in hub.requests if r.method == "HEAD")
    assert head.status == 200
    cache = repo_cache(home)
    assert not list(cache.rglob("pytorch_model.bin")) and not list(cache.rglob("*.incomplete"))


def test_stall_holds_requests_until_released(hub):
    url = f"{hub.url}/{REPO}/resolve/main/config.json"
    with httpx2.Client(trust_env=False) as client:
        hub.stall()
        with pytest.raises(httpx2.TimeoutException):
            client.head(url, timeout=1)
        hub.stall(False)
        response = client.head(url, timeout=5)
    assert response.status_code == 200 and response.headers["X-Repo-Commit"] == hub.commit_sha(REPO)
    assert response.headers["X-Linked-Size"] == str(len(b'{"model_type": "clip"}'))

    # stop() releases a stalled request (it gets no answer) and returns promptly.
    hub.stall()
    failures: list[BaseException] = []

    def stalled_get():
        try:
            with httpx2.Client(trust_env=False) as c:
                c.get(url, timeout=20)
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            failures.append(error)

    worker = threading.Thread(target=stalled_get, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while hub.stalled_requests() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hub.stalled_requests() == 1
    started = time.monotonic()
    hub.stop()
    worker.join(timeout=10)
    assert time.monotonic() - started < 5 and not worker.is_alive()
    assert failures and isinstance(failures[0], httpx2.HTTPError)
    assert [r.status for r in hub.requests if r.method == "GET"] == [0]


def test_range_and_errors_over_plain_http(hub):
    with httpx2.Client(trust_env=False) as client:
        part = client.get(f"{hub.url}/{REPO}/resolve/main/pytorch_model.bin", headers={"Range": "bytes=10-19"})
        tail = client.get(f"{hub.url}/{REPO}/resolve/{hub.commit_sha(REPO)}/pytorch_model.bin",
                          headers={"Range": "bytes=299990-"})
        repo = client.head(f"{hub.url}/org/none/resolve/main/x")
        rev = client.head(f"{hub.url}/{REPO}/resolve/v2/config.json")
        tree = client.get(f"{hub.url}/api/models/{REPO}/tree/refs%2Fpr%2F66", params={"recursive": "true"})
    assert part.status_code == 206 and part.content == WEIGHTS_BIN[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(WEIGHTS_BIN)}"
    assert tail.status_code == 206 and tail.content == WEIGHTS_BIN[299_990:]
    assert (repo.status_code, repo.headers["X-Error-Code"]) == (404, "RepoNotFound")
    assert (rev.status_code, rev.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    listed = {e["path"]: e for e in tree.json()}
    assert set(listed) == {"config.json", "pytorch_model.bin", "model.safetensors"}
    assert listed["model.safetensors"]["lfs"] == {"oid": sha256(WEIGHTS_ST), "size": len(WEIGHTS_ST),
                                                  "pointerSize": listed["model.safetensors"]["lfs"]["pointerSize"]}


def test_proxy_reaches_a_host_only_it_can_resolve(hub, home):
    endpoint = f"http://hub.test:{hub.port}"
    with LocalProxy(resolve={"hub.test": ("127.0.0.1", hub.port)}) as proxy:
        env = hub.child_env(home=home)
        env["HF_ENDPOINT"] = endpoint
        for name in [k for k in env if k.lower().endswith("_proxy")]:
            del env[name]
        direct = run_child(env, repo=REPO, file="pytorch_model.bin", metadata_only=True)
        assert not direct["ok"] and direct["error"] == "ConnectError", direct
        assert not proxy.requests and not hub.requests

        hub.cut_after("pytorch_model.bin", 50_000)  # the cut must come through the proxy as a cut
        out = run_child(proxy.proxy_env(env), repo=REPO, file="pytorch_model.bin")
        assert out["ok"], out
        assert PEER_CLOSED in out["stderr"]
        assert Path(out["path"]).read_bytes() == WEIGHTS_BIN
        url = f"{endpoint}/{REPO}/resolve/main/pytorch_model.bin"
        assert proxy.requests == [url, url, url]  # HEAD, the cut GET, the retried GET
        assert [(r.method, r.fault) for r in hub.requests] == [("HEAD", None), ("GET", "cut"), ("GET", None)]

        with httpx2.Client(proxy=proxy.url, trust_env=False) as client:
            part = client.get(url, headers={"Range": "bytes=5-9"})
        assert part.status_code == 206 and part.content == WEIGHTS_BIN[5:10]
