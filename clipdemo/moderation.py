"""Content moderation with CLIP: flag images, blur them with a notice, never return black squares.

Two checkers share one result type:
  - SafetyChecker: diffusers' StableDiffusionSafetyChecker weights (CLIP vision + fixed concept
    embeddings). score_c = cos(image, concept_c) - weight_c, as diffusers computes it; flagged when the
    highest score exceeds the threshold (default 0.0; lower it to be stricter).
  - ConceptChecker: CLIP zero-shot over named concepts plus neutral descriptions. score_c is the
    softmax probability of concept c; flagged when the highest exceeds the threshold (default 0.5).

The policy lives here too: which checker a studio uses (`moderator`), and what happens to a flagged
ranked image (`moderate_ranked`: blurred, with a notice).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFilter

from .config import DEFAULT_SAFETY_MODEL, Settings
from .errors import ModelLoadError
from .text import display_name
from .scoring import ClipScorer

if TYPE_CHECKING:
    from .models import ModelRegistry

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


def default_checker(settings: Settings, device: torch.device) -> Settings:
    """On the CPU the concept check, unless the user named a checker; elsewhere the settings as they are."""
    if device.type == "cpu" and settings.safety_model == DEFAULT_SAFETY_MODEL and not settings.explicit("safety_model"):
        # CompVis' ViT-L/14 checker is a large share of a CPU run; the concept check reuses the loaded CLIP.
        return replace(settings, safety_model="concepts")
    return settings


def moderator(models: ModelRegistry) -> tuple[SafetyChecker | ConceptChecker | None, list[str]]:
    """The configured checker, or None with a notice. Raises when moderation is "on" and none loads."""
    s = models.settings
    if s.moderation == "off":
        return None, []
    try:
        if s.safety_model == "concepts":
            checker = ConceptChecker(models.scorer(), list(s.moderation_concepts) or list(DEFAULT_CONCEPTS))
            if s.moderation_neutral:
                checker.neutral = list(s.moderation_neutral)
        else:
            checker = SafetyChecker(*models.safety_checker(), name=display_name(s.safety_model))
        if s.moderation_threshold is not None:
            checker.threshold = s.moderation_threshold
        return checker, []
    except ModelLoadError as exc:
        if s.moderation == "on" or s.explicit("safety_model"):
            raise ModelLoadError(f"Moderation is on but no checker could be loaded, so no image is shown. {exc}") from exc
        return None, [f"⚠️ Moderation unavailable: images are shown unchecked. {exc}"]


def moderate(models: ModelRegistry, images: Sequence[Image.Image]) -> tuple[list[Verdict], str]:
    """Verdicts for images (the Moderate tab), and the checker's name."""
    checker, notices = moderator(models)
    if checker is None:
        raise ModelLoadError(notices[0] if notices else "Moderation is off on this server.")
    return checker.check(list(images)), checker.name


def moderate_ranked(ranked: list, checker: SafetyChecker | ConceptChecker | None) -> list[str]:
    """Check every ranked image; blur the flagged ones in place. Returns notices for the user."""
    if checker is None or not ranked:
        return []
    verdicts = checker.check([item.image for item in ranked])
    for item, verdict in zip(ranked, verdicts):
        item.moderation = verdict.as_json()
        if verdict.flagged:
            item.image = blur(item.image, verdict)
    flagged = [v for v in verdicts if v.flagged]
    if not flagged:
        return []
    concept, score = max((v.top for v in flagged), key=lambda t: t[1])
    return [f"{len(flagged)} image(s) flagged by {checker.name} ({concept}, score {score:.2f} over "
            f"threshold {checker.threshold:g}) and blurred."]
