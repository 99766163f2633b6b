"""Chinese and bilingual scoring and generation, with tiny models of each architecture (offline)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipdemo import GenerationRequest, ModelLoadError, Studio, resolve_settings
from clipdemo.cli import main
from clipdemo.text import has_cjk
from tests.multilingual_models import save_tiny_altclip, save_tiny_chinese_clip, save_tiny_marian
from tests.tiny_models import save_tiny_sd

ZH_PROMPT = "一只戴眼镜的狗"
REQUEST = dict(n=2, steps=1, width=64, height=64, seed=3)


@pytest.fixture(scope="module")
def chinese_clip_dir(tmp_path_factory):
    return save_tiny_chinese_clip(tmp_path_factory.mktemp("chinese-clip"))


@pytest.fixture(scope="module")
def altclip_dir(tmp_path_factory):
    """Random weights put every image-text cosine near -0.39, which CLIPScore clamps to 0 whatever the text; with
    the text projection negated the cosines are positive, so a score tells one text from another."""
    from transformers import AltCLIPModel

    folder = save_tiny_altclip(tmp_path_factory.mktemp("altclip"))
    model = AltCLIPModel.from_pretrained(folder)
    with torch.no_grad():
        model.text_projection.weight.neg_()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    return save_tiny_marian(tmp_path_factory.mktemp("marian"))


@pytest.fixture(scope="module")
def zh_sd_dir(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("zh-sd"), seed=1)


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


@pytest.mark.parametrize("text, expected", [("a dog", False), ("一只狗", True), ("dog 狗", True), ("犬の写真", True),
                                            ("강아지", True), ("café, naïve", False), ("", False)])
def test_language_detection(text, expected):
    assert has_cjk(text) is expected


def make(tiny_sd_dir, tiny_clip_dir, **kwargs):
    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                   pick_model="none", moderation="off", decoder="full", **kwargs))


@pytest.mark.parametrize("which", ["chinese", "altclip"])
def test_auto_scorer_routes_chinese_text_to_the_chinese_model(which, tiny_sd_dir, tiny_clip_dir, request):
    zh_dir = request.getfixturevalue(f"{which}_clip_dir" if which == "chinese" else "altclip_dir")
    studio = make(tiny_sd_dir, tiny_clip_dir, zh_clip_model=str(zh_dir))
    zh = studio.classify(images(), "猫, 狗, 一只戴眼镜的狗")
    en = studio.classify(images(), "cat, dog")
    assert zh.scorer == str(zh_dir) and en.scorer == str(tiny_clip_dir)
    assert zh.template == "一张{}的照片。" and en.template == "a photo of a {}."
    assert all(abs(sum(p.prob for p in r.predictions) - 1) < 1e-5 for r in zh.images)
    forced = studio.classify(images(), "猫, 狗", scorer="english")
    assert forced.scorer == str(tiny_clip_dir) and "English CLIP" in forced.notices[0]
    sim = studio.similarity(images(), ["一只狗", "a dog"])
    assert sim.scorer == str(zh_dir) and sim.cosine.shape == (2, 2)


def test_chinese_scorer_that_cannot_load_falls_back_with_notice(tiny_sd_dir, tiny_clip_dir):
    studio = make(tiny_sd_dir, tiny_clip_dir)  # default Chinese-CLIP hub id: offline, cannot load
    result = studio.classify(images(), "猫, 狗")
    assert result.scorer == str(tiny_clip_dir)
    assert "Chinese-capable scorer could not be loaded" in result.notices[0]


def test_named_chinese_scorer_that_cannot_load_is_an_error(tiny_sd_dir, tiny_clip_dir, tmp_path):
    studio = make(tiny_sd_dir, tiny_clip_dir, zh_clip_model=str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="--zh-clip-model"):
        studio.classify(images(), "猫, 狗")


def test_native_chinese_pipeline_generates_and_ranks_against_typed_prompt(tiny_sd_dir, tiny_clip_dir, zh_sd_dir,
                                                                         chinese_clip_dir):
    studio = make(tiny_sd_dir, tiny_clip_dir, zh_clip_model=str(chinese_clip_dir), zh_mode="native",
                  zh_sd_model=str(zh_sd_dir))
    result = studio.generate(GenerationRequest(ZH_PROMPT, **REQUEST))
    assert result.sd_model == str(zh_sd_dir) and result.clip_model == str(chinese_clip_dir)
    assert result.translated_prompt is None and len(result.images) == 2
    zh_scorer, _ = studio.scorer_for([ZH_PROMPT])
    expected = zh_scorer.clip_scores([item.image for item in result.images], ZH_PROMPT)
    np.testing.assert_allclose([item.clip_score for item in result.images], expected, atol=1e-4)


def test_translate_mode_shows_translation_and_ranks_against_typed_prompt(tiny_sd_dir, tiny_clip_dir, marian_dir,
                                                                         altclip_dir, tmp_path):
    """The pipeline receives the translation (a spy around its real encode_prompt records it), the candidates
    are ranked by AltCLIP against the prompt as typed (transformers' AltCLIPModel, computed here), and the
    manifest and each PNG name both prompts."""
    from transformers import AltCLIPModel, AltCLIPProcessor, AutoModelForSeq2SeqLM, AutoTokenizer

    from clipdemo.provenance import read_metadata
    from clipdemo.generation.output import manifest, write_run

    studio = make(tiny_sd_dir, tiny_clip_dir, zh_clip_model=str(altclip_dir), zh_mode="translate",
                  translator=str(marian_dir))
    pipe = studio.pipeline()
    received = []
    real_encode = pipe.encode_prompt
    pipe.encode_prompt = lambda prompt, *args, **kwargs: received.append(prompt) or real_encode(prompt, *args, **kwargs)
    try:
        result = studio.generate(GenerationRequest(ZH_PROMPT, **REQUEST))
    finally:
        del pipe.encode_prompt
    # The translation is the translator's own output (random weights: gibberish, but real)...
    model, tok = AutoModelForSeq2SeqLM.from_pretrained(marian_dir), AutoTokenizer.from_pretrained(marian_dir)
    limit = min(96, model.config.max_position_embeddings - 2)
    out = model.generate(**tok([ZH_PROMPT], return_tensors="pt"), max_new_tokens=limit, num_beams=4)
    translation = tok.batch_decode(out, skip_special_tokens=True)[0].strip()
    assert result.translated_prompt == translation and translation != ZH_PROMPT
    # ...and it is what the pipeline was given; the typed prompt never reached it.
    texts = [p for p in received if p is not None]  # None: the pipeline's own call with the embeddings given
    assert texts and all(p == translation for p in texts) and ZH_PROMPT not in texts, received
    # Ranked by AltCLIP against the typed Chinese prompt, best first.
    assert result.sd_model == str(tiny_sd_dir) and result.clip_model == str(altclip_dir)
    alt, processor = AltCLIPModel.from_pretrained(altclip_dir).eval(), AltCLIPProcessor.from_pretrained(altclip_dir)
    with torch.no_grad():
        pictures = [item.image for item in result.images]
        image = alt.get_image_features(**processor(images=pictures, return_tensors="pt")).pooler_output
        text = alt.get_text_features(**processor(text=[ZH_PROMPT, translation], return_tensors="pt",
                                                 padding=True)).pooler_output
    cosine = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    expected, against_translation = (100 * cosine.clamp(min=0)).T.tolist()
    got = [item.scores["clip"] for item in result.images]
    assert got == pytest.approx(expected, abs=2e-3)  # float rounding
    assert got != pytest.approx(against_translation, abs=2e-3)  # the check tells the two prompts apart
    assert expected == sorted(expected, reverse=True)
    # The run's files say both: the prompt as typed and the one the pipeline drew.
    write_run(result, tmp_path)
    assert (manifest(result)["prompt"], manifest(result)["translated_prompt"]) == (ZH_PROMPT, translation)
    for item in result.images:
        meta = read_metadata(next(tmp_path.glob(f"rank{item.rank:02d}_*.png")))
        assert (meta["prompt"], meta["translated_prompt"]) == (ZH_PROMPT, translation)


def test_missing_translator_sends_prompt_untranslated_with_notice(tiny_sd_dir, tiny_clip_dir, tmp_path):
    studio = make(tiny_sd_dir, tiny_clip_dir, zh_mode="translate", translator=str(tmp_path / "no-translator"))
    result = studio.generate(GenerationRequest(ZH_PROMPT, **REQUEST))
    assert result.translated_prompt is None
    assert any("untranslated" in n for n in result.notices)


def test_cli_json_names_the_scorer(tiny_clip_dir, chinese_clip_dir, tmp_path, capsys):
    path = tmp_path / "a.png"
    images()[0].save(path)
    code = main(["classify", str(path), "--labels", "猫,狗", "--json", "--clip-model", str(tiny_clip_dir),
                 "--zh-clip-model", str(chinese_clip_dir)])
    assert code == 0
    assert json.loads(capsys.readouterr().out)[0]["scorer"] == str(chinese_clip_dir)
    main(["similarity", str(path), "--texts", "a dog", "--json", "--clip-model", str(tiny_clip_dir)])
    assert json.loads(capsys.readouterr().out)["scorer"] == str(tiny_clip_dir)


def test_cjk_text_renders_in_server_side_plots():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from clipdemo.plots import cjk_font, similarity_heatmap

    font = cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    fig = similarity_heatmap(np.array([[0.1, 0.2]]), ["图片.png"], ["一只戴眼镜的狗", "a dog"])
    label = fig.axes[0].get_xticklabels()[0]
    path = font_manager.findfont(label.get_fontproperties(), fallback_to_default=False)
    glyphs = FT2Font(path)
    assert all(glyphs.get_char_index(ord(ch)) != 0 for ch in "一只戴眼镜的狗")  # real glyphs, not boxes
