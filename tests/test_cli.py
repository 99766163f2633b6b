import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdemo.cli import main
from tests.clip_reference import clip_score, reference_cosine, softmax_probs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for i in range(2):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "clipdemo", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_generate_writes_manifest_exactly_as_specified(tiny_sd_dir, tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("generate", "a dog wearing glasses", "-n", "3", "--seed", "5", "--steps", "2", "--guidance", "1.5",
                   "--width", "64", "--height", "72", "--negative", "blurry", "--out", str(out), "--json",
                   "--sd-model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir), "--dtype", "fp32")
    assert proc.returncode == 0, proc.stderr
    assert "torchvision" not in proc.stderr  # transformers' advice to install it is dropped (cli/main.py)
    printed = json.loads(proc.stdout)
    written = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert printed == written
    assert {"prompt", "negative_prompt", "sd_model", "clip_model", "steps", "guidance", "width", "height",
            "images"} <= set(written)
    assert (written["prompt"], written["negative_prompt"], written["steps"], written["guidance"]) == (
        "a dog wearing glasses", "blurry", 2, 1.5)
    assert (written["width"], written["height"]) == (64, 72)
    assert written["sd_model"] == str(tiny_sd_dir) and written["clip_model"] == str(tiny_clip_dir)
    assert written["models"]["clip"] == {"model": tiny_clip_dir.name, "weights": "safetensors"}
    images = written["images"]
    assert [e["rank"] for e in images] == [1, 2, 3]
    assert sorted(e["seed"] for e in images) == [5, 6, 7]
    scores = [e["clip_score"] for e in images]
    assert scores == sorted(scores, reverse=True)
    cosine, _ = reference_cosine(tiny_clip_dir, [out / e["file"] for e in images], ["a dog wearing glasses"])
    np.testing.assert_allclose(scores, clip_score(cosine[:, 0]), atol=1e-3)  # CLIPScore of the PNG as written
    for entry in images:
        assert set(entry) == {"rank", "seed", "clip_score", "scores", "file", "moderation"}
        assert entry["scores"] == {"clip": entry["clip_score"]}
        assert entry["moderation"]["checker"] == f"CLIP concepts ({tiny_clip_dir.name})"  # the CPU default
        assert not Path(entry["file"]).is_absolute()
        assert Image.open(out / entry["file"]).size == (64, 72)


def test_a_helper_that_cannot_load_is_one_note_and_no_library_warning(tiny_sd_dir, tiny_clip_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HOME=str(tmp_path / "hf"))  # an empty cache, offline
    proc = subprocess.run([sys.executable, "-m", "clipdemo", "generate", "a cat", "-n", "1", "--steps", "1",
                           "--width", "64", "--height", "64", "--decoder", "taesd", "--out", str(tmp_path / "run"),
                           "--sd-model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir), "--dtype", "fp32"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "note: The fast TAESD decoder could not be loaded" in proc.stderr
    assert "madebyollin/taesd is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in proc.stderr
    assert "Warning" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr

def test_generate_bad_input_exits_2_with_one_line(tiny_sd_dir, tiny_clip_dir, tmp_path, capsys):
    code = main(["generate", "  ", "--out", str(tmp_path), "--sd-model", str(tiny_sd_dir),
                 "--clip-model", str(tiny_clip_dir)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "prompt is empty" in err


def test_explicit_model_that_cannot_load_exits_2_and_is_not_replaced(tmp_path):
    proc = run_cli("classify", str(tmp_path / "x.png"), "--labels", "a,b", "--clip-model", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "x.png" in proc.stderr or "missing" in proc.stderr


def test_classify_json(tiny_clip_dir, image_files, capsys):
    code = main(["classify", *image_files, "--labels", "cat, dog, bird", "--json", "--clip-model", str(tiny_clip_dir),
                 "--dtype", "fp32"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["image"] for d in data] == image_files
    labels = ["cat", "dog", "bird"]
    cosine, logit_scale = reference_cosine(tiny_clip_dir, image_files, [f"a photo of a {x}." for x in labels])
    expected = softmax_probs(cosine, logit_scale)
    for entry, row in zip(data, expected):
        probs = [p["prob"] for p in entry["predictions"]]
        assert {p["label"] for p in entry["predictions"]} == set(labels)
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)
        for p in entry["predictions"]:
            assert p["prob"] == pytest.approx(row[labels.index(p["label"])], abs=1e-4)
    main(["classify", *image_files, "--labels", "cat, dog, bird", "--top-k", "1", "--json",
          "--clip-model", str(tiny_clip_dir)])
    top = [e["predictions"] for e in json.loads(capsys.readouterr().out)]
    assert [[p["label"] for p in t] for t in top] == [[labels[int(np.argmax(row))]] for row in expected]


def test_similarity_json(tiny_clip_dir, image_files, capsys):
    code = main(["similarity", *image_files, "--texts", "a dog", "a cat", "一只狗", "--json",
                 "--clip-model", str(tiny_clip_dir), "--dtype", "fp32"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == image_files and data["texts"] == ["a dog", "a cat", "一只狗"]
    assert data["scorer"] == str(tiny_clip_dir)  # the default Chinese scorer is offline: English CLIP scores all
    expected, _ = reference_cosine(tiny_clip_dir, image_files, data["texts"])
    np.testing.assert_allclose(data["cosine"], expected, atol=1e-4)
    np.testing.assert_allclose(data["clip_score"], clip_score(expected), atol=1e-2)


def test_unreadable_image_exits_2(tiny_clip_dir, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code = main(["classify", str(bad), "--labels", "a,b", "--clip-model", str(tiny_clip_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "notes.png" in err and "not a readable image" in err
