"""CLIP embeddings and CLIPScore.

CLIPScore (Hessel et al. 2021, scale 100 as in torchmetrics) for one image and one text is

    clip_score = 100 * max(cos(E_image, E_text), 0)

computed per image. Ranking by softmax over a single prompt would always give 1.0, so it is never used.
"""

from __future__ import annotations

import functools
import math
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


BICUBIC = 3  # PIL's and transformers' code for bicubic resampling


def resize_target(image_processor: Any, h: int, w: int) -> tuple[int, int] | None:
    """The (height, width) a CLIP-family image processor resizes an h×w image to, or None for no resize."""
    p = image_processor
    size = p.size if getattr(p, "do_resize", True) else None
    if not size:
        return None
    if "shortest_edge" in size:
        edge, short, long = size["shortest_edge"], min(h, w), max(h, w)
        new_short, new_long = edge, int(edge * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)
    return size["height"], size["width"]


def preprocesses_in_torch(image_processor: Any) -> bool:
    """Whether clip_pixel_values reproduces this processor: bicubic resize by shortest edge or to a fixed size."""
    p = image_processor
    size = getattr(p, "size", None) or {}
    return (int(getattr(p, "resample", BICUBIC)) == BICUBIC and hasattr(p, "image_mean")
            and ("shortest_edge" in size or {"height", "width"} <= set(size)))


def clip_pixel_values(images: torch.Tensor, image_processor: Any) -> torch.Tensor:
    """What a CLIP image processor makes of 8-bit images (N, 3, H, W, uint8), computed in torch where they are.

    The same steps as transformers' CLIPImageProcessor: resize (PIL's bicubic, reproduced exactly), centre
    crop, rescale to [0, 1], normalise with the processor's mean and std.
    """
    p = image_processor
    x = images.double()
    size = resize_target(p, *x.shape[-2:])
    if size is not None and size != tuple(x.shape[-2:]):
        x = _resize_as_pil(x, size)
    x = x.float()
    if getattr(p, "do_center_crop", True) and getattr(p, "crop_size", None):
        ch, cw = p.crop_size["height"], p.crop_size["width"]
        top, left = (x.shape[-2] - ch) // 2, (x.shape[-1] - cw) // 2
        x = x[..., max(top, 0):max(top, 0) + ch, max(left, 0):max(left, 0) + cw]
    x = x * p.rescale_factor
    mean = torch.tensor(p.image_mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(p.image_std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def _resize_as_pil(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's 8-bit bicubic resize, bit for bit: width first, back to 8 bits, then height."""
    def to_8bit(y: torch.Tensor) -> torch.Tensor:  # PIL adds half and shifts its fixed point away
        return torch.floor((y + 2.0 ** (PIL_PRECISION_BITS - 1)) / 2.0 ** PIL_PRECISION_BITS).clamp(0, 255)

    if size[1] != x.shape[-1]:
        x = to_8bit(x @ _pil_bicubic_weights(x.shape[-1], size[1]).to(x.device).T)
    if size[0] != x.shape[-2]:
        x = to_8bit(_pil_bicubic_weights(x.shape[-2], size[0]).to(x.device) @ x)
    return x


PIL_PRECISION_BITS = 22  # the fixed point of PIL's 8-bit resampling


@functools.lru_cache(maxsize=64)
def _pil_bicubic_weights(in_size: int, out_size: int) -> torch.Tensor:
    """The (out, in) matrix of PIL's bicubic coefficients (a = -0.5), in its fixed point, as float64."""
    def bicubic(t: float) -> float:
        t = abs(t)
        if t < 1.0:
            return (1.5 * t - 2.5) * t * t + 1
        return (((t - 5) * t + 8) * t - 4) * -0.5 if t < 2.0 else 0.0

    scale = in_size / out_size
    filter_scale = max(scale, 1.0)  # downscaling widens the kernel: antialiasing
    support = 2.0 * filter_scale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        low, high = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        taps = [bicubic((j - center + 0.5) / filter_scale) for j in range(low, high)]
        total = sum(taps)
        for j, w in zip(range(low, high), taps):
            w = w / total if total else w
            weights[i, j] = math.trunc(w * 2 ** PIL_PRECISION_BITS + (0.5 if w >= 0 else -0.5))
    return weights


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
        batches = (self.processor(images=list(images[start : start + batch_size]), return_tensors="pt")
                   for start in range(0, len(images), batch_size))
        return torch.cat([self.embed_pixel_values(batch["pixel_values"]) for batch in batches])

    @torch.inference_mode()
    def embed_pixels(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """L2-normalised embeddings of 8-bit images (N, 3, H, W, uint8), preprocessed on their device."""
        processor = self.processor.image_processor
        return torch.cat([self.embed_pixel_values(clip_pixel_values(images[start : start + batch_size].to(self.device),
                                                                    processor))
                          for start in range(0, len(images), batch_size)])

    @torch.inference_mode()
    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower on preprocessed pixels: L2-normalised float32 embeddings on the CPU. Every image
        embedding in clipdemo comes through here."""
        features = _features(self.model.get_image_features(pixel_values=pixel_values.to(self.device, self.dtype)))
        features = features.float().cpu()
        return features / features.norm(dim=-1, keepdim=True)

    def embed(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """Embeddings of PIL images, or of an 8-bit batch, scored on its device when the processor allows."""
        if not isinstance(images, torch.Tensor):
            return self.embed_images(images)
        if preprocesses_in_torch(self.processor.image_processor):
            return self.embed_pixels(images)
        return self.embed_images([Image.fromarray(x.permute(1, 2, 0).cpu().numpy()) for x in images])

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

    def cosine(self, images: Sequence[Image.Image] | torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity, rows are images (PIL, or an 8-bit batch) and columns texts."""
        return self.embed(images) @ self.embed_texts(texts).T

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

