"""CLIP embeddings and CLIPScore.

CLIPScore (Hessel et al. 2021, scale 100 as in torchmetrics) for one image and one text is

    clip_score = 100 * max(cos(E_image, E_text), 0)

computed per image. Ranking by softmax over a single prompt would always give 1.0, so it is never used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

CLIP_SCORE_SCALE = 100.0
TEXT_CACHE_SIZE = 256


def clip_score_from_cosine(cosine: torch.Tensor | np.ndarray | float):
    """100 * max(cos, 0), elementwise."""
    if isinstance(cosine, torch.Tensor):
        return CLIP_SCORE_SCALE * cosine.clamp(min=0)
    return CLIP_SCORE_SCALE * np.maximum(cosine, 0)


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def clip_pixel_values(images: torch.Tensor, image_processor: Any) -> torch.Tensor:
    """What a CLIP image processor makes of 8-bit images (N, 3, H, W, uint8), computed in torch where they are.

    The same steps as transformers' CLIPImageProcessor: resize the shortest edge (bicubic, antialiased, back
    to 8 bits as PIL gives), centre crop, rescale to [0, 1], normalise with the processor's mean and std.
    """
    p = image_processor
    x = images.float()
    if getattr(p, "do_resize", True) and p.size and "shortest_edge" in p.size:
        edge, (h, w) = p.size["shortest_edge"], x.shape[-2:]
        short, long = min(h, w), max(h, w)
        new_short, new_long = edge, int(edge * long / short)
        size = (new_long, new_short) if w <= h else (new_short, new_long)
        if size != (h, w):
            x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255)
    if getattr(p, "do_center_crop", True) and p.crop_size:
        ch, cw = p.crop_size["height"], p.crop_size["width"]
        top, left = (x.shape[-2] - ch) // 2, (x.shape[-1] - cw) // 2
        x = x[..., max(top, 0):max(top, 0) + ch, max(left, 0):max(left, 0) + cw]
    x = x * p.rescale_factor
    mean = torch.tensor(p.image_mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(p.image_std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


@dataclass
class ClipScorer:
    """A loaded CLIP-family model with normalised image/text embeddings and a bounded text cache."""

    model: Any
    processor: Any
    name: str
    max_text_tokens: int = 77

    def __post_init__(self) -> None:
        self._text_cache: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()
        self._cache_lock = threading.Lock()
        param = next(self.model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """L2-normalised image embeddings, float32, on the CPU, one row per image."""
        rows = []
        for start in range(0, len(images), batch_size):
            batch = self.processor(images=list(images[start : start + batch_size]), return_tensors="pt")
            pixels = batch["pixel_values"].to(self.device, self.dtype)
            rows.append(_features(self.model.get_image_features(pixel_values=pixels)).float().cpu())
        embeddings = torch.cat(rows)
        return embeddings / embeddings.norm(dim=-1, keepdim=True)

    @torch.inference_mode()
    def embed_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of 8-bit images (N, 3, H, W, uint8), preprocessed on their device."""
        pixels = clip_pixel_values(images.to(self.device), self.processor.image_processor).to(self.dtype)
        embeddings = _features(self.model.get_image_features(pixel_values=pixels)).float().cpu()
        return embeddings / embeddings.norm(dim=-1, keepdim=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    def is_truncated(self, text: str) -> bool:
        return self.count_tokens(text) > self.max_text_tokens

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings, float32, CPU. Cached: a label set is encoded once."""
        key = tuple(texts)
        with self._cache_lock:
            if key in self._text_cache:
                self._text_cache.move_to_end(key)
                return self._text_cache[key]
        embeddings = self._encode_texts(list(texts))
        with self._cache_lock:
            self._text_cache[key] = embeddings
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return embeddings

    @torch.inference_mode()
    def _encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        rows = []
        for start in range(0, len(texts), batch_size):
            # Pad to the longest text in the batch, not to 77: ten times faster for short labels.
            tokens = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_text_tokens,
                return_tensors="pt",
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items()}
            rows.append(_features(self.model.get_text_features(**tokens)).float().cpu())
        embeddings = torch.cat(rows)
        return embeddings / embeddings.norm(dim=-1, keepdim=True)

    def cosine(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity, rows are images and columns texts."""
        return self.embed_images(images) @ self.embed_texts(texts).T

    def clip_scores(self, images: Sequence[Image.Image], text: str) -> list[float]:
        """CLIPScore of each image against one text."""
        return clip_score_from_cosine(self.cosine(images, [text])[:, 0]).tolist()


@dataclass(frozen=True)
class ScoreKind:
    """One way of turning a CLIP-family model's image-text cosine into a score.

    Adding a CLIP-family scorer is one entry here plus a model setting: the model class, embeddings
    and ranking code are shared.
    """

    key: str  # the name in manifests: images[i].scores[key]
    label: str  # the short name in captions
    formula: str  # for docs and tooltips

    def value(self, cosine: torch.Tensor, logit_scale: float) -> torch.Tensor:
        if self.key == "clip":
            return clip_score_from_cosine(cosine)
        return logit_scale * cosine  # PickScore: the fine-tuned model's own logit


SCORE_KINDS = {
    "clip": ScoreKind("clip", "CLIP", "100 * max(cos(image, prompt), 0)"),
    "pickscore": ScoreKind("pickscore", "Pick", "logit_scale * cos(image, prompt), PickScore_v1 weights"),
}

