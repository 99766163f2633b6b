"""`python app.py` as a Hugging Face Space starts it: the address and port from GRADIO_SERVER_NAME/PORT, no
Hub access (so the app falls back to the demo models in assets/models), the `spaces` package installed,
with and without a CJK font. A gradio_client then calls /generate with the prompt only."""

import functools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from clipdemo.config import PRESETS
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120  # seconds for the server to answer; it imports torch, diffusers and gradio first


def test_on_gpu_wraps_the_gpu_handlers_with_spaces_gpu(studio, monkeypatch):
    import spaces  # requirements-dev.txt installs it: ZeroGPU Spaces have it

    from clipdemo.ui import build_app, common

    def handler():
        return "ran"

    assert common.on_gpu(handler) is spaces.GPU(handler)  # off ZeroGPU, spaces.GPU hands back the function
    assert common.on_gpu(handler, lambda: 30) is handler  # with a duration too
    wrapped, ran, asked = [], [], []

    def gpu(task=None, *, duration=None):  # stands in for ZeroGPU's wrapper: records what it wraps, runs, asks
        if task is None:
            return functools.partial(gpu, duration=duration)
        wrapped.append(task.__name__)

        @functools.wraps(task)
        def run(*args, **kwargs):
            ran.append(task.__name__)
            asked.append(duration(*args, **kwargs) if callable(duration) else duration)
            return task(*args, **kwargs)

        return run

    monkeypatch.setattr(spaces, "GPU", gpu)
    assert common.on_gpu(handler)() == "ran" and ran == ["handler"]
    wrapped.clear()

    from gradio_client import Client

    from tests.servers import launch_local

    demo = build_app(studio)
    assert sorted(wrapped) == ["bench", "compare", "generate"]  # the handlers that use the GPU, and only those
    demo.queue(max_size=4)
    try:
        client = Client(launch_local(demo), verbose=False)
        gallery, *_ = client.predict("a red circle", "", 2, 1, 0, 64, 64, "1", api_name="/generate")
        with pytest.raises(Exception, match="prompt"):  # refused at once, after asking for its GPU time
            client.predict("", "", 8, 100, 0, 1024, 1024, "1", api_name="/generate")
    finally:
        demo.close()
    assert len(gallery) == 2 and ran == ["handler", "generate", "generate"]
    # ZeroGPU is asked for time by each click's own size: the least for 2 tiny images, the most for 8 large ones.
    assert asked == [None, 20, 120]


def test_the_gpu_time_grows_with_candidates_steps_and_pixels():
    from clipdemo.generation import gpu_seconds

    base = gpu_seconds(2, 4, 512, 512)
    assert gpu_seconds(4, 4, 512, 512) > base and gpu_seconds(2, 8, 512, 512) > base
    assert gpu_seconds(2, 4, 768, 768) > base
    assert gpu_seconds(1, 1, 64, 64) == 20 and gpu_seconds(8, 100, 2048, 2048) == 120  # the platform's range
    assert gpu_seconds(None, "x", 512, 512) == gpu_seconds(8, 100, 512, 512)  # bad input: the largest allowed


def wait_for_server(url: str, server: subprocess.Popen, log: Path) -> None:
    """Poll until the server answers; fail early if it exits or says it listens somewhere else."""
    deadline = time.monotonic() + START_TIMEOUT
    listening_since = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"app.py exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if listening_since is None and "Running on local URL" in log.read_text():
            listening_since = time.monotonic()
        if listening_since is not None and time.monotonic() - listening_since > 10:
            pytest.fail(f"app.py listens, but not at {url}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"app.py did not answer at {url} within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.mark.skipif(not Path(PRESETS["demo"].sd_model).is_dir(), reason="the demo models are not in assets/models")
@pytest.mark.timeout(START_TIMEOUT + 120)  # the start, then two calls on the demo models
@pytest.mark.parametrize("font", ["cjk", "no-cjk"])
def test_app_py_serves_generate_as_a_space_runs_it(tmp_path, font):
    from gradio_client import Client, handle_file

    from clipdemo.plots import cjk_font

    if font == "cjk" and cjk_font() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPDEMO_")}  # a Space sets none of them
    env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"), PYTHONUNBUFFERED="1")  # HF_HOME: a fresh Space's empty cache
    env["OMP_NUM_THREADS"] = "1"  # two threads beside a busy process on 2 cores: 40 demo steps took 40 s, not 2
    if font == "no-cjk":
        env["CLIPDEMO_CJK_FONT"] = "none"  # plots then draw as on a machine without the font
    check = subprocess.run([sys.executable, "-c", "import spaces"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_server(url, server, log)
        client = Client(url, verbose=False)
        gallery, table, info, _ = client.predict("a red circle", api_name="/generate")
        n = PRESETS["demo"].defaults.n
        assert len(gallery) == len(table["data"]) == n  # the demo preset's default number of candidates
        assert [row[0] for row in table["data"]] == list(range(1, n + 1))
        scores = [row[2] for row in table["data"]]
        assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
        assert gallery[0]["caption"].startswith("#1 · CLIP ")
        # A plot with Chinese text: drawn with the CJK font, or with a warning where there is none.
        _, rows, _, _ = client.predict([handle_file(gallery[0]["image"])], "a red circle\n红色的圆形",
                                       api_name="/similarity")
        assert [row[1] for row in rows["data"]] == ["a red circle", "红色的圆形"]
        client.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = log.read_text()
    assert "Using the offline demo models" in output  # the fallback says so
    assert f"0.0.0.0:{port}" in output
    assert ("No CJK font found" in output) == (font == "no-cjk")
