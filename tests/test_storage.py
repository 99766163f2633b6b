"""A server's disk over weeks (clipdemo.storage): temp folders pruned by age and by size, free space kept in
reserve, and a full disk answered in one sentence by the CLI (exit 2) and by the server."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from clipdemo import storage
from clipdemo.storage import MB, DiskFullError, DiskPolicy, ensure_space, prune

HOUR = 3600


def entry(folder: Path, name: str, megabytes: float, hours_old: float, now: float) -> Path:
    """A run-like folder holding one file of the given size, last used `hours_old` hours ago."""
    path = folder / name
    path.mkdir(parents=True)
    (path / "image.png").write_bytes(b"x" * int(megabytes * MB))
    os.utime(path, (now - hours_old * HOUR, now - hours_old * HOUR))
    return path


def test_prune_removes_what_is_past_the_maximum_age_and_nothing_younger(tmp_path):
    now = time.time()
    young, middle, old = (entry(tmp_path, n, 0.1, h, now) for n, h in (("young", 0.5), ("middle", 2), ("old", 30)))
    report = prune([tmp_path], DiskPolicy(min_age_s=HOUR, max_age_s=24 * HOUR, max_bytes=10 * MB), now=now)
    assert (young.exists(), middle.exists(), old.exists()) == (True, True, False)
    assert report.removed == 1 and report.freed_bytes == int(0.1 * MB)


def test_prune_keeps_the_size_bound_least_recently_used_first_but_never_a_young_run(tmp_path):
    now = time.time()
    runs = [entry(tmp_path / "runs", f"run{h}", 1, h, now) for h in (5, 4, 3, 2)]  # oldest first
    reports = entry(tmp_path / "reports", "eval", 1, 3.5, now)  # every folder counts towards the same bound
    fresh = entry(tmp_path / "runs", "fresh", 3, 0.2, now)  # over the bound alone, but younger than the minimum
    prune([tmp_path / "runs", tmp_path / "reports"], DiskPolicy(HOUR, 24 * HOUR, max_bytes=int(5.5 * MB)), now=now)
    assert [r.exists() for r in runs] == [False, False, True, True] and not reports.exists()  # 8 MB down to 5
    assert fresh.exists()


def test_low_space_prunes_the_oldest_runs_then_refuses_in_one_sentence(tmp_path, monkeypatch):
    now = time.time()
    runs = [entry(tmp_path / "runs", f"run{h}", 2, h, now) for h in (6, 5, 4)]
    capacity = 7 * MB  # a small disk: free space is what the runs leave
    monkeypatch.setattr(storage, "free_bytes", lambda folder: capacity - storage.entry_size(tmp_path / "runs"))
    policy = DiskPolicy(min_age_s=HOUR, headroom_bytes=1 * MB)
    ensure_space(tmp_path / "out", 2 * MB, policy, [tmp_path / "runs"])  # 1 MB free: one old run must go
    assert [r.exists() for r in runs] == [False, True, True]
    with pytest.raises(DiskFullError, match=r"^The server's disk is full: .* needs 6 MB plus 1 MB in reserve\."):
        ensure_space(tmp_path / "out", 6 * MB, DiskPolicy(min_age_s=4.5 * HOUR, headroom_bytes=MB), [tmp_path / "runs"])
    assert runs[2].exists()  # younger than the minimum age: kept even on a full disk


def test_the_cli_refuses_a_run_the_disk_cannot_hold_with_exit_2_and_one_line(tiny_sd_dir, tiny_clip_dir, tmp_path,
                                                                             monkeypatch, capsys):
    from clipdemo.cli.main import main

    monkeypatch.setattr(storage, "free_bytes", lambda folder: 5 * MB)
    out = tmp_path / "out"
    code = main(["generate", "a red circle", "--sd-model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir),
                 "--pick-model", "none", "-n", "2", "--steps", "1", "--width", "64", "--height", "64", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("clipdemo generate: error: The disk is full: 5 MB free where ")
    assert str(out) in err[-1] and "Traceback" not in "\n".join(err)
    assert not (out / "manifest.json").exists()  # refused before the work: nothing claims to be complete


def test_a_disk_that_fills_while_writing_leaves_no_manifest_and_says_so(studio, tmp_path, monkeypatch):
    from clipdemo.generation import GenerationRequest, output

    real = output.write_atomic

    def full_at_the_manifest(path, data):
        if Path(path).name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(output, "write_atomic", full_at_the_manifest)
    with pytest.raises(DiskFullError, match="The disk filled up while writing to .*no manifest.json was written"):
        studio.generate(GenerationRequest("a red circle", n=1, steps=1, width=64, height=64, seed=1),
                        out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_the_server_answers_a_full_disk_in_one_sentence(studio, monkeypatch):
    from gradio_client import Client

    from clipdemo.ui import build_app
    from tests.servers import launch_local

    monkeypatch.setattr(storage, "free_bytes", lambda folder: 0)
    demo = build_app(studio)
    url = launch_local(demo.queue(max_size=8))
    try:
        with pytest.raises(Exception, match=r"The server's disk is full: 0 KB free where .* in reserve\."):
            Client(url, verbose=False).predict("a red circle", "", 1, 1, 0, 64, 64, "1", api_name="/generate")
    finally:
        demo.close()


@pytest.fixture
def quiet():
    """What a server switches on at start, switched back off for the tests that follow."""
    from diffusers import DiffusionPipeline

    from clipdemo.loading import QUIET, quiet_progress_bars

    yield quiet_progress_bars
    QUIET.clear()
    del DiffusionPipeline._progress_bar_config


def test_a_server_logs_one_line_per_request_and_no_progress_bars(studio, quiet, capfd):
    from clipdemo.generation import GenerationRequest
    from clipdemo.ui.common import user_errors

    request = GenerationRequest("a red circle", n=1, steps=3, width=64, height=64, seed=1)
    studio.generate(request)  # before the server goes quiet: the pipeline keeps a bar setting of its own
    assert "it/s" in capfd.readouterr().err
    quiet()
    studio.generate(request)

    def classify():
        return "ok"

    user_errors(classify)()
    err = capfd.readouterr().err
    assert "it/s" not in err and "█" not in err  # no tqdm bar from the denoising loop
    assert [line for line in err.splitlines() if line.startswith("clipdemo: /classify ")] == [
        line for line in err.splitlines() if "classify" in line] and " s ok" in err
