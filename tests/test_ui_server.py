"""A real Gradio server on 127.0.0.1, driven through gradio_client."""

import io
import json
import re
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradio_client.exceptions import AppError

from clipdemo.config import GenerationDefaults
from clipdemo.text import display_name
from tests.clip_reference import clip_score, reference_cosine, softmax_probs


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "sample.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_generate_endpoint(client, tiny_clip_dir):
    gallery, table, info, archive = client.predict("a dog wearing glasses", "", 3, 1, 0, 64, 64, "21",
                                                   api_name="/generate")
    assert len(gallery) == 3
    captions = [g["caption"] for g in gallery]
    assert captions[0].startswith("#1 · CLIP ") and all("seed" in c for c in captions)
    scores = [row[2] for row in table["data"]]
    assert scores == sorted(scores, reverse=True)
    # Each row's score is the CLIPScore of the PNG as served, recomputed outside clipdemo.
    cosine, _ = reference_cosine(tiny_clip_dir, [g["image"] for g in gallery], ["a dog wearing glasses"])
    np.testing.assert_allclose(scores, clip_score(cosine[:, 0]), atol=2e-3)
    shown = [float(re.search(r"CLIP (-?\d+\.\d)", c).group(1)) for c in captions]
    np.testing.assert_allclose(shown, clip_score(cosine[:, 0]), atol=0.06)  # one decimal in the caption
    assert sorted(row[1] for row in table["data"]) == [21, 22, 23]
    assert table["headers"] == ["rank", "seed", "CLIP score", "moderation"]  # no PickScore model: no empty column


def test_classify_endpoint(client, image_file, tiny_clip_dir):
    from gradio_client import handle_file

    label, table, _, info = client.predict([handle_file(image_file)], "cat, dog, bird", "a photo of a {}.", 3,
                                     api_name="/classify")
    confidences = [c["confidence"] for c in label["confidences"]]
    assert abs(sum(confidences) - 1) < 1e-4 and label["label"] == label["confidences"][0]["label"]
    assert {row[1] for row in table["data"]} == {"cat", "dog", "bird"}
    labels = ["cat", "dog", "bird"]
    cosine, logit_scale = reference_cosine(tiny_clip_dir, [image_file], [f"a photo of a {x}." for x in labels])
    expected = dict(zip(labels, softmax_probs(cosine, logit_scale)[0]))
    assert label["label"] == max(expected, key=expected.get)
    for c in label["confidences"]:
        assert c["confidence"] == pytest.approx(expected[c["label"]], abs=1e-4)
    for _, name, prob in table["data"]:
        assert prob == pytest.approx(expected[name], abs=2e-4)


def test_similarity_endpoint(client, image_file, tiny_clip_dir, tmp_path):
    from gradio_client import handle_file

    other = tmp_path / "other.png"
    Image.fromarray(np.random.default_rng(8).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(other)
    plot, table, info, metadata = client.predict([handle_file(image_file), handle_file(str(other))], "a dog\na cat",
                                                 api_name="/similarity")
    assert metadata == {}  # a plain PNG carries no clipdemo parameters
    assert "Scored by" in info and "No CJK font" not in info  # English text needs no CJK font
    assert plot["type"] == "matplotlib"
    assert [row[:2] for row in table["data"]] == [["sample.png", "a dog"], ["sample.png", "a cat"],
                                                  ["other.png", "a dog"], ["other.png", "a cat"]]
    expected, _ = reference_cosine(tiny_clip_dir, [image_file, other], ["a dog", "a cat"])
    np.testing.assert_allclose([row[2] for row in table["data"]], expected.ravel(), atol=2e-4)
    np.testing.assert_allclose([row[3] for row in table["data"]], clip_score(expected).ravel(), atol=0.02)


def test_bad_input_is_a_message_and_the_server_survives(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="prompt is empty"):
        client.predict("   ", "", 2, 1, 0, 64, 64, "1", api_name="/generate")
    with pytest.raises(AppError, match="multiple of 8"):
        client.predict("a cat", "", 2, 1, 0, 100, 64, "1", api_name="/generate")
    gallery, _, _, _ = client.predict("a cat", "", 1, 1, 0, 64, 64, "1", api_name="/generate")
    assert len(gallery) == 1


def test_blank_seed_means_random_and_seeds_are_shown(client):
    gallery, table, info, _ = client.predict("a cat", "", 2, 1, 0, 64, 64, "", api_name="/generate")
    seeds = sorted(row[1] for row in table["data"])
    assert seeds[1] == seeds[0] + 1
    assert all(f"seed {s}" in " ".join(g["caption"] for g in gallery) for s in seeds)
    assert f"Seeds {seeds[0]}–{seeds[1]}" in info


def wait_until_denoising(job, polls: int = 1200) -> None:
    """Return once the server reports the job's denoising progress; fail if it ends or never gets there."""
    for _ in range(polls):
        status = job.status()
        if any(unit.desc == "Denoising" for unit in status.progress_data or []):
            return
        assert not job.done(), f"the run ended before it was seen denoising: {status}"
        time.sleep(0.05)
    raise AssertionError(f"the run was never seen denoising: {job.status()}")


def test_stop_cancels_only_the_callers_run(tiny_server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    a, b = Client(tiny_server, verbose=False), Client(tiny_server, verbose=False)  # two sessions
    job_a = a.submit("a red circle", "", 2, 100, 0, 64, 64, "1", api_name="/generate")
    wait_until_denoising(job_a)
    job_b = b.submit("a blue square", "", 3, 40, 0, 64, 64, "7", api_name="/generate")  # queued: one run at a time
    assert a.predict(api_name="/stop") == "Stopping…"
    with pytest.raises(AppError, match="Stopped: the generation was cancelled"):
        job_a.result(timeout=120)
    wait_until_denoising(job_b)
    a.predict(api_name="/stop")  # A's Stop arriving while B's run goes on must leave it alone
    gallery, table, _, _ = job_b.result(timeout=120)
    assert len(gallery) == 3 and sorted(row[1] for row in table["data"]) == [7, 8, 9]


def png_metadata(data) -> dict:
    """The clipdemo JSON chunk of a PNG (a path or bytes), read with PIL alone."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image.load()
        return json.loads(image.text["clipdemo"])


def test_served_pngs_and_zip_carry_provenance_back_into_similarity(client, tiny_sd_dir, tiny_clip_dir):
    from gradio_client import handle_file

    gallery, table, _, archive = client.predict("a green star", "blurry", 2, 1, 0, 64, 64, "31",
                                                api_name="/generate")
    served = [g["image"] for g in gallery]
    for path, (rank, seed, score, _) in zip(served, table["data"]):
        meta = png_metadata(path)
        assert (meta["prompt"], meta["negative_prompt"], meta["seed"], meta["rank"]) == ("a green star", "blurry",
                                                                                       seed, rank)
        assert meta["sd_model"] == str(tiny_sd_dir) and meta["clip_model"] == str(tiny_clip_dir)
        assert meta["scores"]["clip"] == pytest.approx(score, abs=1e-3)
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        files = [e["file"] for e in manifest["images"]]
        assert sorted(zf.namelist()) == sorted(["manifest.json", *files]) and len(files) == 2
        assert [png_metadata(zf.read(f))["seed"] for f in files] == [e["seed"] for e in manifest["images"]]
        assert manifest["prompt"] == "a green star"

    _, _, _, metadata = client.predict([handle_file(served[0])], "a green star", api_name="/similarity")
    assert len(metadata) == 1
    (found,) = metadata.values()
    assert (found["prompt"], found["seed"]) == ("a green star", table["data"][0][1])


def test_missing_cjk_font_is_told_in_the_similarity_tab(client, image_file, monkeypatch):
    from gradio_client import handle_file

    from clipdemo.plots import cjk_font

    monkeypatch.setenv("CLIPDEMO_CJK_FONT", "none")  # the server runs in this process: it sees a machine without one
    cjk_font.cache_clear()
    try:
        _, table, info, _ = client.predict([handle_file(image_file)], "一只狗\na dog", api_name="/similarity")
    finally:
        monkeypatch.delenv("CLIPDEMO_CJK_FONT")
        cjk_font.cache_clear()
    assert [row[1] for row in table["data"]] == ["一只狗", "a dog"]
    assert "No CJK font" in info and "fonts-noto-cjk" in info


def write_class_zip(folder: Path) -> Path:
    """A zip of two class folders with three small images each."""
    rng = np.random.default_rng(9)
    archive = folder / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls in ("cat", "dog"):
            for i in range(3):
                path = folder / f"{cls}{i}.png"
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
                zf.write(path, f"{cls}/{i}.png")
    return archive


def test_evaluate_endpoint_equals_an_independent_clip(client, tiny_clip_dir, tmp_path):
    """Top-1, per-class accuracy and the misclassified count against transformers' CLIPModel on the zip's images
    (classes of 4, 2 and 3 images: a wrong argmax or class order cannot give the same numbers by symmetry)."""
    from gradio_client import handle_file

    from tests.clip_reference import reference_cosine

    rng = np.random.default_rng(12)
    archive = tmp_path / "three.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls, count in (("bird", 3), ("cat", 4), ("dog", 2)):
            for i in range(count):
                buffer = io.BytesIO()
                smooth = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
                Image.fromarray(smooth).resize((40, 40), Image.BICUBIC).save(buffer, format="PNG")
                zf.writestr(f"{cls}/{i}.png", buffer.getvalue())
    classes = ["bird", "cat", "dog"]
    summary, per_class, plot, mistakes, files = client.predict(
        handle_file(str(archive)), "", "custom", "a photo of a {}.", api_name="/evaluate")

    truth, paths = [], []
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            paths.append(tmp_path / "unzipped" / name)
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            paths[-1].write_bytes(zf.read(name))
            truth.append(classes.index(name.split("/")[0]))
    cosine, _ = reference_cosine(tiny_clip_dir, paths, [f"a photo of a {c}." for c in classes])
    right = cosine.argmax(1) == np.array(truth)
    assert f"top-1 {right.mean():.1%}" in summary and "torch.Size([9, 3])" in summary
    expected = {c: round(float(right[np.array(truth) == k].mean()), 4) for k, c in enumerate(classes)}
    assert {row[0]: row[1] for row in per_class["data"]} == expected
    assert plot["type"] == "matplotlib"
    assert len(mistakes) == int((~right).sum())
    report = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert report["n_images"] == 9 and report["top1"] == pytest.approx(right.mean())


def test_missing_cjk_font_is_told_in_the_evaluate_tab(client, tmp_path, monkeypatch):
    from gradio_client import handle_file

    from clipdemo.plots import cjk_font

    archive = write_class_zip(tmp_path)
    english, *_ = client.predict(handle_file(str(archive)), "", "single", "", api_name="/evaluate")
    monkeypatch.setenv("CLIPDEMO_CJK_FONT", "none")  # the server runs in this process: it sees a machine without one
    cjk_font.cache_clear()
    try:
        chinese, *_ = client.predict(handle_file(str(archive)), "cat: 猫", "single", "", api_name="/evaluate")
    finally:
        monkeypatch.delenv("CLIPDEMO_CJK_FONT")
        cjk_font.cache_clear()
    assert "No CJK font" in chinese and "fonts-noto-cjk" in chinese
    assert "No CJK font" not in english


def test_evaluate_endpoint_refuses_bad_label_lines(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    archive = write_class_zip(tmp_path)
    with pytest.raises(AppError, match="No class folder named 'bird'"):
        client.predict(handle_file(str(archive)), "bird: 鸟", "single", "", api_name="/evaluate")


def write_shapes_zip(folder: Path) -> tuple[Path, list[Path]]:
    """Rendered shapes in nested folders of a zip, and the files as written."""
    from demo_world.world import render

    rng = np.random.default_rng(4)
    archive, paths = folder / "shapes.zip", []
    with zipfile.ZipFile(archive, "w") as zf:
        for colour, shape in [("red", "circle"), ("blue", "square"), ("green", "star"), ("red", "star")]:
            for i in range(2):
                paths.append(folder / f"{colour}_{shape}_{i}.png")
                render(colour, shape, rng)[0].save(paths[-1])
                zf.write(paths[-1], f"shapes/{colour}/{paths[-1].name}")
    return archive, paths


def test_search_endpoint_matches_an_independent_clip(client, tiny_clip_dir, tmp_path):
    from gradio_client import handle_file

    archive, paths = write_shapes_zip(tmp_path)
    gallery, table, summary = client.predict(handle_file(str(archive)), "a red circle", k=5, api_name="/search")
    cosine, _ = reference_cosine(tiny_clip_dir, paths, ["a red circle"])
    expected = np.argsort(-cosine[:, 0])[:5]
    assert [row[1].rsplit("/", 1)[1] for row in table["data"]] == [paths[i].name for i in expected]
    np.testing.assert_allclose([row[2] for row in table["data"]], cosine[expected, 0], atol=1e-4)
    assert len(gallery) == 5 and gallery[0]["caption"].endswith(table["data"][0][1])
    assert "of 8 images" in summary and "a red circle" in summary
    # The same zip again (it is indexed once) with an image query: the image itself comes first.
    _, table, summary = client.predict(handle_file(str(archive)), "", handle_file(str(paths[5])), k=3,
                                       api_name="/search")
    assert table["data"][0][1] == f"shapes/green/{paths[5].name}" and "the query image" in summary


def test_search_endpoint_bad_input_is_a_message(client, tmp_path):
    from gradio_client import handle_file

    archive, _ = write_shapes_zip(tmp_path)
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    for args, message in [((handle_file(str(archive)), "  "), "Type a text or give an image"),
                          ((None, "a cat"), "Upload a zip of images"),
                          ((handle_file(str(tmp_path / "broken.zip")), "a cat"), "not a readable zip")]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/search")
    with pytest.raises(AppError, match="Nothing was generated on this page yet"):
        client.predict(None, "a cat", source="generated on this page", api_name="/search")
    with pytest.raises(AppError, match="Give an image to describe"):
        client.predict(None, api_name="/describe")


def test_describe_endpoint_matches_an_independent_clip(client, tiny_clip_dir, tmp_path):
    from gradio_client import handle_file

    _, paths = write_shapes_zip(tmp_path)
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("a red circle\na blue square\na dog\nwatercolor\n", encoding="utf-8")
    table, prompt, summary = client.predict(handle_file(str(paths[0])), "en", 3, handle_file(str(phrases)),
                                            api_name="/describe")
    cosine, _ = reference_cosine(tiny_clip_dir, [paths[0]], phrases.read_text().split("\n")[:4])
    order = np.argsort(-cosine[0])[:3]
    texts = phrases.read_text().split("\n")
    assert [row[1] for row in table["data"]] == [texts[i] for i in order]
    np.testing.assert_allclose([row[3] for row in table["data"]], cosine[0, order], atol=1e-4)
    assert prompt.startswith(texts[order[0]]) and "**phrases.txt** bank" in summary


def test_compare_endpoint_same_settings_tie_on_every_seed(client, tiny_sd_dir):
    model = display_name(str(tiny_sd_dir))
    side = [model, 2, 1.0, "default", ""]
    gallery_a, gallery_b, summary, per_seed, plot = client.predict(
        "a red circle", "5", 3, 64, 64, *side, *side, "auto", api_name="/compare")
    rows = per_seed["data"]
    assert [row[0] for row in rows] == [5, 6, 7]
    assert all(row[1] == row[2] for row in rows)
    assert "ties: 3" in summary and "A draw" in summary
    assert len(gallery_a) == len(gallery_b) == 3 and plot["type"] == "matplotlib"


def test_compare_endpoint_different_settings_count_wins(client, tiny_sd_dir, tiny_clip_dir):
    """Wins recounted from an independent CLIP's scores of the images the page returned, matched by seed."""
    from PIL import Image

    from tests.clip_reference import clip_score, reference_cosine

    model = display_name(str(tiny_sd_dir))
    gallery_a, gallery_b, summary, per_seed, _ = client.predict(
        "a red circle", "5", 3, 64, 64, model, 1, 1.0, "default", "", model, 3, 1.0, "euler", "", "auto",
        api_name="/compare")

    def scores(gallery):
        by_seed = {}
        for item in gallery:
            seed = int(re.search(r"seed (\d+)", item["caption"]).group(1))
            image = Image.open(item["image"]).convert("RGB")
            by_seed[seed] = float(clip_score(reference_cosine(tiny_clip_dir, [image], ["a red circle"])[0])[0, 0])
        return by_seed

    a, b = scores(gallery_a), scores(gallery_b)
    assert sorted(a) == sorted(b) == [5, 6, 7]
    wins_a, wins_b = sum(a[s] > b[s] for s in a), sum(b[s] > a[s] for s in a)
    assert f"| seeds won | {wins_a} | {wins_b} |" in summary, (a, b, summary)
    assert a != b  # other steps and sampler give other images


# Each public endpoint's inputs without a default: a client may send these and nothing else.
FLAT_CALLS = 4  # calls measured per endpoint, after two to warm up
FLAT_BYTES = 64 * 1024  # a request's own traffic and gradio's bounded logs stay well under it
HEAVY_MODULES = ("clipdemo", "PIL", "torch", "numpy", "matplotlib")
HEAP_IGNORED = ("*/httpcore/*",  # this test's own client: its socket receive buffers
                "*/matplotlib/*")  # its bounded font (per thread) and text caches; figures are counted as objects
REQUIRED_INPUTS = {
    "/generate": ["prompt"],
    "/stop": [],
    "/compare": ["prompt"],
    "/bench": ["prompts"],
    "/classify": ["images", "labels"],
    "/similarity": ["images", "texts"],
    "/moderate": ["images"],
    "/evaluate": ["archive"],
    "/search": ["archive", "text"],
    "/describe": ["image"],
}


def test_only_the_required_inputs_lack_defaults(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == set(REQUIRED_INPUTS)
    lacking = {name: [p["parameter_name"] for p in info["parameters"] if not p["parameter_has_default"]]
               for name, info in endpoints.items()}
    assert lacking == REQUIRED_INPUTS


@pytest.fixture(scope="module")
def small_client(tiny_sd_dir, tiny_clip_dir):
    """The tiny-model app with 64×64 defaults (fast to run as they are) and the CLIP concept check, so that
    /moderate has a checker offline."""
    from dataclasses import replace

    from gradio_client import Client

    from clipdemo import Studio, resolve_settings
    from clipdemo.config import GenerationDefaults
    from clipdemo.ui import build_app
    from tests.servers import launch_local

    settings = resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                safety_model="concepts")
    demo = build_app(Studio(replace(settings, defaults=GenerationDefaults(width=64, height=64))))
    demo.queue(max_size=16)
    try:
        yield Client(launch_local(demo), verbose=False)
    finally:
        demo.close()


def test_every_endpoint_runs_with_its_required_inputs_only(small_client, image_file, tmp_path):
    from gradio_client import handle_file

    client = small_client
    gallery, table, info, archive = client.predict("a red circle", api_name="/generate")
    assert len(gallery) == GenerationDefaults().n == len(table["data"])  # the default number of candidates
    scores = [row[2] for row in table["data"]]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
    assert Path(archive).suffix == ".zip"
    _, table, _, _ = client.predict("a red circle", seed="5", num_candidates=2, api_name="/generate")  # by name
    assert sorted(row[1] for row in table["data"]) == [5, 6]

    label, table, _, info = client.predict([handle_file(image_file)], "cat, dog, bird", api_name="/classify")
    assert {row[1] for row in table["data"]} == {"cat", "dog", "bird"} and "Scored by" in info

    plot, table, info, _ = client.predict([handle_file(image_file)], "a dog\na cat", api_name="/similarity")
    assert [row[1] for row in table["data"]] == ["a dog", "a cat"] and plot["type"] == "matplotlib"

    verdict, table, gallery = client.predict([handle_file(image_file)], api_name="/moderate")
    assert verdict.startswith("Checker:") and len(gallery) == 1 and table["data"]

    summary, per_class, plot, _, files = client.predict(handle_file(str(write_class_zip(tmp_path))),
                                                        api_name="/evaluate")
    assert "**top-1 " in summary and "torch.Size([6, 2])" in summary and "templates single" in summary
    assert [row[0] for row in per_class["data"]] == ["cat", "dog"] and len(files) == 3

    gallery_a, gallery_b, summary, per_seed, plot = client.predict("a red circle", api_name="/compare")
    assert len(gallery_a) == len(gallery_b) == len(per_seed["data"]) == GenerationDefaults().n
    assert "seeds won" in summary

    gallery, table, summary = client.predict(handle_file(str(write_class_zip(tmp_path))), "a cat", api_name="/search")
    assert len(gallery) == len(table["data"]) == 6 and "of 6 images" in summary

    table, prompt, summary = client.predict(handle_file(image_file), api_name="/describe")
    assert len(table["data"]) == 8 and prompt and "**builtin** bank" in summary

    assert client.predict(api_name="/stop") == "Stopping…"


def test_none_from_an_api_caller_means_the_default(small_client, tmp_path, tiny_sd_dir):
    """Gradio refuses None for a slider, but passes it on for a text box, a radio or a dropdown."""
    from gradio_client import handle_file

    d = GenerationDefaults(width=64, height=64)
    gallery, table, _, _ = small_client.predict("a red circle", None, d.n, d.steps, d.guidance, d.width, d.height,
                                                None, None, api_name="/generate")
    assert len(gallery) == d.n and len(table["data"]) == d.n
    side = [None, 1, 0.0, None, None]
    _, _, summary, per_seed, _ = small_client.predict("a red circle", None, 2, 64, 64, *side, *side, None,
                                                      api_name="/compare")
    assert len(per_seed["data"]) == 2 and "ties: 2" in summary  # both sides: the first model, default scheduler
    summary, *_ = small_client.predict(handle_file(str(write_class_zip(tmp_path))), None, "custom", None, None,
                                       api_name="/evaluate")
    assert "templates single" in summary  # a blank custom template falls back to the single template


def test_every_api_field_is_named(studio):
    """The API page an agent or a gradio_client user reads names every input and output, none `value_N`."""
    import re

    from clipdemo.ui import build_app

    info = build_app(studio).get_api_info()
    unnamed = [f"{endpoint} {kind}: {field.get('label')!r}"
               for endpoint, spec in info["named_endpoints"].items()
               for kind in ("parameters", "returns") for field in spec[kind]
               if not field.get("label") or re.fullmatch(r"value_\d+", str(field["label"]))]
    assert len(info["named_endpoints"]) >= 10 and unnamed == []


def endpoint_calls(image_file: str, class_zip: str) -> dict:
    """One small request per endpoint, its required inputs and little more."""
    from gradio_client import handle_file

    image, folder = [handle_file(image_file)], handle_file(class_zip)
    return {
        "generate": lambda c: c.predict("a red circle", num_candidates=1, steps=1, api_name="/generate"),
        "classify": lambda c: c.predict(image, "cat, dog, bird", api_name="/classify"),
        "similarity": lambda c: c.predict(image, "a dog\na cat", api_name="/similarity"),
        "moderate": lambda c: c.predict(image, api_name="/moderate"),
        "evaluate": lambda c: c.predict(folder, api_name="/evaluate"),
        "compare": lambda c: c.predict("a red circle", num_candidates=1, steps_a=1, steps_b=1, api_name="/compare"),
        "search": lambda c: c.predict(folder, "a cat", api_name="/search"),
        "describe": lambda c: c.predict(image[0], api_name="/describe"),
    }


def heavy_objects() -> Counter:
    """Live objects by type, for the kinds a request makes: images, tensors, arrays, figures, clipdemo's results."""
    import gc

    gc.collect()
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
                   if str(type(o).__module__).split(".")[0] in HEAVY_MODULES)


@pytest.mark.parametrize("endpoint", ["generate", "classify", "similarity", "moderate", "evaluate", "compare",
                                      "search", "describe"])
def test_memory_per_call_is_flat(small_client, endpoint, image_file, tmp_path):
    """Nothing a request makes outlives it: no figure, image, tensor or result kept per call, and the Python heap
    (tracemalloc: the server runs in this process) grows by less than FLAT_BYTES a call once warm."""
    import gc
    import tracemalloc

    call = endpoint_calls(image_file, str(write_class_zip(tmp_path)))[endpoint]
    for _ in range(2):  # warm: first-use imports, the prompt cache, gradio's per-endpoint state
        call(small_client)
    before_objects = heavy_objects()
    tracemalloc.start()
    try:
        ignored = [tracemalloc.Filter(False, pattern) for pattern in HEAP_IGNORED]
        first = tracemalloc.take_snapshot().filter_traces(ignored)
        for _ in range(FLAT_CALLS):
            call(small_client)
        gc.collect()  # a figure is a cycle of references: garbage, but freed only by the collector
        grown_lines = tracemalloc.take_snapshot().filter_traces(ignored).compare_to(first, "lineno")
        heap = sum(stat.size_diff for stat in grown_lines) / FLAT_CALLS
        where = [str(stat) for stat in grown_lines[:5]]
    finally:
        tracemalloc.stop()
    grown = {kind: n for kind, n in (heavy_objects() - before_objects).items() if n >= FLAT_CALLS}
    assert not grown, f"/{endpoint} keeps one of these per call: {grown}"
    assert heap < FLAT_BYTES, f"/{endpoint} keeps {heap / 1024:.0f} KiB of Python objects per call; grown most: {where}"
