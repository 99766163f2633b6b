"""The first online start, through a local Hub (tests/local_hub.py) on a port other than 443.

The default repositories are served as their real ones are laid out (tests/hub_cache.py), with tiny random
weights and every file no loader reads (other precisions, frameworks, single-file checkpoints) as decoys.
Each start is a fresh process with HF_ENDPOINT at the local Hub and HF_HOME at an empty cache; nothing reaches
the network. In order: a CLI start whose connection is cut every time (it fails in words and keeps what
arrived), a truncated file (never loaded), then `python app.py` over a slow connection in a real browser (page
up at once, progress to 100%, a generate clicked early runs once its models are ready, the cut file resumed),
then the reachability checks (another port, a proxy, a server that never answers).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hub_cache import serve_repos
from tests.local_hub import LocalHub, LocalProxy
from tests.multilingual_models import save_tiny_chinese_clip, save_tiny_marian
from tests.servers import free_port
from tests.tiny_models import save_tiny_clip, save_tiny_sd, save_tiny_taesd

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
CUT_FILE = "text_encoder/model.safetensors"  # the largest file of the tiny pipeline (its 49408-token embedding)
MiB = 1 << 20
TIMELINE = ROOT / "test-artifacts" / "first-start.json"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub, serving what a first English and Chinese generate on the CPU loads."""
    base = tmp_path_factory.mktemp("saved")
    saved = {"stabilityai/sd-turbo": save_tiny_sd(base / "sd"), "madebyollin/taesd": save_tiny_taesd(base / "taesd"),
             "openai/clip-vit-base-patch32": save_tiny_clip(base / "clip"),
             "OFA-Sys/chinese-clip-vit-base-patch16": save_tiny_chinese_clip(base / "zh"),
             "Helsinki-NLP/opus-mt-zh-en": save_tiny_marian(base / "marian")}
    server = LocalHub()
    server.loaded = serve_repos(server, saved)
    with server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One HF_HOME for the module's starts: the second start finds what the first one left."""
    return tmp_path_factory.mktemp("hf-home")


def child_env(hub: LocalHub, home: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in hub.child_env(home=home).items() if not k.startswith("CLIPDEMO_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)  # the CLI's own bars are under test
    return env


def run_cli(env: dict[str, str], out: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "clipdemo", "generate", "a red circle", "-n", "2", "--width", "64",
               "--height", "64", "--seed", "3", "--out", str(out), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def snapshot_files(home: Path, repo_id: str) -> set[str]:
    snapshots = home / "hub" / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return {p.relative_to(next(iter([s for s in snapshots.iterdir()]))).as_posix()
            for p in snapshots.rglob("*") if p.is_file()} if snapshots.is_dir() else set()


def partial_files(home: Path, repo_id: str) -> list[Path]:
    return list((home / "hub" / ("models--" + repo_id.replace("/", "--")) / "blobs").glob("*.incomplete"))


def test_a_cut_connection_fails_in_words_and_keeps_what_arrived(hub, home, tmp_path):
    size = hub.loaded["stabilityai/sd-turbo"][CUT_FILE]
    assert size > 3 * MiB  # large enough for whole megabytes to arrive before each cut
    hub.reset_counters()
    hub.cut_after(CUT_FILE, int(1.5 * MiB), times=100)  # every try of this start is cut
    try:
        proc = run_cli(child_env(hub, home), tmp_path / "out")
    finally:
        hub.clear_faults()
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert "stabilityai/sd-turbo" in error and "could not be downloaded" in error, error
    assert "the next try resumes from there" in error and "Traceback" not in proc.stderr, error
    assert "downloading stabilityai/sd-turbo" in proc.stderr  # the CLI's progress bar on stderr
    # The cache stays valid: the cut file is not in the snapshot, what arrived waits beside it.
    assert CUT_FILE not in snapshot_files(home, "stabilityai/sd-turbo")
    (partial,) = partial_files(home, "stabilityai/sd-turbo")
    assert partial.stat().st_size == 3 * MiB  # one whole megabyte kept per try, three tries
    tries = [r for r in hub.requests if r.method == "GET" and r.file == CUT_FILE]
    assert [r.range for r in tries] == [None, f"bytes={MiB}-", f"bytes={2 * MiB}-"]
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_truncated_file_is_never_loaded(hub, tmp_path):
    home = tmp_path / "hf"
    hub.truncate("unet/diffusion_pytorch_model.safetensors", 1000, times=1)
    try:
        proc = run_cli(child_env(hub, home), tmp_path / "out")
    finally:
        hub.clear_faults()
    assert proc.returncode == 2 and "unet/diffusion_pytorch_model.safetensors arrived with" in proc.stderr
    assert "unet/diffusion_pytorch_model.safetensors" not in snapshot_files(home, "stabilityai/sd-turbo")
    blobs = home / "hub" / "models--stabilityai--sd-turbo" / "blobs"
    assert not [b for b in blobs.iterdir() if b.stat().st_size == 1000 and not b.name.endswith(".incomplete")]


@pytest.mark.timeout(600)
def test_first_start_serves_the_page_at_once_shows_progress_and_ranks(hub, home, tmp_path):
    """`python app.py` with nothing cached but a partial file: the page first, the models as they come."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install Debian's chromium package)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    resume_at = partial_files(home, "stabilityai/sd-turbo")[0].stat().st_size  # left by the cut start above
    hub.reset_counters()
    hub.throttle(4 * MiB)  # a slow line: the download takes seconds, long enough to watch
    port = free_port()
    log = tmp_path / "server.log"
    start = time.monotonic()
    timeline: dict[str, float] = {}
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT,
                                  env=child_env(hub, home, SPACE_ID="clipdemo/first-start"),  # as a Space starts it
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(120_000)
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    page.goto(url, wait_until="domcontentloaded")
                    break
                except playwright_api.Error:
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.3)
            page.locator("#generate-button").wait_for(state="visible")
            timeline["page up"] = time.monotonic() - start
            panel = page.locator("#model-downloads")
            page.locator("#generate-prompt textarea").fill("a red circle")
            page.locator("#generate-button").click()  # before the models are there
            seen: list[str] = []
            while len(timeline) < 6:  # the page, then five models ready
                text = panel.inner_text()
                if not seen or text != seen[-1]:
                    seen.append(text)
                for role in states(text, "ready"):
                    timeline.setdefault(f"{role} ready", time.monotonic() - start)
                assert not states(text, "not available"), text
                assert time.monotonic() - start < 300, seen[-3:]
                time.sleep(0.2)
            page.wait_for_function(
                "() => document.querySelectorAll('#ranked-gallery .grid-wrap .caption-label').length === 4")
            timeline["first ranked result"] = time.monotonic() - start
            captions = [c.inner_text() for c in page.locator("#ranked-gallery .grid-wrap .caption-label").all()]
            scores = [float(re.search(r"CLIP\s+(-?\d+(?:\.\d+)?)", c).group(1)) for c in captions]
            final = panel.inner_text()
            browser.close()
    finally:
        hub.throttle(None)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    output = log.read_text()
    TIMELINE.parent.mkdir(parents=True, exist_ok=True)
    TIMELINE.write_text(json.dumps(timeline, indent=2))
    # The page came first, and showed bytes, percent and time left while the models came down.
    assert timeline["page up"] < timeline["Stable Diffusion ready"], (timeline, seen)
    downloading = [s for s in seen if re.search(r"downloading [\d.]+ [KMG]?B of [\d.]+ [KMG]?B \(\d+%\)", s)]
    assert downloading, seen
    assert any("left" in s for s in downloading), downloading
    assert "Resumed text_encoder/model.safetensors at 3.1 MB" in final, final
    # A ranked result, best first, with sd-turbo's name (no demo fallback).
    assert len(scores) == 4 and scores == sorted(scores, reverse=True), scores
    assert "offline demo models" not in output and "Traceback" not in output, output[-3000:]
    # The cut file resumed from where the first start stopped.
    resumed = [r for r in hub.requests if r.method == "GET" and r.file == CUT_FILE]
    assert [r.range for r in resumed] == [f"bytes={resume_at}-"]
    # Bytes fetched equal bytes loaded: every file the loaders read, once; no decoy.
    served = {}
    for r in hub.requests:
        if r.method == "GET" and r.resolve and r.status in (200, 206):
            assert r.complete, r
            served.setdefault(r.repo_id, {})[r.file] = served.get(r.repo_id, {}).get(r.file, 0) + r.body_bytes
    for repo_id, files in served.items():
        assert set(files) <= set(hub.loaded[repo_id]), (repo_id, set(files) - set(hub.loaded[repo_id]))
    for repo_id in ("openai/clip-vit-base-patch32", "madebyollin/taesd", "OFA-Sys/chinese-clip-vit-base-patch16",
                    "Helsinki-NLP/opus-mt-zh-en"):
        assert served[repo_id] == hub.loaded[repo_id], repo_id  # fetched whole, in this start
    sd = hub.loaded["stabilityai/sd-turbo"]
    before = snapshot_files(home, "stabilityai/sd-turbo") - set(served["stabilityai/sd-turbo"])
    assert served["stabilityai/sd-turbo"] == {f: sd[f] - (resume_at if f == CUT_FILE else 0)
                                              for f in sd if f not in before}
    assert set(snapshot_files(home, "stabilityai/sd-turbo")) == set(sd)
    assert hub.bytes_served() == sum(sum(files.values()) for files in served.values())


def states(panel_text: str, state: str) -> list[str]:
    """The roles whose line in the models panel reads `state` (e.g. "✅ CLIP (openai/...): ready (...)")."""
    return [m.group(1) for m in re.finditer(rf"^\W*(\w[\w ]*?) \([^)]+\): {state}", panel_text, re.M)]


def probe_reason(env: dict[str, str]) -> str:
    code = "from clipdemo.hub import unreachable_reason; print(repr(unreachable_reason('openai/clip-vit-base-patch32')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_reachability_uses_the_endpoints_port_and_the_proxy(hub, tmp_path):
    assert hub.port != 443
    assert probe_reason(child_env(hub, tmp_path / "a")) == "None"  # http on another port, asked directly
    with LocalProxy(resolve={"hub.test": ("127.0.0.1", hub.port)}) as proxy:
        env = proxy.proxy_env(child_env(hub, tmp_path / "b", HF_ENDPOINT=f"http://hub.test:{hub.port}"))
        assert probe_reason(env) == "None"  # only the proxy knows hub.test
        assert any(u.startswith(f"http://hub.test:{hub.port}/api/models/") for u in proxy.requests)
        direct = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy")}
        assert f"http://hub.test:{hub.port} could not be reached" in probe_reason(direct)


def test_a_hub_that_never_answers_gives_the_demo_with_the_reason(hub, tmp_path):
    hub.stall(True)
    try:
        proc = run_cli(child_env(hub, tmp_path / "hf"), tmp_path / "out")
    finally:
        hub.stall(False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"cannot be reached from here ({hub.url} did not answer within 2 s)" in proc.stderr, proc.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["sd_model"].endswith("demo-sd")
