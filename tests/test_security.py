"""Security: upload caps, server paths, auth, share off, safetensors only, telemetry off, narrow allowed paths."""

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from clipdemo import Studio, resolve_settings
from clipdemo.cli.main import build_parser
from tests.servers import free_port, launch_local

ROOT = Path(__file__).resolve().parent.parent
CAP = 50 * 2**20  # the 50 MB upload cap in bytes, as gradio words it


@pytest.fixture(scope="module")
def served(tiny_sd_dir, tiny_clip_dir):
    from clipdemo.ui import app as ui

    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                     pick_model="none", moderation="off", decoder="full"))
    demo = ui.build_app(studio)
    ui.queue(demo, studio)
    url = launch_local(demo, max_file_size=ui.MAX_FILE_SIZE)
    yield demo, url, studio
    demo.close()


def test_share_is_off_by_default_and_host_is_loopback(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    args = build_parser().parse_args(["serve"])
    assert args.share is False and args.host == "127.0.0.1"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # Spaces set it; the default follows
    assert build_parser().parse_args(["serve"]).host == "0.0.0.0"
    assert build_parser().parse_args(["serve", "--host", "127.0.0.2"]).host == "127.0.0.2"


def test_no_server_paths_are_exposed_or_accepted(served, tiny_sd_dir):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from clipdemo.ui.formatting import shown

    demo, url, *_ = served
    assert str(tiny_sd_dir) not in demo.config["components"].__repr__()  # models are shown by name only
    client = Client(url, verbose=False)
    listed = shown(str(tiny_sd_dir))
    for model_a, model_b, refused in (("/etc", listed, "/etc"), (listed, str(tiny_sd_dir), str(tiny_sd_dir))):
        with pytest.raises(AppError, match=re.escape(f"Value: {refused} is not in the list of choices: ['{listed}']")):
            client.predict("a cat", "1", 1, 64, 64, model_a, 1, 0, "default", "", model_b, 1, 0, "default", "",
                           api_name="/compare")
    assert not demo.allowed_paths  # nothing beyond gradio's own cache and temp files is served


def test_upload_count_and_size_are_capped(served, tmp_path):
    import httpx
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from clipdemo.ui.common import MAX_UPLOADS

    demo, url, *_ = served
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
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {CAP} bytes"):  # gradio_client's check
        client.predict([handle_file(str(big))], "a, b", "", 1, api_name="/classify")
    with open(big, "rb") as f:  # the server's own check, for clients that skip theirs
        response = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", f)}, timeout=60)
    assert (response.status_code, response.text) == (413, f"File size exceeded maximum allowed size of {CAP} bytes.")
    assert client.predict([handle_file(str(paths[0]))], "a, b", "", 1, api_name="/classify")[0]


@pytest.fixture
def own_temp(tmp_path, monkeypatch):
    """The app's temp folders under tmp_path (so pruning spares other tests'); gradio keeps its upload cache."""
    from gradio.utils import get_upload_folder

    monkeypatch.setenv("GRADIO_TEMP_DIR", get_upload_folder())
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def class_zip(path: Path, *extra: str) -> Path:
    """A zip of two class folders with one image each, then `extra` entries, written last."""
    path.parent.mkdir(exist_ok=True)
    image = path.parent / "0.png"
    Image.new("RGB", (8, 8), "red").save(image)
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(image, "cat/0.png")
        zf.write(image, "dog/0.png")
        for entry in extra:
            zf.writestr(entry, image.read_bytes())
    return path


def test_zip_slip_through_evaluate_is_refused(served, own_temp, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served[1], verbose=False)
    outside = tmp_path / "evil.png"
    for i, entry in enumerate(["..\\evil.png", "C:\\evil.png", "C:/evil.png", "c:evil.png", "//host/share/evil.png",
                               str(outside), "a/../../evil.png", "cat/../../evil.png"]):
        archive = class_zip(tmp_path / f"zip{i}" / "slip.zip", entry)
        with pytest.raises(AppError, match=re.escape(f"The zip entry '{entry}' points outside the archive; refusing")):
            client.predict(handle_file(str(archive)), "", "single", "", "auto", api_name="/evaluate")
        assert len(list((own_temp / "clipdemo-evals").glob("eval-*"))) == i + 1  # each was unpacked here
        assert [p for p in own_temp.rglob("*") if p.is_file()] == [], entry  # nothing, not even the good entries
        assert not outside.exists()


def test_temp_folders_stay_within_their_size_bound_and_keep_the_latest_run(served, own_temp, monkeypatch):
    """With the minimum age at 0 and a bound of about two and a half runs, each new run prunes the least recently
    used first: the folders stay within the bound (plus the run just written), and the latest download is whole."""
    from dataclasses import replace

    from gradio_client import Client

    from clipdemo.storage import GB, entry_size
    from clipdemo.ui import common

    _, url, studio = served
    runs, evals = own_temp / "clipdemo-runs", own_temp / "clipdemo-evals"
    monkeypatch.setattr(common, "temp_folders", lambda: [runs, evals])  # not the gradio cache other tests share
    client = Client(url, verbose=False)
    client.predict("a red circle", "", 1, 1, 0, 64, 64, "0", "auto", False, api_name="/generate")
    one_run = entry_size(runs)
    before = studio.settings
    studio.settings = replace(before, runs_min_age_hours=0.0, runs_max_gb=2.5 * one_run / GB)
    written, downloads = [], []
    try:
        for seed in range(1, 6):
            existing = set(runs.iterdir())
            _, _, _, archive = client.predict("a red circle", "", 1, 1, 0, 64, 64, str(seed), "auto", False,
                                              api_name="/generate")
            written.append(set(runs.iterdir()) - existing)
            downloads.append(archive)
            assert entry_size(runs) <= 3.6 * one_run  # the bound, plus the run just written
    finally:
        studio.settings = before
    assert all(p.exists() for p in written[-1]) and not any(p.exists() for p in written[0])  # oldest out first
    latest = next(p for p in written[-1] if p.is_dir())
    with zipfile.ZipFile(downloads[-1]) as zf:  # the latest run's download is served whole
        assert sorted(zf.namelist()) == sorted(p.name for p in latest.iterdir())


def test_basic_auth_from_environment(tiny_sd_dir, tiny_clip_dir, tmp_path):
    import time

    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CLIPDEMO_AUTH="alice:s3cret")
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--sd-model", str(tiny_sd_dir),
                               "--clip-model", str(tiny_clip_dir)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                httpx.get(url + "/config", timeout=2)
                break
            except httpx.HTTPError:
                pass
            server.poll()
            assert server.returncode is None, "server died"
            time.sleep(0.5)
        assert httpx.get(url + "/config", timeout=5).status_code == 401
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url, verbose=False)
        for wrong in (("alice", "wrong"), ("bob", "s3cret"), ("alice", "")):
            with pytest.raises(ValueError, match=re.escape(f"Could not login to {url}/")):
                Client(url, auth=wrong, verbose=False)
        refused = httpx.post(url + "/login", data={"username": "alice", "password": "s3cret "}, timeout=5)
        assert (refused.status_code, refused.json()) == (400, {"detail": "Incorrect credentials."})
        client = Client(url, auth=("alice", "s3cret"), verbose=False)
        assert "/classify" in str(client.view_api(print_info=False, return_format="dict"))
        with httpx.Client(base_url=url, timeout=60) as browser:  # launch() itself caps uploads, not only the tests
            assert browser.post("/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
            big = tmp_path / "big.png"
            with open(big, "wb") as f:
                f.truncate(60 * 2**20)
            with open(big, "rb") as f:
                assert browser.post("/gradio_api/upload", files={"files": ("big.png", f)}).status_code == 413
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.timeout(120)  # a value let through would start serving instead of returning
@pytest.mark.parametrize("value", ["alice", ":pw", "alice:"])
def test_malformed_auth_is_one_line_and_exit_code_2(value, monkeypatch, capsys, tiny_sd_dir, tiny_clip_dir):
    from clipdemo.cli.main import main

    monkeypatch.setenv("CLIPDEMO_AUTH", value)
    code = main(["serve", "--port", str(free_port()), "--sd-model", str(tiny_sd_dir), "--clip-model",
                 str(tiny_clip_dir)])
    assert (code, capsys.readouterr().err) == (2, "clipdemo serve: error: CLIPDEMO_AUTH must look like user:password.\n")


def test_malformed_auth_ends_the_app_without_a_traceback(tiny_sd_dir, tiny_clip_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CLIPDEMO_AUTH="alice")
    out = subprocess.run([sys.executable, "app.py", "--port", str(free_port()), "--sd-model", str(tiny_sd_dir),
                          "--clip-model", str(tiny_clip_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert (out.returncode, out.stderr) == (2, "clipdemo serve: error: CLIPDEMO_AUTH must look like user:password.\n")


def test_telemetry_is_off_when_the_app_is_imported():
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY")}
    code = ("import clipdemo.ui, os, gradio.analytics as a; "
            "print(a.analytics_enabled(), os.environ['HF_HUB_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["False", "1"], out.stderr[-2000:]
