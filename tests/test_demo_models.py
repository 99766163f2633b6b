"""End-to-end checks with the trained demo models shipped in assets/models (no network)."""

import json

import pytest

from clipdemo import Studio, resolve_settings
from demo_world import world
from clipdemo.cli import main
from clipdemo.config import DEMO_MODELS_DIR, PRESETS
from demo_world import animals
from demo_world.quality import ANIMAL_GATES, HELD_OUT_SEED, animal_rates, match_rates, rates_of

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
    assert total <= 60 * 1024 * 1024


@pytest.fixture(scope="module")
def quality():
    """The gates as recorded by scripts/quality_gates.py (the tests re-measure samples of them below)."""
    return json.loads((DEMO_MODELS_DIR / "QUALITY.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def judge():
    from demo_world.judge import Judge

    return Judge()


def test_recorded_zero_shot_gates(quality):
    assert quality["shapes"]["zero_shot_top1_zh"] >= 0.80
    for language in ("en", "zh"):
        assert quality["animals"][language]["zero_shot_top1"] >= ANIMAL_GATES["zero_shot_top1"], language


def test_recorded_english_shapes_zero_shot_gate(quality):
    assert quality["shapes"]["zero_shot_top1_en"] >= 0.90


def test_recorded_reranking_gates(quality):
    """Shapes: CLIP's top-1 of 4 shows the prompt's colour at least 85% of the time, and at least as often as a
    random candidate. Animals: the top-1 shows the asked animal (85%) and accessory (75%), in both languages."""
    for lang in ("en", "zh"):
        top1 = quality["shapes"][f"colour_match_top1_{lang}"]
        assert top1 >= 0.85 and top1 >= quality["shapes"][f"colour_match_random_{lang}"], lang
        rates = quality["animals"][lang]
        assert rates["top1_animal"] >= ANIMAL_GATES["top1_animal"], (lang, rates["top1_animal"])
        assert rates["top1_accessory"] >= ANIMAL_GATES["top1_accessory"], (lang, rates["top1_accessory"])
        assert rates["top1_both"] >= rates["random_both"], lang  # re-ranking never picks worse than chance
        assert rates == {**rates, **rates_of(rates["records"])}  # the fractions are the records' own


def test_recorded_rerank_gain_gate(quality):
    for lang in ("en", "zh"):
        rates = quality["animals"][lang]
        assert rates["top1_both"] - rates["random_both"] >= ANIMAL_GATES["rerank_gain_both"] - 1e-9, lang


def test_a_sample_of_the_animal_gates_judges_as_recorded(quality, judge):
    """Six prompts per language generated again and judged: the top-1's animal and accessory as recorded
    (a CPU with another dtype draws slightly other pixels, so most, not all, must agree)."""
    studio = Studio(resolve_settings(preset="demo", moderation="off"))
    agree = total = 0
    for language in ("en", "zh"):
        again = animal_rates(studio, judge, language, limit=6)["records"]
        recorded = quality["animals"][language]["records"][:6]
        assert [(r["prompt"], r["seed"]) for r in again] == [(r["prompt"], r["seed"]) for r in recorded]
        agree += sum(a["judged"][0] == r["judged"][0] for a, r in zip(again, recorded))
        total += len(again)
    assert agree >= total - 3, (agree, total)


def test_the_judge_agrees_with_the_renderer(judge):
    """At least 95% of held-out renders named right on all four heads: animal, accessory and both colours."""
    samples = animals.sample(HELD_OUT_SEED + 99, 300)
    verdicts = judge([s.image for s in samples])
    right = [(v.animal, v.accessory, v.colour, v.accessory_colour)
             == (s.scene.animal, s.scene.accessory, s.scene.colour, s.scene.accessory_colour or animals.NONE)
             for v, s in zip(verdicts, samples)]
    assert sum(right) / len(right) >= 0.95


@pytest.mark.parametrize("prompt", ["a dog wearing glasses", "一只戴眼镜的狗"])
def test_cli_generate_draws_a_dog_wearing_glasses(prompt, judge, tmp_path, capsys):
    """The mission's own example, offline: the re-ranked top-1 is a dog wearing glasses, as the judge sees it."""
    assert main(["generate", prompt, "--preset", "demo", "--seed", "11", "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    from PIL import Image

    verdict = judge([Image.open(tmp_path / data["images"][0]["file"])])[0]
    assert (verdict.animal, verdict.accessory) == ("dog", "glasses"), verdict


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
    expected = quality["shapes"][f"zero_shot_top1_{language}"]
    assert abs(report["top1"] - expected) <= 1 / 300  # same images and model; batching may move one image


@pytest.mark.parametrize("prompt", ["a red circle", "红色的圆形"])
def test_cli_generate_with_preset_demo_and_no_other_flag(prompt, tmp_path, capsys):
    """The issue's "done when": the prompt with --preset gives ranked images whose top-1 is red. Seed 0
    gave four yellow or orange candidates before the zero-terminal-SNR UNet; a seed only makes it repeatable."""
    assert main(["generate", prompt, "--preset", "demo", "--seed", "0", "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["width"], data["height"], data["steps"], data["guidance"]) == (64, 64, 40, 2.0)
    from PIL import Image

    top = Image.open(tmp_path / data["images"][0]["file"])
    assert world.judge_colour(top) == "red"


def test_zero_shot_names_rendered_green_stars(demo):
    """Nine in ten (the shapes gate is 90%)."""
    images = [world.render("green", "star", __import__("numpy").random.default_rng(k))[0] for k in range(10)]
    labels = [world.class_name(c, s) for c, s in world.CLASSES]
    assert sum(r.top.label == "green star" for r in demo.classify(images, labels).images) >= 9
    labels_zh = [world.class_name(c, s, "zh") for c, s in world.CLASSES]
    named = demo.classify(images, labels_zh, "一张{}的照片").images
    assert sum(r.top.label == "绿色的星形" for r in named) >= 9


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
    import sys

    sys.modules[spec.name] = training  # its dataclasses look their module up
    spec.loader.exec_module(training)
    train, sampler = training.noise_schedules(zero_snr=True)
    plain, _ = training.noise_schedules(zero_snr=False)
    assert float(train.alphas_cumprod[-1]) == 0.0  # the last step keeps nothing of the image
    assert float(plain.alphas_cumprod[-1].sqrt()) > 0.06  # SD's usual schedule keeps ~7% of it

    shipped = DPMSolverMultistepScheduler.from_pretrained(PRESETS["demo"].sd_model, subfolder="scheduler")
    for key in ("prediction_type", "rescale_betas_zero_snr", "timestep_spacing", "beta_schedule"):
        assert shipped.config[key] == sampler.config[key], key


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_animal_zero_shot_gate_measured_again(quality, language):
    """The same 300 held-out renders, the same CLIP in fp32 on every CPU: the recorded top-1 again."""
    from demo_world.quality import animal_zero_shot

    again = animal_zero_shot(Studio(resolve_settings(preset="demo")), language)
    assert abs(again - quality["animals"][language]["zero_shot_top1"]) <= 1 / 300


def test_the_models_readme_table_is_the_recorded_quality(quality):
    """The quality table in assets/models/README.md is generated from QUALITY.json (quality_gates.py --table)."""
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("quality_gates", root / "scripts" / "quality_gates.py")
    gates = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gates
    spec.loader.exec_module(gates)
    readme = (root / "assets" / "models" / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- quality table: python scripts/quality_gates.py --table -->\n", 1)[1]
    assert block.split("\n<!-- end of quality table -->", 1)[0] == gates.table(quality)
