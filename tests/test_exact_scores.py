"""CLIPScores are exact in every dtype: the CLIPs that give them run in fp32 even when the run is bf16.

Checked on the CPU with `--dtype bf16` (what `auto` picks on a CPU with native bf16) against transformers'
fp32 CLIPModel on the same folder and the images as written to disk: within 5e-4 in cosine (0.05 points).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipdemo.config import DEMO_MODELS_DIR
from tests.clip_reference import clip_score, reference_cosine

COSINE_BOUND = 5e-4  # 0.05 CLIPScore points


def pictures(n=3, size=(72, 56)):
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def bf16_studio(tiny_clip_dir, tiny_sd_dir):
    from clipdemo import Studio, resolve_settings

    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="bf16"),
                  allow_fallback=False)


def test_similarity_in_bf16_equals_fp32_transformers(bf16_studio, tiny_clip_dir):
    texts = ["a dog wearing glasses", "a red circle", "a cat in a hat"]
    images = pictures()
    result = bf16_studio.similarity(images, texts)
    expected, _ = reference_cosine(tiny_clip_dir, images, texts)
    assert bf16_studio.dtype == torch.bfloat16  # the run itself is bf16
    assert np.abs(np.asarray(result.cosine, dtype=np.float64) - expected).max() < COSINE_BOUND


def test_classify_in_bf16_ranks_labels_as_fp32_transformers(bf16_studio, tiny_clip_dir):
    labels = ["dog", "cat", "bird", "fish"]
    images = pictures(2)
    result = bf16_studio.classify(images, labels, template="a photo of a {}.")
    cosine, scale = reference_cosine(tiny_clip_dir, images, [f"a photo of a {label}." for label in labels])
    logits = scale * cosine
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for row, image in zip(probs, result.images):
        got = {p.label: p.prob for p in image.predictions}
        assert max(abs(got[label] - row[i]) for i, label in enumerate(labels)) < 1e-3


def test_demo_generate_in_bf16_scores_its_pngs_as_fp32_transformers(tmp_path):
    """The manifest's scores against an fp32 rescoring of the saved PNGs (non-square, unequal seeds)."""
    from clipdemo import Studio, resolve_settings
    from clipdemo.generation import GenerationRequest
    studio = Studio(resolve_settings(preset="demo", dtype="bf16", moderation="off"), allow_fallback=False)
    request = GenerationRequest("a red circle", "", 3, 8, 4.0, 64, 64, 31)
    studio.generate(request, out_dir=tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    files = [tmp_path / entry["file"] for entry in data["images"]]
    expected = clip_score(reference_cosine(DEMO_MODELS_DIR / "demo-clip", files, ["a red circle"])[0][:, 0])
    got = np.array([entry["clip_score"] for entry in data["images"]])
    assert np.abs(got - expected).max() < 100 * COSINE_BOUND
    assert data["score_dtypes"]["clip"] == "float32"  # and the manifest says so
