"""Scoring 8-bit tensors on their device equals the CLIP processor on the PNG the same pixels make."""

import numpy as np
import pytest
import torch
from PIL import Image

from clipdemo.config import DEMO_MODELS_DIR
from tests.clip_reference import reference_cosine


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (512, 384)])
def test_torch_preprocessing_scores_as_the_processor_on_the_png(studio, tiny_clip_dir, tmp_path, size):
    """The tiny CLIP resizes to 224 (down from 512, up from 64) and crops; the cosine against transformers'
    fp32 CLIPModel on the saved PNG stays within 5e-4 (0.05 CLIPScore points)."""
    rng = np.random.default_rng(4)
    smooth = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(smooth).resize(size, Image.BICUBIC)  # image-like: smooth, not pure noise
    picture.save(tmp_path / "x.png")
    pixels = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].contiguous()
    scorer = studio.scorer()
    texts = ["a red circle", "a dog wearing glasses"]
    got = (scorer.embed_pixels(pixels) @ scorer.embed_texts(texts).T).numpy()
    expected, _ = reference_cosine(tiny_clip_dir, [tmp_path / "x.png"], texts)
    assert np.abs(got - expected).max() < 5e-4


def test_the_demo_clip_on_its_own_size_needs_no_resize(tmp_path):
    from clipdemo import Studio, resolve_settings
    from demo_world import animals

    scorer = Studio(resolve_settings(preset="demo")).scorer()
    picture = animals.sample(5, 1)[0].image
    picture.save(tmp_path / "dog.png")
    pixels = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].contiguous()
    got = (scorer.embed_pixels(pixels) @ scorer.embed_texts(["a dog wearing glasses"]).T).numpy()
    expected, _ = reference_cosine(DEMO_MODELS_DIR / "demo-clip", [tmp_path / "dog.png"], ["a dog wearing glasses"])
    assert np.abs(got - expected).max() < 5e-4
