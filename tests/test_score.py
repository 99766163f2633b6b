"""`clipdemo score PATH...`: prompts from clipdemo, A1111, ComfyUI and a CSV; scores, ranks, errors, accelerate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from clipdemo.bench.metadata import a1111_prompt, comfyui_prompt, comfyui_seed
from clipdemo.bench.sources import Found, describe, find_images, prompt_of
from clipdemo.errors import InputError
from clipdemo.provenance import save_png
from tests.clip_reference import clip_score, reference_cosine
from tests.processes import run_one_and_two

RED, BLUE, ZH = "a red circle", "a blue square", "红色的圆形"


# -- images as each tool writes them --------------------------------------------------------------
def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8))


def a1111_parameters(prompt: str, seed: int, negative: str | None = "blurry, ugly, extra fingers") -> str:
    lines = [prompt] + ([f"Negative prompt: {negative}"] if negative else [])
    return "\n".join(lines + [f"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 48x48, "
                              "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.9.4"])


def comfyui_graph(positive: str, seed: int) -> dict:
    """The default ComfyUI workflow in API form; links are [node id, output index]."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "denoise": 1,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 48, "height": 48, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def save_with_text(path: Path, seed: int, **chunks: str) -> None:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed).save(path, pnginfo=info)


# relative file -> (prompt, source, seed), per PATH
EXPECTED = {
    "tool_a": {"clipdemo.png": (RED, "clipdemo", 7), "clipdemo_zh.png": (ZH, "clipdemo", 8),
               "a1111_1.png": (RED, "a1111", 1234), "a1111_2.png": (RED, "a1111", 1235),
               "comfy.png": (RED, "comfyui", 42), "comfy_2.png": (RED, "comfyui", 42),  # one batch: one seed
               "listed/plain.png": (RED, "prompts-file", None),
               "override.png": (BLUE, "prompts-file", 99)},
    "tool_b": {"a1111_3.png": (RED, "a1111", 5), "named.png": (BLUE, "prompts-file", None)},
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two tools' folders of images, each kind made the way its tool makes it, and a prompts CSV."""
    root = tmp_path_factory.mktemp("made")
    a, b = root / "tool_a", root / "tool_b"
    a.mkdir()
    save_png(picture(1), a / "clipdemo.png", {"prompt": RED, "negative_prompt": "", "seed": 7, "steps": 1})
    save_png(picture(2), a / "clipdemo_zh.png", {"prompt": ZH, "negative_prompt": "", "seed": 8, "steps": 1})
    save_with_text(a / "a1111_1.png", 3, parameters=a1111_parameters(RED, 1234))
    save_with_text(a / "a1111_2.png", 4, parameters=a1111_parameters(RED, 1235))
    save_with_text(a / "comfy.png", 5, prompt=json.dumps(comfyui_graph(RED, 42)))
    save_with_text(a / "comfy_2.png", 10, prompt=json.dumps(comfyui_graph(RED, 42)))
    save_with_text(a / "listed" / "plain.png", 6)
    save_with_text(a / "override.png", 7, parameters=a1111_parameters("a green triangle", 99))  # the CSV wins
    (a / "notes.txt").write_text("not an image")
    save_with_text(b / "a1111_3.png", 8, parameters=a1111_parameters(RED, 5, negative=None))
    save_with_text(b / "named.png", 9)
    csv = root / "prompts.csv"
    csv.write_text(f"file,prompt\nlisted/plain.png,{RED}\noverride.png,{BLUE}\nnamed.png,{BLUE}\ngone.png,{BLUE}\n",
                   encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_clip_dir):
    from tests.tiny_models import save_tiny_clip

    return {"clip": tiny_clip_dir, "zh": save_tiny_clip(tmp_path_factory.mktemp("zh-clip"), seed=1),
            "pick": save_tiny_clip(tmp_path_factory.mktemp("pick"), seed=2)}


@pytest.fixture(scope="module")
def studio(models):
    from clipdemo import Studio, resolve_settings

    return Studio(resolve_settings(clip_model=str(models["clip"]), zh_clip_model=str(models["zh"]),
                                   pick_model=str(models["pick"]), pickscore="on", dtype="fp32"))


# -- prompts --------------------------------------------------------------------------------------
def test_each_image_gets_its_prompt_source_and_seed(made):
    from clipdemo.bench.sources import read_prompts

    table = read_prompts(made / "prompts.csv")
    for setting, files in EXPECTED.items():
        images = {i.relative: i for i in find_images([str(made / setting)])}
        assert set(images) == set(files)  # notes.txt is not an image
        for relative, (prompt, source, seed) in files.items():
            found = describe(images[relative], table)
            assert (found.prompt, found.source, found.seed) == (prompt, source, seed), relative
    assert prompt_of(made / "tool_a" / "a1111_1.png", None) == (RED, "a1111")
    with pytest.raises(InputError, match="plain.png: no prompt found"):
        prompt_of(made / "tool_a" / "listed" / "plain.png", None)


def test_a1111_prompt_is_the_text_before_the_negative_prompt_or_the_steps_line(tmp_path):
    assert a1111_prompt("masterpiece, a cat,\nsitting\nNegative prompt: dog\nSteps: 20, Seed: 1") == (
        "masterpiece, a cat,\nsitting")
    assert a1111_prompt("a cat\nSteps: 20, Sampler: Euler, Seed: 1") == "a cat"
    assert a1111_prompt("Negative prompt: dog\nSteps: 20") is None and a1111_prompt('{"prompt": "x"}') is None
    exif = Image.Exif()  # A1111 saves JPEG and WebP parameters as an EXIF UserComment, UTF-16 under "UNICODE"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + a1111_parameters("a cat in a hat", 12).encode("utf-16-be")
    picture(0).save(tmp_path / "a1111.jpg", exif=exif)
    assert describe(find_images([str(tmp_path / "a1111.jpg")])[0]) == Found("a cat in a hat", "a1111", 12)


def test_comfyui_prompt_follows_links_through_pass_through_and_primitive_nodes():
    graph = comfyui_graph("unused", 42)
    graph["6"]["inputs"]["text"] = ["10", 0]  # the text widget turned into an input, fed by a string node
    graph["10"] = {"class_type": "PrimitiveString", "inputs": {"value": "a lighthouse at dusk"}}
    graph["11"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["12", 0], "image": ["13", 0], "strength": 1}}
    graph["3"]["inputs"].update(positive=["11", 0], negative=["11", 1], seed=["14", 0])
    graph["14"] = {"class_type": "PrimitiveInt", "inputs": {"value": 77}}
    assert (comfyui_prompt(graph), comfyui_seed(graph)) == ("a lighthouse at dusk", 77)
    # SamplerCustomAdvanced: the prompt through a CFGGuider, the seed from a RandomNoise node
    custom = comfyui_graph("a fox in the snow", 0)
    custom["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["20", 0], "guider": ["21", 0], "sampler": ["22", 0], "sigmas": ["23", 0], "latent_image": ["5", 0]}}
    custom["20"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 31}}
    custom["21"] = {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                          "negative": ["7", 0], "cfg": 7}}
    assert (comfyui_prompt(custom), comfyui_seed(custom)) == ("a fox in the snow", 31)


# -- scores and ranks -----------------------------------------------------------------------------
def test_scores_match_transformers_and_ranks_follow_them(studio, made, models, tmp_path):
    paths = [str(made / "tool_a"), str(made / "tool_b")]
    run = studio.score_images(paths, prompts_file=str(made / "prompts.csv"), out=tmp_path / "out")
    rows = {(r.setting, Path(r.file).relative_to(made / r.setting).as_posix()): r for r in run.rows}
    assert set(rows) == {(s, f) for s, files in EXPECTED.items() for f in files}
    for (setting, relative), row in rows.items():
        prompt, source, seed = EXPECTED[setting][relative]
        assert (row.prompt, row.source, row.seed) == (prompt, source, seed)
        assert row.file == str(made / setting / relative)  # the path as given
    # 1. each score from transformers' own CLIP on the file; the Chinese prompt by the Chinese CLIP
    files, prompts = [r.file for r in rows.values()], [RED, BLUE, ZH]
    reference = {name: reference_cosine(models[name], files, prompts) for name in ("clip", "zh", "pick")}
    cosine = {}
    for i, (key, row) in enumerate(rows.items()):
        j = prompts.index(row.prompt)
        cos = reference["zh" if row.prompt == ZH else "clip"][0][i, j]
        pick, scale = reference["pick"][0][i, j], reference["pick"][1]
        np.testing.assert_allclose(row.scores["clip"], clip_score(cos), atol=1e-3)
        np.testing.assert_allclose(row.scores["pickscore"], scale * pick, atol=1e-3)
        cosine[key] = cos
    assert rows[("tool_a", "clipdemo_zh.png")].scorer == str(models["zh"])
    # 2. ranks: best cosine first among one prompt's images, within each PATH and across both
    for prompt in (RED, BLUE):
        for setting in (*EXPECTED, None):
            keys = [k for k, r in rows.items() if r.prompt == prompt and setting in (None, k[0])]
            rank_of = (lambda k: rows[k].rank) if setting else (lambda k: rows[k].rank_all)
            assert sorted(map(rank_of, keys)) == list(range(1, len(keys) + 1)), (prompt, setting)
            assert sorted(keys, key=rank_of) == sorted(keys, key=lambda k: -cosine[k]), (prompt, setting)
    winners = sorted(r.rank_all for r in rows.values() if r.prompt == RED and r.rank == 1)
    assert len(winners) == 2 and winners[0] == 1 and winners[1] > 1  # each PATH's best; one of them is 2nd or lower overall
    # 3. the files: rows with their ranks, and the bench summary with one setting per PATH
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert lines == [r.as_json() for r in run.rows] and {"rank", "rank_all"} <= set(lines[0])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    by_name = {s["name"]: s for s in summary["settings"]}
    assert {n: s["n_images"] for n, s in by_name.items()} == {"tool_a": 8, "tool_b": 2}
    mean_a = np.mean([r.scores["clip"] for r in run.rows if r.setting == "tool_a"])
    assert by_name["tool_a"]["mean"]["clip"] == pytest.approx(mean_a)  # no image lost to a shared (prompt, seed)
    assert (tmp_path / "out" / "report.md").exists()
    assert "prompts.csv: 1 row(s) match no image: gone.png." in run.notices


# -- bad input --------------------------------------------------------------------------------------
def bad_inputs(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("nothing to score")
    save_with_text(root / "unprompted" / "one.png", 1)
    save_with_text(root / "unprompted" / "two.png", 2)
    (root / "broken").mkdir()
    (root / "broken" / "x.png").write_bytes(b"not a png")
    save_with_text(root / "ok" / "plain.png", 3)
    (root / "bad.csv").write_text("name;text\nplain.png;a cat\n")
    return {"no images": (["empty"], ["No images (.png, .jpg, .jpeg, .webp) under", "empty."]),
            "no prompt": (["unprompted"], ["2 image(s) have no prompt", "one.png; ", "two.png."]),
            "unreadable": (["broken"], ["x.png: not a readable image"]),
            "malformed csv": (["ok", "--prompts", "bad.csv"], ["bad.csv: the first row must name the columns"]),
            "missing": (["nowhere"], ["nowhere: no such file or folder"])}


def test_bad_input_exits_2_with_one_line(tmp_path, models, capsys):
    from clipdemo.cli.main import main

    for case, (args, messages) in bad_inputs(tmp_path).items():
        argv = ["score", *[str(tmp_path / a) if not a.startswith("--") else a for a in args],
                "--out", str(tmp_path / "out"), "--clip-model", str(models["clip"]), "--dtype", "fp32"]
        assert main(argv) == 2, case
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("clipdemo score: error: "), (case, err)
        assert all(m in err for m in messages), (case, err)
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_skip_unprompted_scores_the_rest_with_a_note(studio, made, tmp_path):
    save_with_text(tmp_path / "mixed" / "bare.png", 1)
    save_with_text(tmp_path / "mixed" / "a.png", 2, parameters=a1111_parameters(RED, 3))
    run = studio.score_images([str(tmp_path / "mixed")], skip_unprompted=True)
    assert [Path(r.file).name for r in run.rows] == ["a.png"] and run.skipped == [str(tmp_path / "mixed" / "bare.png")]
    assert any("bare.png" in n and "skipped" in n for n in run.notices)


# -- the command line, in one process and in two -------------------------------------------------
def test_accelerate_two_processes_give_the_rows_of_one(made, models, tmp_path):
    common = ["-m", "clipdemo", "score", str(made / "tool_a"), str(made / "tool_b"), "--prompts",
              str(made / "prompts.csv"), "--json", "--clip-model", str(models["clip"]), "--zh-clip-model",
              str(models["zh"]), "--pickscore", "off", "--dtype", "fp32"]
    single, double = run_one_and_two(common, tmp_path)
    assert "2 processes shared the 10 images" in double.stderr and "processes shared" not in single.stderr
    one = (tmp_path / "one" / "results.jsonl").read_text()
    assert one == (tmp_path / "two" / "results.jsonl").read_text()
    printed = json.loads(single.stdout)
    assert printed == [json.loads(line) for line in one.splitlines()] and len(printed) == 10
    assert printed == json.loads(double.stdout)  # only the main process prints
    assert {r["source"] for r in printed} == {"clipdemo", "a1111", "comfyui", "prompts-file"}
