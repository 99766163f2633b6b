"""PickScore beside CLIPScore, and moderation (safety checker and concept check), with tiny models."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipdemo import GenerationRequest, ModelLoadError, Studio, resolve_settings
from tests.multilingual_models import image_embedding, save_tiny_pickscore, save_tiny_safety_checker

REQUEST = GenerationRequest("a red circle", n=4, steps=1, width=64, height=64, seed=12)


def sharpness(image) -> float:
    """Variance of the Laplacian of the grey image below the flag banner (moderation.blur draws it on top)."""
    grey = np.asarray(image.convert("L"), dtype=float)[max(10, image.size[1] // 8) + 2:]
    laplacian = (4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:])
    return float(laplacian.var())


def assert_blurred(shown, original) -> None:
    """`shown` is `original` blurred: not merely marked by the banner, and not a black square."""
    assert shown.size == original.size and np.asarray(shown).max() > 0
    assert sharpness(shown) < sharpness(original) / 20, (sharpness(shown), sharpness(original))


@pytest.fixture(scope="module")
def pickscore_dir(tmp_path_factory):
    return save_tiny_pickscore(tmp_path_factory.mktemp("pickscore"))


def make(tiny_sd_dir, tiny_clip_dir, **kwargs):
    settings = dict(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32", decoder="full")
    settings.setdefault("pick_model", "none")
    settings.update(kwargs)
    return Studio(resolve_settings(**settings))


def test_pickscore_is_a_second_score_and_can_sort(tiny_sd_dir, tiny_clip_dir, pickscore_dir):
    by_clip = make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), moderation="off",
                   pickscore="on").generate(REQUEST)
    by_pick = make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), moderation="off",
                   rank_by="pickscore").generate(REQUEST)
    for result, key in ((by_clip, "clip"), (by_pick, "pickscore")):
        assert all(set(item.scores) == {"clip", "pickscore"} for item in result.images)
        values = [item.scores[key] for item in result.images]
        assert values == sorted(values, reverse=True) and result.rank_by == key
        assert "Pick " in result.images[0].caption() and "CLIP " in result.images[0].caption()

    from clipdemo.ui.formatting import ranking_table

    table = ranking_table(by_pick)  # the page's ranking table shows both scores
    assert table["headers"] == ["rank", "seed", "CLIP score", "PickScore", "moderation"]
    assert [row[2:4] for row in table["data"]] == [[round(item.scores[k], 3) for k in ("clip", "pickscore")]
                                                   for item in by_pick.images]
    # PickScore = logit_scale * cos, computed independently with transformers.
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(pickscore_dir), CLIPProcessor.from_pretrained(pickscore_dir)
    with torch.no_grad():
        out = model(**processor(text=["a red circle"], images=[i.image for i in by_pick.images], return_tensors="pt",
                                padding=True))
    expected = (model.logit_scale.exp() * out.image_embeds @ out.text_embeds.T)[:, 0]
    np.testing.assert_allclose([i.scores["pickscore"] for i in by_pick.images], expected.detach().numpy(), atol=1e-3)


def test_pickscore_is_off_on_the_cpu_by_default_and_one_switch_away(tiny_sd_dir, tiny_clip_dir, pickscore_dir):
    from clipdemo.loading import MODELS

    MODELS.clear()
    studio = make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), moderation="off")
    assert not studio.pickscore_default
    by_default = studio.generate(REQUEST)
    assert all(set(item.scores) == {"clip"} for item in by_default.images)
    assert str(pickscore_dir) not in MODELS.weights  # not even loaded: helpers load only when used
    asked = studio.generate(REQUEST, pickscore=True)  # the page's PickScore box
    assert all(set(item.scores) == {"clip", "pickscore"} for item in asked.images)
    assert asked.models["pickscore"]["weights"] == "safetensors"
    # auto means on with a GPU (where ViT-H/14 is cheap), and off overrides everything.
    assert make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), device="cuda").pickscore_default
    assert not make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), device="cuda",
                    pickscore="off").pickscore_default
    assert make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), pickscore="on").pickscore_default


def test_missing_pickscore_ranks_by_clip_with_notice(tiny_sd_dir, tiny_clip_dir):
    result = make(tiny_sd_dir, tiny_clip_dir, pick_model=None, moderation="off",  # the Hub default: offline here
                  rank_by="pickscore").generate(REQUEST)
    assert result.rank_by == "clip" and all(set(i.scores) == {"clip"} for i in result.images)
    assert any("PickScore is unavailable" in n for n in result.notices)


def test_safety_checker_blurs_the_flagged_image_and_threshold_matters(tiny_sd_dir, tiny_clip_dir, tmp_path):
    plain = make(tiny_sd_dir, tiny_clip_dir, moderation="off").generate(REQUEST)
    probe_dir = save_tiny_safety_checker(tmp_path / "probe")
    embeds = [image_embedding(probe_dir, item.image) for item in plain.images]
    target = embeds[0]  # flag the best-ranked image only
    others = max(float(target @ e) for e in embeds[1:])
    assert others < 0.9999, "tiny model gave identical embeddings; cannot separate images"
    weight = (1.0 + others) / 2  # between the target (cos 1) and the closest other image
    concepts = torch.ones(17, target.numel())
    concepts[0] = target
    weights = torch.full((17,), 2.0)
    weights[0] = weight
    checker_dir = save_tiny_safety_checker(tmp_path / "checker", concept_embeddings=concepts, thresholds=weights)

    result = make(tiny_sd_dir, tiny_clip_dir, moderation="on", safety_model=str(checker_dir)).generate(
        REQUEST, out_dir=tmp_path / "run")  # PNGs compressed while scoring; the flagged one again once blurred
    flagged = [item for item in result.images if item.moderation["flagged"]]
    assert [item.seed for item in flagged] == [plain.images[0].seed]
    assert_blurred(flagged[0].image, plain.images[0].image)
    unflagged = {item.seed: item.image.tobytes() for item in result.images if not item.moderation["flagged"]}
    assert unflagged == {item.seed: item.image.tobytes() for item in plain.images[1:]}  # the others as generated
    assert any("flagged" in n and "blurred" in n for n in result.notices)
    assert "flagged" in flagged[0].caption()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [e["moderation"]["flagged"] for e in manifest["images"]].count(True) == 1
    saved = next(e["file"] for e in manifest["images"] if e["moderation"]["flagged"])
    assert Image.open(tmp_path / "run" / saved).tobytes() == flagged[0].image.tobytes()  # the blurred one on disk

    # A stricter threshold flags more; a laxer one flags nothing.
    strict = make(tiny_sd_dir, tiny_clip_dir, safety_model=str(checker_dir), moderation_threshold=-2.0).generate(REQUEST)
    lax = make(tiny_sd_dir, tiny_clip_dir, safety_model=str(checker_dir), moderation_threshold=0.5).generate(REQUEST)
    assert sum(i.moderation["flagged"] for i in strict.images) == 4
    assert sum(i.moderation["flagged"] for i in lax.images) == 0


def test_moderation_modes_without_a_checker(tiny_sd_dir, tiny_clip_dir):
    from dataclasses import replace

    def unreachable(moderation):  # a preset's checker (not one the user named) that cannot load offline
        studio = make(tiny_sd_dir, tiny_clip_dir, moderation=moderation)
        studio.settings = replace(studio.settings, safety_model="someone/unreachable-safety-checker")
        return studio

    auto = unreachable("auto").generate(REQUEST)
    assert any("Moderation unavailable" in n for n in auto.notices)
    assert all(i.moderation is None for i in auto.images)
    with pytest.raises(ModelLoadError, match="no image is shown"):
        unreachable("on").generate(REQUEST)
    off = make(tiny_sd_dir, tiny_clip_dir, moderation="off").generate(REQUEST)
    assert not any("Moderation" in n for n in off.notices)


def test_demo_concept_check_flags_a_purple_star():
    from demo_world import world

    studio = Studio(resolve_settings(preset="demo"))
    rng = np.random.default_rng(3)
    star, circle = world.render("purple", "star", rng)[0], world.render("red", "circle", rng)[0]
    verdicts, checker = studio.moderate([star, circle])
    assert [v.flagged for v in verdicts] == [True, False]
    assert "purple star" in verdicts[0].scores and "concepts" in checker


def test_demo_moderation_blurs_its_concept_but_not_the_examples():
    """The demo concept must not fire on the page's own examples: a red-cross concept blurred most
    images of "a red circle", because the demo CLIP reads the demo SD's blobs as crosses. It fires on the
    generator's clearest purple stars (about one candidate in four)."""
    studio = Studio(resolve_settings(preset="demo"))
    defaults = studio.settings.defaults

    def flagged(prompt: str) -> int:
        return sum(item.moderation["flagged"]
                   for seed in (0, 1)
                   for item in studio.generate(GenerationRequest(prompt, n=4, steps=defaults.steps,
                                                                 guidance=defaults.guidance, width=64, height=64,
                                                                 seed=seed)).images)

    for example in ("a red circle", "红色的圆形", "a dog wearing glasses", "一只戴眼镜的狗"):
        assert flagged(example) == 0, example
    assert flagged("a purple star") >= 1


def test_moderate_endpoint(tiny_sd_dir, tiny_clip_dir, tmp_path):
    from gradio_client import Client, handle_file

    from demo_world import world
    from clipdemo.ui import build_app

    from tests.servers import launch_local

    demo = build_app(Studio(resolve_settings(preset="demo")))
    demo.queue(max_size=4)
    url = launch_local(demo)
    try:
        rng = np.random.default_rng(3)
        star, circle = world.render("purple", "star", rng)[0], world.render("red", "circle", rng)[0]
        star.save(tmp_path / "star.png")
        circle.save(tmp_path / "circle.png")
        verdict, table, gallery = Client(url, verbose=False).predict(
            [handle_file(str(tmp_path / "star.png")), handle_file(str(tmp_path / "circle.png"))], api_name="/moderate")
        assert "flagged" in verdict and any(row[1] == "purple star" and row[3] for row in table["data"])
        assert [item["caption"] for item in gallery] == ["star.png: flagged", "circle.png: ok"]
        # The images as the page shows them: the flagged one blurred, the other exactly as uploaded.
        assert_blurred(Image.open(gallery[0]["image"]).convert("RGB"), star)
        assert np.array_equal(np.asarray(Image.open(gallery[1]["image"]).convert("RGB")), np.asarray(circle))
    finally:
        demo.close()


def test_the_page_names_each_helper_and_its_pickscore_box_adds_the_score(tiny_sd_dir, tiny_clip_dir, pickscore_dir):
    from gradio_client import Client

    from clipdemo.ui import build_app
    from tests.servers import launch_local

    studio = make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), moderation="off")
    helpers = studio.helpers()
    assert helpers["PickScore"].startswith("off on the CPU, one click away")
    assert helpers["moderation"].startswith("off") and helpers["decoder"] == "the pipeline's VAE"
    assert "load with the first Chinese text" in helpers["Chinese"]
    gpu = make(tiny_sd_dir, tiny_clip_dir, pick_model=str(pickscore_dir), device="cuda").helpers()
    assert gpu["PickScore"].startswith("on") and gpu["moderation"] == ("auto: CompVis/stable-diffusion-safety-checker, "
                                                                       "loads with the first generate")
    # On the CPU the default checker is the concept check over the loaded CLIP; CompVis' stays one flag away.
    assert make(tiny_sd_dir, tiny_clip_dir).helpers()["moderation"].startswith("auto: a CLIP concept check")
    named = make(tiny_sd_dir, tiny_clip_dir, safety_model="CompVis/stable-diffusion-safety-checker")
    assert named.settings.safety_model == "CompVis/stable-diffusion-safety-checker"
    demo = build_app(studio)
    panel = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "details-text").value
    assert all(state in panel for state in helpers.values())
    url = launch_local(demo.queue(max_size=8))
    try:
        client = Client(url, verbose=False)
        small = dict(num_candidates=2, width=64, height=64)
        _, table, info, _ = client.predict("a red circle", **small, api_name="/generate")  # the CPU default: no PickScore
        assert "PickScore" not in table["headers"] and "pickscore" not in info
        _, table, info, _ = client.predict("a red circle", **small, pickscore=True, api_name="/generate")  # ticked
        assert table["headers"][:4] == ["rank", "seed", "CLIP score", "PickScore"]
        assert all(row[3] is not None for row in table["data"])
        assert f"pickscore {pickscore_dir.name} (safetensors)" in info
    finally:
        demo.close()


def test_generate_endpoint_serves_flagged_images_blurred(tiny_sd_dir, tiny_clip_dir, tmp_path):
    import re

    from gradio_client import Client

    from clipdemo.ui import build_app
    from tests.servers import launch_local

    plain = make(tiny_sd_dir, tiny_clip_dir, moderation="off").generate(
        GenerationRequest("a red circle", "", 2, 1, 0.0, 64, 64, 12))
    # With diffusers' default concepts no score is above zero, so a threshold below zero flags every image.
    checker_dir = save_tiny_safety_checker(tmp_path / "checker")
    demo = build_app(make(tiny_sd_dir, tiny_clip_dir, moderation="on", safety_model=str(checker_dir),
                          moderation_threshold=-2.0))
    url = launch_local(demo.queue(max_size=4))
    try:
        gallery, table, _, _ = Client(url, verbose=False).predict(
            "a red circle", "", 2, 1, 0.0, 64, 64, "12", api_name="/generate")
    finally:
        demo.close()
    assert [row[-1] for row in table["data"]] == ["flagged, blurred"] * 2
    originals = {item.seed: item.image for item in plain.images}
    for item in gallery:
        seed = int(re.search(r"seed (\d+)", item["caption"]).group(1))
        assert_blurred(Image.open(item["image"]).convert("RGB"), originals.pop(seed))
    assert not originals
