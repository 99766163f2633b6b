"""CLIP cosines computed straight from transformers' CLIPModel, to check clipdemo's scores against."""

from __future__ import annotations

import numpy as np
from PIL import Image


def reference_cosine(model_dir, images, texts) -> tuple[np.ndarray, float]:
    """(cosine, logit_scale) for image paths or PIL images against texts; rows are images, columns texts."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()  # full precision, whatever was saved
    processor = CLIPProcessor.from_pretrained(model_dir)
    pil = [im.convert("RGB") if isinstance(im, Image.Image) else Image.open(im).convert("RGB") for im in images]
    with torch.no_grad():
        pixels = processor(images=pil, return_tensors="pt")["pixel_values"]
        image = model.get_image_features(pixel_values=pixels).pooler_output
        text = model.get_text_features(**processor(text=list(texts), padding=True, return_tensors="pt")).pooler_output
        image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
        return (image @ text.T).numpy().astype(np.float64), float(model.logit_scale.exp())


def clip_score(cosine: np.ndarray) -> np.ndarray:
    return 100 * np.maximum(cosine, 0)


def softmax_probs(cosine: np.ndarray, logit_scale: float) -> np.ndarray:
    """Zero-shot probabilities over the columns: softmax(logit_scale · cos)."""
    logits = logit_scale * cosine
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
