"""Scoring 8-bit tensors on their device equals the CLIP processor on the PNG the same pixels make."""

import numpy as np
import pytest
import torch
from PIL import Image

from clipdemo.config import DEMO_MODELS_DIR
from tests.clip_reference import reference_cosine


@pytest.mark.parametrize("size, to", [((96, 64), (336, 224)), ((512, 384), (298, 224)), ((9, 7), (288, 224))])
def test_the_torch_resize_is_pils_bit_for_bit(size, to):
    from clipdemo.scoring import _resize_as_pil

    noise = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected = np.array(Image.fromarray(noise).resize(to, Image.BICUBIC))
    got = _resize_as_pil(torch.from_numpy(noise).permute(2, 0, 1)[None].double(), (to[1], to[0]))
    assert np.array_equal(got[0].permute(1, 2, 0).numpy().astype(np.uint8), expected)


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


def test_the_demo_generate_scores_exactly_the_pixels_its_pngs_hold(tmp_path):
    """The demo CLIP takes the generator's 64×64 as it is (no resize), so the device path and transformers on
    the PNG differ only by float rounding: a tight bound that scoring the unrounded decoder output would miss."""
    import json

    from clipdemo import Studio, resolve_settings
    from clipdemo.generation import GenerationRequest

    studio = Studio(resolve_settings(preset="demo", moderation="off"), allow_fallback=False)
    prompt = "a dog wearing glasses"
    studio.generate(GenerationRequest(prompt, "", 4, 8, 4.0, 64, 64, 5), out_dir=tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    files = [tmp_path / entry["file"] for entry in data["images"]]
    expected, _ = reference_cosine(DEMO_MODELS_DIR / "demo-clip", files, [prompt])
    got = np.array([entry["clip_score"] for entry in data["images"]]) / 100
    assert np.abs(got - expected[:, 0]).max() < 2e-6


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_generate_scores_on_the_device_as_transformers_on_the_written_pngs(tiny_sd_dir, tiny_clip_dir, tmp_path,
                                                                             dtype):
    """The whole path with tiny models, non-square so that the CLIP resizes and crops: the manifest's scores
    against transformers' fp32 CLIPModel on the PNGs that exist when generate returns."""
    import json

    from clipdemo import Studio, resolve_settings
    from clipdemo.generation import GenerationRequest
    from tests.clip_reference import clip_score

    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype=dtype,
                                     pick_model="none", moderation="off"), allow_fallback=False)
    request = GenerationRequest("a dog wearing glasses", "", 3, 2, 2.0, 96, 64, 21)
    result = studio.generate(request, out_dir=tmp_path / "run", archive=tmp_path / "run.zip")
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())
    files = [tmp_path / "run" / entry["file"] for entry in data["images"]]
    expected = clip_score(reference_cosine(tiny_clip_dir, files, ["a dog wearing glasses"])[0][:, 0])
    got = np.array([entry["clip_score"] for entry in data["images"]])
    assert np.abs(got - expected).max() < 1e-3  # float rounding; the bound is 0.05
    assert list(expected) == sorted(expected, reverse=True)  # best first on the files too
    assert result.files.images == files and (tmp_path / "run.zip").stat().st_size > 0
