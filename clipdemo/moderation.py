"""Content moderation with CLIP: flag images, blur them with a notice, never return black squares.

Two checkers share one result type:
  - SafetyChecker: diffusers' StableDiffusionSafetyChecker weights (CLIP vision + fixed concept
    embeddings). score_c = cos(image, concept_c) - weight_c, as diffusers computes it; flagged when the
    highest score exceeds the threshold (default 0.0; lower it to be stricter).
  - ConceptChecker: CLIP zero-shot over named concepts plus neutral descriptions. score_c is the
    softmax probability of concept c; flagged when the highest exceeds the threshold (default 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFilter

from .scoring import ClipScorer

MODERATION_MODES = ("auto", "on", "off")
DEFAULT_SAFETY_MODEL = "CompVis/stable-diffusion-safety-checker"
DEFAULT_CONCEPTS = ["explicit nudity", "sexual content", "graphic violence", "blood and gore"]
NEUTRAL_DESCRIPTIONS = ["a photo", "an illustration", "a landscape", "a person", "an animal", "an everyday object"]


@dataclass
class Verdict:
    flagged: bool
    scores: dict[str, float]  # concept -> score
    threshold: float
    checker: str

    @property
    def top(self) -> tuple[str, float]:
        concept = max(self.scores, key=self.scores.get)
        return concept, self.scores[concept]

    def as_json(self) -> dict:
        concept, score = self.top
        return {"flagged": self.flagged, "checker": self.checker, "threshold": self.threshold,
                "top_concept": concept, "top_score": score}


@dataclass
class SafetyChecker:
    model: Any  # StableDiffusionSafetyChecker
    processor: Any  # CLIPImageProcessor
    name: str
    threshold: float = 0.0

    @torch.inference_mode()
    def check(self, images: Sequence[Image.Image]) -> list[Verdict]:
        param = next(self.model.parameters())
        pixels = self.processor(images=list(images), return_tensors="pt").pixel_values.to(param.device, param.dtype)
        embeds = self.model.visual_projection(self.model.vision_model(pixels)[1]).float()
        embeds = embeds / embeds.norm(dim=-1, keepdim=True)

        def cosine(concepts: torch.Tensor) -> torch.Tensor:
            concepts = concepts.float()
            return embeds @ (concepts / concepts.norm(dim=-1, keepdim=True)).T

        special = cosine(self.model.special_care_embeds) - self.model.special_care_embeds_weights.float()
        general = cosine(self.model.concept_embeds) - self.model.concept_embeds_weights.float()
        verdicts = []
        for i in range(len(images)):
            # As in diffusers: a "special care" hit makes every concept slightly stricter.
            adjustment = 0.01 if bool((special[i] > 0).any()) else 0.0
            scores = {f"concept {k}": float(v + adjustment) for k, v in enumerate(general[i])}
            scores |= {f"special {k}": float(v) for k, v in enumerate(special[i])}
            verdicts.append(Verdict(max(scores.values()) > self.threshold, scores, self.threshold, self.name))
        return verdicts


@dataclass
class ConceptChecker:
    scorer: ClipScorer
    concepts: list[str]
    neutral: list[str] = field(default_factory=lambda: list(NEUTRAL_DESCRIPTIONS))
    threshold: float = 0.5

    @property
    def name(self) -> str:
        from .loading import display_name

        return f"CLIP concepts ({display_name(self.scorer.name)})"

    def check(self, images: Sequence[Image.Image]) -> list[Verdict]:
        texts = self.concepts + self.neutral
        probs = (self.scorer.logit_scale * self.scorer.cosine(images, texts)).softmax(dim=-1)
        verdicts = []
        for row in probs:
            scores = {c: float(p) for c, p in zip(self.concepts, row[: len(self.concepts)])}
            verdicts.append(Verdict(max(scores.values()) > self.threshold, scores, self.threshold, self.name))
        return verdicts


def blur(image: Image.Image, verdict: Verdict) -> Image.Image:
    """A strong blur with a banner naming the concept and its score: the user sees what happened."""
    radius = max(8, min(image.size) // 12)
    blurred = image.filter(ImageFilter.GaussianBlur(radius))
    concept, score = verdict.top
    draw = ImageDraw.Draw(blurred)
    banner = f"flagged: {concept} ({score:.2f})"
    height = max(10, image.size[1] // 8)
    draw.rectangle([0, 0, image.size[0], height], fill=(40, 40, 40))
    draw.text((3, max(0, height // 2 - 5)), banner, fill=(255, 255, 255))
    return blurred
