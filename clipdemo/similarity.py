"""The image x text similarity matrix from the CLIP paper, with the CLIPScore of each pair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from .errors import InputError
from .scoring import ClipScorer, clip_score_from_cosine
from .text import check_texts


@dataclass
class SimilarityResult:
    image_names: list[str]
    texts: list[str]
    cosine: np.ndarray  # (n_images, n_texts)
    scorer: str = ""  # the CLIP model that scored
    notices: list[str] = field(default_factory=list)

    @property
    def clip_score(self) -> np.ndarray:
        return clip_score_from_cosine(self.cosine)


def similarity(
    scorer: ClipScorer, images: Sequence[Image.Image], texts: Sequence[str], names: Sequence[str] | None = None
) -> SimilarityResult:
    if not images:
        raise InputError("Give at least one image.")
    texts = check_texts(list(texts))
    cosine = scorer.cosine(images, texts).numpy().astype(np.float64)
    names = list(names) if names else [f"image {i + 1}" for i in range(len(images))]
    return SimilarityResult(names, texts, cosine)
