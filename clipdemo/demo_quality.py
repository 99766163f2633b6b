"""Quality gates of the demo models, measured on held-out renders of the shapes world.

Two questions, both answered with the product's own code paths (Studio.classify, Studio.generate):
  1. Zero-shot: does the demo CLIP name the colour and shape of an unseen image (30 classes)?
  2. Re-ranking: does CLIP's top-1 of 4 candidates show the prompt's colour more often than a random
     candidate? The colour is judged without learning (world.judge_colour).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import world
from .generation import GenerationRequest
from .studio import Studio

HELD_OUT_SEED = 10_000  # training used seeds 1-3; these images were never seen
ZH_TEMPLATE = "一张{}的照片"
EN_TEMPLATE = "a photo of a {}."


@dataclass
class QualityReport:
    zero_shot_top1_en: float
    zero_shot_top1_zh: float
    n_zero_shot_images: int
    colour_match_random_en: float  # mean over all candidates = expected match of a random pick
    colour_match_top1_en: float
    colour_match_any_en: float  # some candidate matches: the best any re-ranker could do
    colour_match_random_zh: float
    colour_match_top1_zh: float
    colour_match_any_zh: float
    n_prompts_per_language: int

    def as_dict(self) -> dict:
        return asdict(self)


def zero_shot_accuracy(studio: Studio, samples: list[world.Sample], language: str) -> float:
    labels = [world.class_name(c, s, language) for c, s in world.CLASSES]
    template = ZH_TEMPLATE if language == "zh" else EN_TEMPLATE
    correct = 0
    for start in range(0, len(samples), 64):
        chunk = samples[start : start + 64]
        results = studio.classify([x.image for x in chunk], labels, template, top_k=1).images
        correct += sum(r.top.label == labels[x.label] for r, x in zip(results, chunk))
    return correct / len(samples)


def colour_match(studio: Studio, language: str, prompts_per_class: int = 1, seed: int = 0,
                 n_candidates: int = 4) -> tuple[float, float, float, int]:
    """(random-candidate match rate, top-1 match rate, any-candidate match rate, number of prompts)."""
    defaults = studio.settings.defaults
    random_hits = top_hits = any_hits = prompts = 0
    for k in range(prompts_per_class):
        for i, (colour, shape) in enumerate(world.CLASSES):
            prompt = world.class_name(colour, shape, language)
            if language == "en":
                prompt = f"a {prompt}"
            request = GenerationRequest(
                prompt, n=n_candidates, steps=defaults.steps, guidance=defaults.guidance,
                width=defaults.width, height=defaults.height, seed=seed + 1000 * k + 10 * i,
            )
            result = studio.generate(request)
            judged = [world.judge_colour(item.image) == colour for item in result.images]
            random_hits += sum(judged) / len(judged)
            top_hits += judged[0]
            any_hits += any(judged)
            prompts += 1
    return random_hits / prompts, top_hits / prompts, any_hits / prompts, prompts


def measure(studio: Studio, n_images: int = 300, prompts_per_class: int = 1, seed: int = 0) -> QualityReport:
    held_out = world.sample(HELD_OUT_SEED + seed, n_images)
    rand_en, top_en, any_en, n_prompts = colour_match(studio, "en", prompts_per_class, seed)
    rand_zh, top_zh, any_zh, _ = colour_match(studio, "zh", prompts_per_class, seed)
    return QualityReport(
        zero_shot_top1_en=zero_shot_accuracy(studio, held_out, "en"),
        zero_shot_top1_zh=zero_shot_accuracy(studio, held_out, "zh"),
        n_zero_shot_images=n_images,
        colour_match_random_en=rand_en,
        colour_match_top1_en=top_en,
        colour_match_any_en=any_en,
        colour_match_random_zh=rand_zh,
        colour_match_top1_zh=top_zh,
        colour_match_any_zh=any_zh,
        n_prompts_per_language=n_prompts,
    )
