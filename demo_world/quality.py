"""Quality gates of the demo models, measured on held-out renders of the shapes and the animals worlds.

Two questions, both answered with the product's own code paths (Studio.classify, Studio.generate):
  1. Zero-shot: does the demo CLIP name the colour and shape of an unseen image (30 classes)?
  2. Re-ranking: does CLIP's top-1 of 4 candidates show the prompt's colour more often than a random
     candidate? The colour is judged without learning (world.judge_colour). So is the shape
     (world.judge_shape), which tells whether the image shows the whole prompt: colour and shape.
  3. Animals: does the re-ranked top-1 show the asked animal and accessory, as the judge (demo_world.judge,
     a classifier of its own, never the ranking CLIP) sees it, and how much more often than a random candidate?
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import animals, world
from clipdemo.generation import GenerationRequest
from clipdemo.studio import Studio

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
    class_match_random_en: float  # colour and shape both match
    class_match_top1_en: float
    class_match_random_zh: float
    class_match_top1_zh: float
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


@dataclass
class MatchRates:
    """Over the prompts of one language: how often the images match what the prompt asked for."""

    colour_random: float  # mean over all candidates = expected match of a random pick
    colour_top1: float
    colour_any: float  # some candidate matches: the best any re-ranker could do
    class_random: float  # colour and shape both match
    class_top1: float
    prompts: int


def match_rates(studio: Studio, language: str, prompts_per_class: int = 1, seed: int = 0,
                n_candidates: int = 4, steps: int | None = None, guidance: float | None = None) -> MatchRates:
    """Generate n candidates per class prompt and judge them without learning.

    Steps and guidance default to the preset's; the override shows what re-ranking buys when the
    generator is cheaper and misses more often (guidance 1 skips the unconditional pass).
    """
    defaults = studio.settings.defaults
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance
    colour_random = colour_top = colour_any = class_random = class_top = 0.0
    prompts = 0
    for k in range(prompts_per_class):
        for i, (colour, shape) in enumerate(world.CLASSES):
            prompt = world.class_name(colour, shape, language)
            if language == "en":
                prompt = f"a {prompt}"
            request = GenerationRequest(
                prompt, n=n_candidates, steps=steps, guidance=guidance,
                width=defaults.width, height=defaults.height, seed=seed + 1000 * k + 10 * i,
            )
            images = [item.image for item in studio.generate(request).images]  # best first
            colour_ok = [world.judge_colour(image) == colour for image in images]
            class_ok = [ok and world.judge_shape(image) == shape for ok, image in zip(colour_ok, images)]
            colour_random += sum(colour_ok) / len(images)
            colour_top += colour_ok[0]
            colour_any += any(colour_ok)
            class_random += sum(class_ok) / len(images)
            class_top += class_ok[0]
            prompts += 1
    return MatchRates(colour_random / prompts, colour_top / prompts, colour_any / prompts,
                      class_random / prompts, class_top / prompts, prompts)


def measure(studio: Studio, n_images: int = 300, prompts_per_class: int = 1, seed: int = 0,
            steps: int | None = None, guidance: float | None = None) -> QualityReport:
    held_out = world.sample(HELD_OUT_SEED + seed, n_images)
    en = match_rates(studio, "en", prompts_per_class, seed, steps=steps, guidance=guidance)
    zh = match_rates(studio, "zh", prompts_per_class, seed, steps=steps, guidance=guidance)
    return QualityReport(
        zero_shot_top1_en=zero_shot_accuracy(studio, held_out, "en"),
        zero_shot_top1_zh=zero_shot_accuracy(studio, held_out, "zh"),
        n_zero_shot_images=n_images,
        colour_match_random_en=en.colour_random,
        colour_match_top1_en=en.colour_top1,
        colour_match_any_en=en.colour_any,
        colour_match_random_zh=zh.colour_random,
        colour_match_top1_zh=zh.colour_top1,
        colour_match_any_zh=zh.colour_any,
        class_match_random_en=en.class_random,
        class_match_top1_en=en.class_top1,
        class_match_random_zh=zh.class_random,
        class_match_top1_zh=zh.class_top1,
        n_prompts_per_language=en.prompts,
    )


# -- the animals world -------------------------------------------------------------------------------------------
ANIMALS_SEED = 20_000  # the gates' seeds; training renders used seeds 1-1235
ANIMAL_GATES = {"top1_animal": 0.85, "top1_accessory": 0.75, "rerank_gain_both": 0.10, "zero_shot_top1": 0.85}


def animal_prompts(language: str, per_pair: int = 2) -> list[tuple[str, str, str, int]]:
    """(prompt, animal, accessory, seed) for every animal wearing every accessory, `per_pair` seeds each:
    the prompts name no colour, like the page's own example ("a dog wearing glasses", "一只戴眼镜的狗")."""
    out = []
    for k in range(per_pair):
        for i, (animal, accessory) in enumerate((a, s) for a, s in animals.CLASSES if s != animals.NONE):
            prompt = animals.class_name(animal, accessory, language)
            out.append((prompt, animal, accessory, ANIMALS_SEED + 1000 * k + 10 * i))
    return out


def animal_rates(studio: Studio, judge, language: str, per_pair: int = 2, n_candidates: int = 4,
                 steps: int | None = None, guidance: float | None = None, limit: int | None = None) -> dict:
    """Per language: how often the re-ranked top-1 and a random candidate show the asked animal and accessory,
    as the judge (never the ranking CLIP) sees them; with one record per prompt."""
    defaults = studio.settings.defaults
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance
    records = []
    for prompt, animal, accessory, seed in animal_prompts(language, per_pair)[:limit]:
        verdicts = judge(ranked_images(studio, prompt, seed, n_candidates, steps, guidance))
        records.append({"prompt": prompt, "seed": seed, "animal": animal, "accessory": accessory,
                        "judged": [[v.animal, v.accessory] for v in verdicts]})
    return {**rates_of(records), "prompts": len(records), "candidates": n_candidates, "steps": steps,
            "guidance": guidance, "records": records}


def ranked_images(studio: Studio, prompt: str, seed: int, n: int = 4, steps: int | None = None,
                  guidance: float | None = None) -> list:
    """The candidates of one generate, best first, at the preset's size (and its steps and guidance unless given)."""
    d = studio.settings.defaults
    request = GenerationRequest(prompt, n=n, steps=d.steps if steps is None else steps,
                                guidance=d.guidance if guidance is None else guidance, width=d.width,
                                height=d.height, seed=seed)
    return [item.image for item in studio.generate(request).images]


def rates_of(records: list[dict]) -> dict[str, float]:
    """The gate fractions of a list of per-prompt records (judged candidates best first)."""
    def both(r, pair):
        return pair == [r["animal"], r["accessory"]]

    n = len(records)
    return {
        "top1_animal": sum(r["judged"][0][0] == r["animal"] for r in records) / n,
        "top1_accessory": sum(r["judged"][0][1] == r["accessory"] for r in records) / n,
        "random_both": sum(sum(both(r, p) for p in r["judged"]) / len(r["judged"]) for r in records) / n,
        "top1_both": sum(both(r, r["judged"][0]) for r in records) / n,
        "any_both": sum(any(both(r, p) for p in r["judged"]) for r in records) / n,
    }


def animal_zero_shot(studio: Studio, language: str, n_images: int = 300) -> float:
    """Top-1 over the 25 animal x accessory classes on held-out renders, the labels as full sentences."""
    samples = animals.sample(HELD_OUT_SEED + 7, n_images)
    labels = [animals.class_name(a, s, language) for a, s in animals.CLASSES]
    correct = 0
    for start in range(0, len(samples), 64):
        chunk = samples[start : start + 64]
        results = studio.classify([x.image for x in chunk], labels, "{}", top_k=1).images
        correct += sum(r.top.label == labels[x.scene.label] for r, x in zip(results, chunk))
    return correct / len(samples)


def measure_all(studio: Studio, judge, per_pair: int = 2, n_images: int = 300, steps: int | None = None,
                guidance: float | None = None) -> dict:
    """QUALITY.json: {"animals": {"en": {...}, "zh": {...}}, "shapes": {...}}."""
    out = {"animals": {}, "shapes": measure(studio, n_images, 1, 0, steps, guidance).as_dict()}
    for language in ("en", "zh"):
        rates = animal_rates(studio, judge, language, per_pair, steps=steps, guidance=guidance)
        rates["zero_shot_top1"] = animal_zero_shot(studio, language, n_images)
        out["animals"][language] = rates
    return out


def top1_grid(studio: Studio, accessory: str = "glasses", tile: int = 128):
    """The re-ranked top-1 for every animal wearing `accessory`, at the gates' two seeds: one row per language
    (English on top), ten held-out prompts each. Returns a PIL image."""
    from PIL import Image

    rows = [[ranked_images(studio, prompt, seed)[0]
             for prompt, _, wears, seed in animal_prompts(language) if wears == accessory]
            for language in ("en", "zh")]
    grid = Image.new("RGB", (tile * len(rows[0]), tile * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image.convert("RGB").resize((tile, tile), Image.LANCZOS), (c * tile, r * tile))
    return grid
