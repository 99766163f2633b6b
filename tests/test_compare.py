"""Compare tab core, session history, PNG provenance, the download zip, and the Space front matter."""

import json
import statistics
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from clipdemo import GenerationRequest, Studio, resolve_settings
from clipdemo.compare import Setting
from clipdemo.history import MAX_RUNS, append, next_number, rows, run_from_result
from clipdemo.provenance import image_metadata, read_metadata
from clipdemo.ranking import write_run, zip_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quiet_studio(tiny_sd_dir, tiny_clip_dir):
    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                   pick_model="none", moderation="off", decoder="full"))


def test_equal_settings_give_identical_images_on_the_same_seeds(quiet_studio, tiny_sd_dir):
    same = Setting(str(tiny_sd_dir), 2, 0.0)
    result = quiet_studio.compare("a red circle", 7, 3, same, same, width=64, height=64)
    assert result.seeds == [7, 8, 9]
    a = {i.seed: i.image.tobytes() for i in result.a.images}
    b = {i.seed: i.image.tobytes() for i in result.b.images}
    assert a == b and result.wins == (0, 0, 3)


def test_different_settings_scores_stats_and_wins(quiet_studio, tiny_sd_dir):
    a = Setting(str(tiny_sd_dir), 1, 0.0)
    b = Setting(str(tiny_sd_dir), 3, 0.0, scheduler="dpm++", negative_prompt="blurry")
    result = quiet_studio.compare("a red circle", 20, 4, a, b, width=64, height=64)
    assert {i.seed for i in result.a.images} == {i.seed for i in result.b.images} == {20, 21, 22, 23}
    sa, sb = result.scores(result.a), result.scores(result.b)
    assert sa != sb
    stats_a, stats_b = result.stats
    assert stats_a.mean == pytest.approx(statistics.fmean(sa)) and stats_b.max == max(sb)
    assert stats_a.spread == pytest.approx(float(np.std(sa)))
    wins = result.wins
    assert wins[0] == sum(x > y for x, y in zip(sa, sb)) and sum(wins) == 4
    assert result.b.request.negative_prompt == "blurry"


def test_compare_refuses_unconfigured_models_and_schedulers(quiet_studio, tiny_sd_dir):
    from clipdemo.errors import InputError

    with pytest.raises(InputError, match="not one of this server's models"):
        quiet_studio.compare("x", 1, 1, Setting("/etc", 1, 0.0), Setting(str(tiny_sd_dir), 1, 0.0), 64, 64)
    with pytest.raises(InputError, match="scheduler"):
        quiet_studio.compare("x", 1, 1, Setting(str(tiny_sd_dir), 1, 0.0, "warp"), Setting(str(tiny_sd_dir), 1, 0.0),
                             64, 64)


def test_png_metadata_round_trips_and_zip_holds_the_run(quiet_studio, tmp_path):
    result = quiet_studio.generate(GenerationRequest("a dog wearing glasses", "blurry", n=2, steps=1, width=64,
                                                     height=64, seed=5))
    write_run(result, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    for item, entry in zip(result.images, manifest["images"]):
        meta = read_metadata(tmp_path / "run" / entry["file"])
        assert meta == json.loads(json.dumps(image_metadata(result, item)))
        assert (meta["prompt"], meta["negative_prompt"], meta["seed"], meta["steps"], meta["width"]) == (
            "a dog wearing glasses", "blurry", item.seed, 1, 64)
        assert meta["scores"]["clip"] == entry["clip_score"] and meta["scorers"] == ["clip"]
        assert meta["sd_model"] and meta["clip_model"] and meta["clipdemo_version"]
    archive = zip_run(tmp_path / "run", tmp_path / "all.zip")
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted(["manifest.json"] + [e["file"] for e in manifest["images"]])
        assert json.loads(zf.read("manifest.json")) == manifest


def test_plain_png_has_no_metadata(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") is None


def test_history_is_bounded_and_numbered(quiet_studio):
    result = quiet_studio.generate(GenerationRequest("a cat", n=2, steps=1, width=64, height=64, seed=1))
    history: list[dict] = []
    for _ in range(MAX_RUNS + 5):
        history = append(history, run_from_result(next_number(history), "generate", result))
    assert len(history) == MAX_RUNS and history[0]["number"] == 6 and history[-1]["number"] == MAX_RUNS + 5
    row = rows(history)[-1]
    assert row[3] == "a cat" and row[10] == pytest.approx(statistics.fmean(i.clip_score for i in result.images), abs=1e-3)


def test_readme_front_matter_is_valid_space_yaml():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license",
                "short_description", "suggested_hardware", "models"):
        assert key in front, key
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    pinned = [l for l in (ROOT / "requirements.txt").read_text().splitlines() if l.startswith("gradio==")][0]
    assert pinned.split("==")[1].rstrip(".*") in str(front["sdk_version"])
    assert {"stabilityai/sd-turbo", "openai/clip-vit-base-patch32"} <= set(front["models"])


def test_spaces_gpu_is_used_only_when_present(monkeypatch):
    import sys
    import types

    from clipdemo.ui.common import on_gpu

    def fn():
        return 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed
    assert on_gpu(fn) is fn
    wrapped = []
    fake = types.SimpleNamespace(GPU=lambda f: wrapped.append(f) or (lambda: 2))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert on_gpu(fn)() == 2 and wrapped == [fn]


def test_history_chart_marks_whole_run_numbers():
    from clipdemo.plots import history_chart

    rows = [[number] + [None] * 9 + [60.0 + number, 80.0 + number] for number in (1, 2)]
    figure = history_chart(rows)
    figure.canvas.draw()
    ticks = [t for t in figure.axes[0].get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
