"""clipdemo.describe: phrases ranked by CLIP for each image, and the prompt line composed from them.

The demo CLIP's descriptions are judged by the rendered shapes' known colour and shape; scores are
checked against transformers' CLIPModel directly (clip_reference).
"""

import json

import numpy as np
import pytest

from clipdemo import Studio, resolve_settings
from clipdemo.cli import main
from clipdemo.describe import BANKS, load_bank
from clipdemo.errors import InputError
from demo_world.world import CLASSES, COLOURS, SHAPES, render
from tests.clip_reference import reference_cosine


@pytest.fixture(scope="module")
def demo():
    return Studio(resolve_settings(preset="demo"))


def shapes_images(seed: int = 3):
    rng = np.random.default_rng(seed)
    return [(colour, shape, render(colour, shape, rng)[0]) for colour, shape in CLASSES]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_demo_names_colour_and_shape(demo, language):
    images = shapes_images()
    result = demo.describe([im for _, _, im in images], language=language, k=5)
    assert result.bank == "demo" and len(result.images) == 30  # the demo preset's bank
    named = 0
    for (colour, shape, _), d in zip(images, result.images):
        words = (colour, shape) if language == "en" else (COLOURS[colour][1], SHAPES[shape])
        named += any(all(w in p.text for w in words) for p in d.phrases[:3])
        assert all(w in d.prompt for w in words) or not all(w in d.phrases[0].text for w in words)
    assert named >= 27, named  # nine in ten of the shapes world's classes, named in the top three


def test_scores_are_cosines_of_an_independent_clip_best_first(studio, tiny_clip_dir, tmp_path):
    rng = np.random.default_rng(0)
    images = [render("red", "circle", rng)[0], render("blue", "star", rng)[0]]
    phrases = ["a dog", "a red circle", "watercolor", "a blue star", "soft light", "一只猫"]
    (tmp_path / "phrases.txt").write_text("\n".join(phrases) + "\n# a comment\n\n", encoding="utf-8")
    result = studio.describe(images, phrases=str(tmp_path / "phrases.txt"), k=4, names=["a.png", "b.png"])
    cosine, _ = reference_cosine(tiny_clip_dir, images, phrases)
    assert [d.image for d in result.images] == ["a.png", "b.png"] and result.bank == "phrases.txt"
    for row, d in zip(cosine, result.images):
        order = np.argsort(-row)[:4]
        assert [p.text for p in d.phrases] == [phrases[i] for i in order]
        np.testing.assert_allclose([p.score for p in d.phrases], row[order], atol=1e-5)
        # The prompt keeps a phrase only when it raises the similarity of the whole line.
        line, _ = reference_cosine(tiny_clip_dir, [images[result.images.index(d)]], [d.prompt, d.phrases[0].text])
        assert d.prompt.startswith(d.phrases[0].text) and line[0, 0] >= line[0, 1] - 1e-5


def test_builtin_bank_composes_subjects_and_a_prompt(studio, tiny_clip_dir):
    rng = np.random.default_rng(1)
    image = render("green", "square", rng)[0]
    result = studio.describe([image], phrases="builtin", k=100)
    bank = load_bank("builtin", "en")
    assert {"objects", "colours", "styles", "media", "lighting"} <= set(bank.categories)
    texts = [p.text for p in result.images[0].phrases]
    subjects = [p for p in result.images[0].phrases if p.category == "subject"]
    assert len(texts) == 100 and len(set(texts)) == 100 and subjects
    assert all(s.text.startswith(("a ", "an ")) for s in subjects) and not any(t.startswith("a o") for t in texts)
    prompt = result.images[0].prompt
    best_subject = max(subjects, key=lambda p: p.score).text
    assert prompt.startswith(best_subject)
    cosine, _ = reference_cosine(tiny_clip_dir, [image], [prompt, best_subject])
    assert cosine[0, 0] >= cosine[0, 1] - 1e-5


def test_chinese_bank_is_chinese():
    bank = load_bank("builtin", "zh")
    assert bank.language == "zh" and bank.compose == "{colour}的{object}"
    english = load_bank("builtin", "en")
    assert {c: len(p) for c, p in bank.categories.items()} == {c: len(p) for c, p in english.categories.items()}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in p) for _, p in bank.phrases)


@pytest.mark.parametrize("content, suffix, message", [
    ("", ".txt", "holds no phrases"),
    ("# only a comment\n", ".txt", "holds no phrases"),
    ("{not json", ".json", "not a phrase bank"),
    ('{"categories": {"objects": ["dog"]}}', ".json", "not a phrase bank"),
])
def test_bad_phrase_files_are_told(tmp_path, content, suffix, message):
    path = tmp_path / f"bank{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_bank(str(path))


def test_bad_arguments_are_told(studio, tmp_path, capsys):
    with pytest.raises(InputError, match="No phrase file"):
        load_bank(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="Unknown language"):
        load_bank("builtin", "fr")
    image = render("red", "circle", np.random.default_rng(0))[0]
    with pytest.raises(InputError, match="-k must be between"):
        studio.describe([image], k=0)
    with pytest.raises(InputError, match="at least one image"):
        studio.describe([])
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert main(["describe", str(tmp_path / "bad.png")]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_cli_json_one_entry_per_image_in_order(tmp_path, capsys):
    rng = np.random.default_rng(2)
    paths = []
    for colour, shape in [("yellow", "cross"), ("red", "circle"), ("purple", "triangle")]:
        paths.append(str(tmp_path / f"{colour}_{shape}.png"))
        render(colour, shape, rng)[0].save(paths[-1])
    assert main(["describe", *paths, "--preset", "demo", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["image"] for d in out] == paths
    assert all(len(d["phrases"]) == 3 and sorted(d["phrases"][0]) == ["score", "text"] for d in out)
    assert "red circle" in out[1]["phrases"][0]["text"] and "red circle" in out[1]["prompt"]
    assert main(["describe", paths[1], "--preset", "demo", "--language", "zh"]) == 0
    assert "红色的圆形" in capsys.readouterr().out


def test_builtin_banks_exist():
    assert all(path.is_file() for path in BANKS.values())
