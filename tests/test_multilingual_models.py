"""The tiny multilingual models save, reload offline through the Auto classes, and run."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.multilingual_models import (
    image_embedding,
    save_tiny_altclip,
    save_tiny_chinese_clip,
    save_tiny_marian,
    save_tiny_pickscore,
    save_tiny_safety_checker,
)

torch.set_num_threads(1)
LOAD = dict(local_files_only=True, use_safetensors=True)


def solid_image(color=(200, 30, 30)):
    return Image.new("RGB", (224, 224), color)


def stripes_image():
    pixels = np.zeros((224, 224, 3), dtype=np.uint8)
    pixels[:, ::16] = 255
    pixels[::32, :, 2] = 255
    return Image.fromarray(pixels)


def clip_features(folder, texts):
    """Text and image features of a CLIP-like folder loaded the way the app loads it."""
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, **LOAD).eval()
    with torch.no_grad():
        text = model.get_text_features(**processor(text=texts, padding=True, return_tensors="pt"))
        image = model.get_image_features(**processor(images=[solid_image()], return_tensors="pt"))
    # transformers 5 returns an output object here, older versions a tensor.
    text = text if torch.is_tensor(text) else text.pooler_output
    image = image if torch.is_tensor(image) else image.pooler_output
    return processor, text, image


def test_chinese_clip(tmp_path):
    processor, text, image = clip_features(save_tiny_chinese_clip(tmp_path), ["一只戴眼镜的狗", "a photo of a dog"])
    assert text.shape == (2, 32) and image.shape == (1, 32)
    ids = processor.tokenizer("蔡徐坤 周淑怡 李佳琪 红色的圆形").input_ids
    assert processor.tokenizer.unk_token_id not in ids


def test_altclip(tmp_path):
    processor, text, image = clip_features(save_tiny_altclip(tmp_path), ["一张猫的照片", "a red circle"])
    assert text.shape == (2, 32) and image.shape == (1, 32)
    assert 200 <= len(processor.tokenizer) <= 300
    assert processor.tokenizer.unk_token_id not in processor.tokenizer("一只戴眼镜的狗").input_ids


@pytest.mark.filterwarnings("ignore:Recommended")  # MarianTokenizer asks for sacremoses
def test_marian(tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = save_tiny_marian(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, **LOAD).eval()
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.decoder_start_token_id == model.config.pad_token_id == tokenizer.pad_token_id
    output = model.generate(**tokenizer(["一只戴眼镜的狗"], return_tensors="pt"), max_new_tokens=8)
    assert output.shape[0] == 1 and output.shape[1] <= 9
    assert isinstance(tokenizer.batch_decode(output, skip_special_tokens=True)[0], str)


def test_pickscore(tmp_path):
    processor, text, image = clip_features(save_tiny_pickscore(tmp_path), ["a photo of a dog"])
    assert text.shape == (1, 32) and image.shape == (1, 32)
    assert len(processor.tokenizer) == 49408  # the real CLIP vocab, not an empty fallback


def test_safety_checker_flags_only_the_matching_image(tmp_path):
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    flagged, clean = solid_image(), stripes_image()
    plain = save_tiny_safety_checker(tmp_path / "plain")
    target, other = image_embedding(plain, flagged), image_embedding(plain, clean)
    similarity = float(target @ other)
    assert similarity < 0.99  # otherwise no threshold can separate them after diffusers rounds to 3 decimals

    # Concept 0 is the flagged image itself; cosine 1 beats the threshold, the other image's cosine does not.
    concepts, thresholds = torch.ones(17, 32), torch.ones(17)
    concepts[0], thresholds[0] = target, (1 + similarity) / 2
    folder = save_tiny_safety_checker(tmp_path / "tuned", concept_embeddings=concepts, thresholds=thresholds)
    assert torch.allclose(image_embedding(folder, flagged), target)  # same seed, same vision weights

    checker = StableDiffusionSafetyChecker.from_pretrained(folder, **LOAD).eval()
    processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
    pil_images = [flagged, clean]
    images = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in pil_images])
    clip_input = processor(images=pil_images, return_tensors="pt").pixel_values
    images, has_nsfw = checker(images=images, clip_input=clip_input)
    assert has_nsfw == [True, False]
    assert not images[0].any() and images[1].any()  # the flagged image is blacked out
