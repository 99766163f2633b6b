"""End-to-end checks with the trained demo models shipped in assets/models (no network)."""

import json

import pytest

from clipdemo import Studio, resolve_settings
from demo_world import world
from clipdemo.cli import main
from clipdemo.config import PRESETS
from demo_world.quality import HELD_OUT_SEED, match_rates, measure

NO_GUIDANCE_STEPS = 20


@pytest.fixture(scope="module")
def demo():
    return Studio(resolve_settings(preset="demo"))


def test_demo_models_are_small_safetensors():
    from pathlib import Path

    total = 0
    for folder in (PRESETS["demo"].sd_model, PRESETS["demo"].clip_model):
        files = [p for p in Path(folder).rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt", ".pkl")]
        assert any(p.suffix == ".safetensors" for p in files)
        total += sum(p.stat().st_size for p in files)
    assert total <= 50 * 1024 * 1024


@pytest.fixture(scope="module")
def quality():
    # Moderation off: the demo preset blurs purple stars on purpose, and the judges should see what the
    # generator drew (quality_gates.py measures the same way).
    return measure(Studio(resolve_settings(preset="demo", moderation="off")), n_images=300, prompts_per_class=1)


def test_zero_shot_gates(quality):
    assert quality.zero_shot_top1_en >= 0.90
    assert quality.zero_shot_top1_zh >= 0.80


def test_reranking_gate(quality):
    """Issue #3 at the preset's defaults: CLIP's top-1 of 4 shows the prompt's colour at least 85% of the
    time, and at least as often as a random candidate (the generator alone already gets ~99% right)."""
    for lang in ("en", "zh"):
        top1 = getattr(quality, f"colour_match_top1_{lang}")
        rand = getattr(quality, f"colour_match_random_{lang}")
        assert top1 >= 0.85 and top1 >= rand, (lang, top1, rand)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_reranking_beats_a_random_candidate_when_the_generator_misses(language):
    """Without classifier-free guidance the demo generator misses more often, mostly on shape: there
    re-ranking shows what it buys, a top-1 that matches colour and shape more often than a random pick."""
    studio = Studio(resolve_settings(preset="demo", moderation="off"))
    rates = match_rates(studio, language, steps=NO_GUIDANCE_STEPS, guidance=1.0)
    assert rates.class_top1 > rates.class_random, rates
    assert rates.colour_top1 >= 0.85, rates


@pytest.mark.parametrize("language, template", [("en", "single"), ("zh", "一张{}的照片")])
def test_cli_eval_of_the_rendered_held_out_folder_reproduces_the_zero_shot_gate(quality, language, template,
                                                                                 tmp_path, capsys):
    """`clipdemo eval` on the same 300 held-out renders, written as class folders, gives the gate's top-1."""
    root = tmp_path / "shapes"
    labels = {}
    for i, item in enumerate(world.sample(HELD_OUT_SEED, 300)):
        name = f"{item.colour}_{item.shape}"
        (root / name).mkdir(parents=True, exist_ok=True)
        item.image.save(root / name / f"{i:03d}.png")
        labels[name] = world.class_name(item.colour, item.shape, language)
    (root / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")

    code = main(["eval", str(root), "--preset", "demo", "--templates", template, "--json",
                 "--out", str(tmp_path / "report")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["n_images"] == 300 and report["n_classes"] == 30
    expected = getattr(quality, f"zero_shot_top1_{language}")
    assert abs(report["top1"] - expected) <= 1 / 300  # same images and model; batching may move one image
    assert report["top1"] >= (0.90 if language == "en" else 0.80)


@pytest.mark.parametrize("prompt", ["a red circle", "红色的圆形"])
def test_cli_generate_with_preset_demo_and_no_other_flag(prompt, tmp_path, capsys):
    """The issue's "done when": the prompt with --preset gives ranked images whose top-1 is red. Seed 0
    gave four yellow or orange candidates before the zero-terminal-SNR UNet; a seed only makes it repeatable."""
    assert main(["generate", prompt, "--preset", "demo", "--seed", "0", "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["width"], data["height"], data["steps"], data["guidance"]) == (64, 64, 40, 4.0)
    from PIL import Image

    top = Image.open(tmp_path / data["images"][0]["file"])
    assert world.judge_colour(top) == "red"


def test_zero_shot_names_a_rendered_green_star(demo):
    image = world.render("green", "star", __import__("numpy").random.default_rng(5))[0]
    labels = [world.class_name(c, s) for c, s in world.CLASSES]
    assert demo.classify([image], labels).images[0].top.label == "green star"
    labels_zh = [world.class_name(c, s, "zh") for c, s in world.CLASSES]
    assert demo.classify([image], labels_zh, "一张{}的照片").images[0].top.label == "绿色的星形"


def test_unreachable_default_models_fall_back_to_demo_without_network_waits(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("offline fallback must not try the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", no_network)
    studio = Studio(resolve_settings(env={}))
    assert studio.settings.preset == "demo"
    assert studio.settings.sd_model == PRESETS["demo"].sd_model
    assert studio.notices and "demo" in studio.notices[0]


def test_unreachable_hub_falls_back_to_demo_in_the_cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "star.png"
    world.render("green", "star", __import__("numpy").random.default_rng(1))[0].save(image)
    labels = ",".join(world.class_name(c, s) for c, s in world.CLASSES)
    assert main(["classify", str(image), "--labels", labels, "--top-k", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "offline demo models" in captured.err
    assert json.loads(captured.out)[0]["predictions"][0]["label"] == "green star"


def test_named_model_never_falls_back(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    studio = Studio(resolve_settings(clip_model="openai/clip-vit-base-patch32", env={}))
    assert studio.settings.preset == "default" and not studio.notices
    image = tmp_path / "x.png"
    world.render("red", "circle", __import__("numpy").random.default_rng(1))[0].save(image)
    code = main(["classify", str(image), "--labels", "a,b", "--clip-model", "openai/clip-vit-base-patch32"])
    err = capsys.readouterr().err
    assert code == 2 and "openai/clip-vit-base-patch32" in err and "offline demo models" not in err


def test_the_shipped_sampler_uses_the_training_schedule():
    """The UNet was trained for v-prediction over a zero-terminal-SNR schedule (scripts/train_demo_models.py);
    a sampler with SD's usual settings would feed it inputs it never saw."""
    import importlib.util
    from pathlib import Path

    from diffusers import DPMSolverMultistepScheduler

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_models.py"
    spec = importlib.util.spec_from_file_location("train_demo_models", script)
    training = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(training)
    train, sampler = training.noise_schedules(zero_snr=True)
    plain, _ = training.noise_schedules(zero_snr=False)
    assert float(train.alphas_cumprod[-1]) == 0.0  # the last step keeps nothing of the image
    assert float(plain.alphas_cumprod[-1].sqrt()) > 0.06  # SD's usual schedule keeps ~7% of it

    shipped = DPMSolverMultistepScheduler.from_pretrained(PRESETS["demo"].sd_model, subfolder="scheduler")
    for key in ("prediction_type", "rescale_betas_zero_snr", "timestep_spacing", "beta_schedule"):
        assert shipped.config[key] == sampler.config[key], key
