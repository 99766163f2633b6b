"""Compare tab core, session history, PNG provenance, the download zip, and the Space front matter."""

import json
import math
import re
import statistics
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from clipdemo import GenerationRequest, Studio, resolve_settings
from clipdemo.compare import Setting
from clipdemo.history import MAX_RUNS, append, next_number, rows, run_from_result
from clipdemo.provenance import read_metadata

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


@contextmanager
def broken_images(studio, broken: set[int]):
    """NaN from the real VAE decoder for these images, counted across pipeline calls (A's first, then B's)."""
    decoded = [0]

    def hook(module, args, output):
        first = decoded[0]
        decoded[0] += output.shape[0]
        output = output.clone()
        for i in range(output.shape[0]):
            if first + i in broken:
                output[i] = float("nan")
        return output

    handle = studio.pipeline().vae.decoder.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_a_broken_candidate_is_left_out_of_the_stats_and_the_wins(quiet_studio, tiny_sd_dir):
    from clipdemo.ui.formatting import compare_rows, compare_summary

    a, b = Setting(str(tiny_sd_dir), 1, 0.0), Setting(str(tiny_sd_dir), 2, 0.0)
    with broken_images(quiet_studio, {0}):  # A's image of the first seed
        result = quiet_studio.compare("a red circle", 30, 3, a, b, width=64, height=64)
    assert [i.problem is not None for i in sorted(result.a.images, key=lambda i: i.seed)] == [True, False, False]
    sa, sb = result.scores(result.a), result.scores(result.b)
    assert math.isnan(sa[0]) and not any(math.isnan(x) for x in sa[1:] + sb)
    stats_a, stats_b = result.stats
    assert stats_a.mean == pytest.approx(statistics.fmean(sa[1:])) and stats_a.max == max(sa[1:])
    assert stats_a.spread == pytest.approx(statistics.pstdev(sa[1:])) and stats_b.mean == pytest.approx(
        statistics.fmean(sb))
    assert (stats_a.broken, stats_b.broken) == (1, 0)
    a_wins, b_wins, ties = result.wins
    assert (a_wins, b_wins) == (sum(x > y for x, y in zip(sa[1:], sb[1:])), sum(y > x for x, y in zip(sa[1:], sb[1:])))
    assert a_wins + b_wins + ties == 2 and result.unscored == [30]  # seed 30 is neither a win nor a tie
    summary = compare_summary(result)
    assert "nan" not in summary.lower().replace("nan values", "")
    assert f"| mean | {stats_a.mean:.3f} | {stats_b.mean:.3f} |" in summary
    assert "not compared: seed 30 (A: the model produced NaN values" in summary
    assert f"ties: {ties}" in summary
    assert compare_rows(result)[0] == [30, None, round(sb[0], 3)]


def test_a_side_with_no_usable_image_says_so(quiet_studio, tiny_sd_dir):
    from clipdemo.ui.formatting import compare_summary

    a, b = Setting(str(tiny_sd_dir), 1, 0.0), Setting(str(tiny_sd_dir), 2, 0.0)
    with broken_images(quiet_studio, {2, 3}):  # every image of B
        result = quiet_studio.compare("a red circle", 30, 2, a, b, width=64, height=64)
    stats_a, stats_b = result.stats
    assert stats_b.scores == [] and stats_b.mean is None and stats_b.broken == 2
    assert result.wins == (0, 0, 0) and result.unscored == [30, 31]
    summary = compare_summary(result)
    assert "No image of B could be scored" in summary and "NaN values" in summary
    assert "wins" not in summary and "draw" not in summary and "nan |" not in summary.lower()


def test_compare_by_pickscore_reports_each_models_own_scores(tiny_sd_dir, tiny_clip_dir, tmp_path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from tests.multilingual_models import save_tiny_pickscore

    pick_dir = save_tiny_pickscore(tmp_path / "pickscore")
    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                     pick_model=str(pick_dir), rank_by="pickscore", moderation="off", decoder="full"))
    result = studio.compare("a red circle", 50, 2, Setting(str(tiny_sd_dir), 1, 0.0), Setting(str(tiny_sd_dir), 2, 0.0),
                            width=64, height=64)
    assert result.key == "pickscore"

    def cosines(folder, images):
        model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
        with torch.no_grad():
            out = model(**processor(text=["a red circle"], images=images, return_tensors="pt", padding=True))
        return model.logit_scale.exp().item(), (out.image_embeds @ out.text_embeds.T)[:, 0]

    for side in (result.a, result.b):
        images = [next(i for i in side.images if i.seed == s).image for s in result.seeds]
        scale, cos = cosines(pick_dir, images)
        np.testing.assert_allclose(result.scores(side), (scale * cos).numpy(), atol=1e-3)
        _, cos = cosines(tiny_clip_dir, images)
        by_seed = {i.seed: i.scores["clip"] for i in side.images}
        np.testing.assert_allclose([by_seed[s] for s in result.seeds], (100 * cos.clamp(min=0)).numpy(), atol=1e-3)
    assert result.scores(result.a) != result.scores(result.b)


def test_png_metadata_says_what_was_asked_and_zip_holds_the_run(tiny_sd_dir, tiny_clip_dir, tmp_path):
    """Read back with Pillow alone, on a non-square run with moderation on: every field equals what was asked
    (written out here), the scores equal an independent CLIP on the PNG's own pixels."""
    from PIL import Image

    from tests.clip_reference import clip_score, reference_cosine

    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                     pick_model="none", moderation="on", safety_model="concepts", decoder="full"))
    result = studio.generate(GenerationRequest("a dog wearing glasses", "blurry", n=3, steps=2, guidance=2.5,
                                               width=96, height=64, seed=5),
                              out_dir=tmp_path / "run", archive=tmp_path / "all.zip")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    seen_seeds = []
    for entry in manifest["images"]:
        with Image.open(tmp_path / "run" / entry["file"]) as png:
            assert png.size == (96, 64)
            meta = json.loads(png.text["clipdemo"])
            assert json.loads(png.text["parameters"]) == meta  # the mirror other tools read
            pixels = png.convert("RGB")
        asked = {"prompt": "a dog wearing glasses", "negative_prompt": "blurry", "steps": 2, "guidance": 2.5,
                 "width": 96, "height": 64, "rank_by": "clip", "translated_prompt": None, "scorers": ["clip"],
                 "sd_model": str(tiny_sd_dir), "clip_model": str(tiny_clip_dir), "rank": entry["rank"]}
        assert {k: meta[k] for k in asked} == asked
        seen_seeds.append(meta["seed"])
        expected = clip_score(reference_cosine(tiny_clip_dir, [pixels], ["a dog wearing glasses"])[0])[0, 0]
        assert meta["scores"]["clip"] == pytest.approx(expected, abs=0.05) == entry["clip_score"]
        verdict = meta["moderation"]  # the concept check looked at every image and said so
        assert verdict == entry["moderation"] and "concept" in verdict["checker"]
        assert verdict["flagged"] == (verdict["top_score"] > verdict["threshold"])
    assert sorted(seen_seeds) == [5, 6, 7]
    assert result.files.archive == tmp_path / "all.zip"
    with zipfile.ZipFile(result.files.archive) as zf:
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
    pinned = [l for l in (ROOT / "requirements.txt").read_text().splitlines()
              if re.match(r"gradio(\[[\w,]+\])?==", l)][0]  # gradio or gradio[extras]
    assert pinned.split("==")[1].split()[0].rstrip(".*") in str(front["sdk_version"])
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
