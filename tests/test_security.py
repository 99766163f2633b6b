"""Security: upload caps, server paths, auth, share off, safetensors only, telemetry off, narrow allowed paths."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from clipdemo import Studio, resolve_settings
from clipdemo.cli.main import build_parser
from tests.servers import free_port, launch_local

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served(tiny_sd_dir, tiny_clip_dir):
    from clipdemo.ui import app as ui

    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                     pick_model="none", moderation="off", decoder="full"))
    demo = ui.build_app(studio)
    demo.queue(max_size=ui.QUEUE_SIZE)
    url = launch_local(demo, max_file_size=ui.MAX_FILE_SIZE)
    yield demo, url
    demo.close()


def test_share_is_off_by_default_and_host_is_loopback():
    args = build_parser().parse_args(["serve"])
    assert args.share is False and args.host == os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")


def test_no_server_paths_are_exposed_or_accepted(served, tiny_sd_dir):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    demo, url = served
    assert str(tiny_sd_dir) not in demo.config["components"].__repr__()  # models are shown by name only
    client = Client(url, verbose=False)
    with pytest.raises((AppError, ValueError)):
        client.predict("a cat", "1", 1, 64, 64, "/etc", 1, 0, "default", "", str(tiny_sd_dir), 1, 0, "default", "",
                       api_name="/compare")
    assert not demo.allowed_paths  # nothing beyond gradio's own cache and temp files is served


def test_upload_count_and_size_are_capped(served, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from clipdemo.ui.common import MAX_UPLOADS

    demo, url = served
    client = Client(url, verbose=False)
    paths = []
    for i in range(MAX_UPLOADS + 1):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8)).save(paths[-1])
    with pytest.raises(AppError, match=f"limit is {MAX_UPLOADS}"):
        client.predict([handle_file(str(p)) for p in paths], "a, b", "", 1, api_name="/classify")
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(60 * 2**20)  # over the 50 MB cap
    with pytest.raises(Exception):
        client.predict([handle_file(str(big))], "a, b", "", 1, api_name="/classify")
    assert client.predict([handle_file(str(paths[0]))], "a, b", "", 1, api_name="/classify")[0]


def test_basic_auth_from_environment(tiny_sd_dir, tiny_clip_dir, tmp_path):
    import httpx

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CLIPDEMO_AUTH="alice:s3cret")
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--sd-model", str(tiny_sd_dir),
                               "--clip-model", str(tiny_clip_dir)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(url + "/config", timeout=2).status_code in (200, 401, 403):
                    break
            except httpx.HTTPError:
                pass
            server.poll()
            assert server.returncode is None, "server died"
            import time

            time.sleep(0.5)
        assert httpx.get(url + "/config", timeout=5).status_code in (401, 403)
        from gradio_client import Client

        client = Client(url, auth=("alice", "s3cret"), verbose=False)
        assert "/classify" in str(client.view_api(print_info=False, return_format="dict"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_telemetry_is_off_when_the_app_is_imported():
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY")}
    code = ("import clipdemo.ui, os, gradio.analytics as a; "
            "print(a.analytics_enabled(), os.environ['HF_HUB_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["False", "1"], out.stderr[-2000:]
