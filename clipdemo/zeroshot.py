"""Zero-shot classification: compare each image with one text per label, softmax over labels.

probs = softmax(logit_scale * cos(image, "template with label")), as in the CLIP paper. With several
templates per label, the label's text embedding is the renormalised mean of its normalised template
embeddings (the CLIP prompt-ensembling recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from .errors import InputError
from .scoring import ClipScorer
from .text import DEFAULT_TEMPLATE, check_template, parse_labels


@dataclass(frozen=True)
class Prediction:
    label: str
    prob: float


@dataclass
class Classification:
    name: str  # the image's file name, or "image 1", ...
    predictions: list[Prediction]  # sorted by prob, descending

    @property
    def top(self) -> Prediction:
        return self.predictions[0]


def label_embeddings(scorer: ClipScorer, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """One normalised row per label: the template-ensemble mean (a single template is the trivial case)."""
    texts = [template.format(label) for label in labels for template in templates]
    per_text = scorer.embed_texts(texts).view(len(labels), len(templates), -1)
    mean = per_text.mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


def label_probabilities(
    scorer: ClipScorer, images: Sequence[Image.Image], labels: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """(n_images, n_labels) softmax probabilities."""
    logits = scorer.logit_scale * scorer.embed_images(images) @ label_embeddings(scorer, labels, templates).T
    return logits.softmax(dim=-1)


def classify(
    scorer: ClipScorer,
    images: Sequence[Image.Image],
    labels: str | Sequence[str],
    template: str = DEFAULT_TEMPLATE,
    top_k: int | None = None,
    names: Sequence[str] | None = None,
) -> list[Classification]:
    if not images:
        raise InputError("Give at least one image to classify.")
    labels = parse_labels(labels if isinstance(labels, str) else list(labels))
    template = check_template(template)
    if top_k is not None and top_k < 1:
        raise InputError(f"top-k must be at least 1 (got {top_k}).")
    probs = label_probabilities(scorer, images, labels, [template])
    names = list(names) if names else [f"image {i + 1}" for i in range(len(images))]
    results = []
    for name, row in zip(names, probs):
        order = row.argsort(descending=True)[: top_k or len(labels)]
        results.append(Classification(name, [Prediction(labels[i], float(row[i])) for i in order]))
    return results
