"""clipdemo.retrieval: the incremental image index, and search by text or by image.

Quality checks use the demo CLIP on rendered shapes, judged by the shapes' known colour and shape
(their file names); scores are checked against transformers' CLIPModel directly (clip_reference).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clipdemo import Studio, resolve_settings
from clipdemo.cli import main
from clipdemo.errors import InputError
from clipdemo.retrieval import load_index
from demo_world.world import COLOURS, SHAPES, render
from tests.clip_reference import reference_cosine
from tests.multilingual_models import save_tiny_chinese_clip
from tests.processes import run_one_and_two



def write_shapes(folder: Path, per_class: int = 2, seed: int = 0) -> Path:
    """colour_shape_i.png for every class of the shapes world."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(per_class):
        for colour in COLOURS:
            for shape in SHAPES:
                render(colour, shape, rng)[0].save(folder / f"{colour}_{shape}_{i}.png")
    return folder


@pytest.fixture(scope="module")
def demo():
    return Studio(resolve_settings(preset="demo"))  # as `--preset demo` runs: bf16 where the CPU has it


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # folders searched directly index here


def test_text_query_returns_that_colour_and_shape(demo, shapes, tmp_path):
    demo.index(shapes, tmp_path / "index")
    for colour, shape in [("red", "circle"), ("blue", "square"), ("yellow", "triangle")]:
        result = demo.search(tmp_path / "index", text=f"a {colour} {shape}", k=5)
        files = [h.file for h in result.hits]
        both = [f for f in files if f.startswith(f"{colour}_{shape}_")]
        either = [f for f in files if f.startswith(f"{colour}_") or f"_{shape}_" in f]
        assert len(both) == 2 and len(either) >= 4, files  # both of its kind, the rest share colour or shape
        if colour == "red":  # the example: red circles first
            assert set(files[:2]) == set(both), files
        assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_image_query_returns_its_own_file_first(demo, shapes, tmp_path):
    demo.index(shapes, tmp_path / "index")
    for name in ["green_star_1.png", "purple_cross_0.png", "orange_square_1.png"]:
        hits = demo.search(tmp_path / "index", image=str(shapes / name), k=3).hits
        assert hits[0].file == name and hits[0].score > 0.99 and hits[1].score < hits[0].score


def test_scores_and_order_equal_an_independent_clip(studio, tiny_clip_dir, shapes, tmp_path):
    update = studio.index(shapes, tmp_path / "index", batch_size=7)
    files = [f.file for f in update.index.files]
    assert files == sorted(p.name for p in shapes.glob("*.png"))
    cosine, _ = reference_cosine(tiny_clip_dir, [shapes / f for f in files], ["a red circle"])
    result = studio.search(tmp_path / "index", text="a red circle", k=8)
    expected = np.argsort(-cosine[:, 0])[:8]
    assert [h.file for h in result.hits] == [files[i] for i in expected]
    np.testing.assert_allclose([h.score for h in result.hits], cosine[expected, 0], atol=1e-5)
    stored = load_file(str(tmp_path / "index" / "embeddings.safetensors"))["embeddings"]
    np.testing.assert_allclose(stored.norm(dim=1).numpy(), 1.0, atol=1e-5)  # stored normalised
    header = json.loads((tmp_path / "index" / "index.json").read_text())
    assert header["model"] == str(tiny_clip_dir) and header["model_dtype"] == "float32"
    assert header["count"] == 60 and header["dim"] == stored.shape[1]


def test_rerun_embeds_only_new_or_changed_files_and_drops_deleted(studio, tiny_clip_dir, tmp_path):
    folder = write_shapes(tmp_path / "shapes", per_class=1)
    first = studio.index(folder, tmp_path / "index")
    assert len(first.embedded) == 30 and first.kept == 0
    before = {f.file: row for f, row in zip(first.index.files, load_index(tmp_path / "index").embeddings)}

    rng = np.random.default_rng(7)
    render("blue", "star", rng)[0].save(folder / "red_circle_0.png")  # changed content
    render("green", "cross", rng)[0].save(folder / "new.png")  # added
    (folder / "yellow_star_0.png").unlink()  # deleted
    (folder / "blue_square_0.png").rename(folder / "moved.png")  # same content, new name
    os.utime(folder / "red_square_0.png", (1, 1))  # touched: new mtime, same content

    second = studio.index(folder, tmp_path / "index")
    assert sorted(second.embedded) == ["new.png", "red_circle_0.png"]
    assert second.removed == ["blue_square_0.png", "yellow_star_0.png"] and second.kept == 28
    index = load_index(tmp_path / "index")
    rows = {f.file: row for f, row in zip(index.files, index.embeddings)}
    assert len(rows) == 30 and "yellow_star_0.png" not in rows
    for name in set(before) - {"red_circle_0.png", "yellow_star_0.png", "blue_square_0.png"}:
        assert torch.equal(rows[name], before[name]), name  # untouched rows are the same bytes
    assert torch.equal(rows["moved.png"], before["blue_square_0.png"])
    # The re-embedded file holds its new picture's embedding, computed here independently.
    pictures = [folder / "red_circle_0.png", folder / "new.png"]
    reference, _ = reference_cosine(tiny_clip_dir, pictures, ["a blue star", "a green cross"])
    ours = torch.stack([rows["red_circle_0.png"], rows["new.png"]]) @ studio.scorer().embed_texts(
        ["a blue star", "a green cross"]).T
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)
    third = studio.index(folder, tmp_path / "index")
    assert third.embedded == [] and third.kept == 30 and third.removed == []


def test_unreadable_files_are_skipped_and_named(studio, tmp_path):
    folder = write_shapes(tmp_path / "shapes", per_class=1)
    (folder / "broken.png").write_bytes(b"not a png")
    update = studio.index(folder, tmp_path / "index")
    assert update.skipped == ["broken.png"] and len(update.index) == 30
    assert "broken.png" in update.notices[0]


def test_a_folder_is_indexed_on_the_fly_into_the_cache(studio, tmp_path):
    folder = write_shapes(tmp_path / "shapes", per_class=1)
    first = studio.search(folder, text="a red circle", k=3)
    assert len(first.update.embedded) == 30 and first.update.out.is_relative_to(tmp_path / "cache")
    second = studio.search(folder, text="a blue cross", k=3)
    assert second.update.embedded == [] and second.n_images == 30


def test_an_index_refuses_queries_from_another_model(studio, tiny_clip_dir, shapes, tmp_path, capsys):
    from tests.tiny_models import save_tiny_clip

    other = save_tiny_clip(tmp_path / "other-clip", seed=1)
    studio.index(shapes, tmp_path / "index")
    code = main(["search", str(tmp_path / "index"), "--text", "a red circle", "--clip-model", str(other),
                 "--dtype", "fp32"])
    err = capsys.readouterr().err
    assert code == 2 and "built with tiny-clip" in err and "do not compare" in err and "Traceback" not in err
    code = main(["index", str(shapes), "--out", str(tmp_path / "index"), "--clip-model", str(other)])
    assert code == 2 and "--rebuild" in capsys.readouterr().err
    assert main(["index", str(shapes), "--out", str(tmp_path / "index"), "--clip-model", str(other), "--rebuild",
                 "--workers", "0"]) == 0
    assert load_index(tmp_path / "index").model == str(other)


def test_chinese_text_goes_to_the_chinese_scorer(tiny_clip_dir, shapes, tmp_path):
    zh = save_tiny_chinese_clip(tmp_path / "zh-clip")
    studio = Studio(resolve_settings(clip_model=str(tiny_clip_dir), zh_clip_model=str(zh), dtype="fp32"))
    studio.index(shapes, tmp_path / "english")
    with pytest.raises(InputError, match="built with tiny-clip.*embedded by zh-clip"):
        studio.search(tmp_path / "english", text="红色的圆形")
    assert studio.search(tmp_path / "english", text="红色的圆形", scorer="english").hits
    studio.index(shapes, tmp_path / "chinese", scorer="chinese")
    result = studio.search(tmp_path / "chinese", text="红色的圆形", k=4)
    assert result.scorer == str(zh) and len(result.hits) == 4
    assert studio.search(tmp_path / "chinese", image=str(shapes / "red_circle_0.png")).scorer == str(zh)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Give one query"),
    ({"text": "a", "image": "x.png"}, "Give one query"),
    ({"text": "  "}, "Give one query"),
    ({"text": "a", "k": 0}, "-k must be between 1"),
    ({"text": "a", "k": 5000}, "-k must be between 1"),
])
def test_bad_queries_are_told(studio, shapes, kwargs, message):
    with pytest.raises(InputError, match=message):
        studio.search(shapes, **kwargs)


def test_bad_targets_are_told(studio, tmp_path, capsys):
    assert main(["search", str(tmp_path / "nothing"), "--text", "a"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "index.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable clipdemo index"):
        studio.search(tmp_path / "broken", text="a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No images found"):
        studio.search(tmp_path / "empty", text="a")
    with pytest.raises(InputError, match="not a readable image"):
        studio.search(write_shapes(tmp_path / "s", per_class=1), image=str(tmp_path / "broken" / "index.json"))


def test_cli_index_search_json(tiny_clip_dir, shapes, tmp_path, capsys):
    flags = ["--clip-model", str(tiny_clip_dir), "--dtype", "fp32"]
    assert main(["index", str(shapes), "--out", str(tmp_path / "index"), "--json", "--workers", "0", *flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 60 and summary["embedded"] == 60 and summary["kept"] == 0
    assert main(["search", str(tmp_path / "index"), "--image", str(shapes / "red_star_1.png"), "-k", "4", "--json",
                 *flags]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [sorted(h) for h in hits] == [["file", "score"]] * 4 and hits[0]["file"] == "red_star_1.png"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_accelerate_two_processes_index_equals_one(tiny_clip_dir, tmp_path):
    folder = write_shapes(tmp_path / "shapes", per_class=1)
    (folder / "broken.png").write_bytes(b"not a png")
    common = ["-m", "clipdemo", "index", str(folder), "--workers", "0", "--batch-size", "4",
              "--clip-model", str(tiny_clip_dir), "--dtype", "fp32"]
    _, double = run_one_and_two(common, tmp_path)
    assert "2 processes shared the 31 images" in double.stderr, double.stderr[-3000:]
    one, two = load_index(tmp_path / "one"), load_index(tmp_path / "two")
    assert list(one.files) == list(two.files) and len(one) == 30
    torch.testing.assert_close(one.embeddings, two.embeddings, atol=1e-6, rtol=0)
    assert (tmp_path / "one" / "files.jsonl").read_text() == (tmp_path / "two" / "files.jsonl").read_text()
