"""Describe an image in words: rank a bank of phrases by CLIP similarity, and compose a prompt from them.

Single words score noisily, so subjects are also scored composed ("a red circle" from the best colours
and objects), and the prompt line grows greedily: each category's best phrase joins it only if the
image's similarity to the whole line rises (as CLIP Interrogator builds its prompts).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from .config import ASSETS_DIR
from .errors import InputError
from .scoring import ClipScorer
from .text import has_cjk

BANKS = {"builtin": ASSETS_DIR / "phrases" / "bank.json", "demo": ASSETS_DIR / "phrases" / "demo.json",
         "shapes": ASSETS_DIR / "phrases" / "shapes.json"}
LANGUAGES = ("en", "zh")
MAX_PHRASES = 20_000
COMPOSE_TOP = 5  # best colours x best objects tried as composed subjects
MAX_K = 100


@dataclass(frozen=True)
class PhraseBank:
    name: str  # "builtin" or the file's name
    language: str
    categories: dict[str, list[str]]  # category -> phrases, in the bank's order
    compose: str | None = None  # e.g. "a {colour} {object}": subjects built from the best colours and objects
    separator: str = ", "  # between the parts of a composed prompt line

    @property
    def phrases(self) -> list[tuple[str, str]]:
        """(category, phrase) for every phrase, each once."""
        seen, out = set(), []
        for category, phrases in self.categories.items():
            for phrase in phrases:
                if phrase not in seen:
                    seen.add(phrase)
                    out.append((category, phrase))
        return out


@dataclass(frozen=True)
class Phrase:
    text: str
    score: float  # cosine similarity of the image and the phrase
    category: str


@dataclass
class Description:
    image: str
    phrases: list[Phrase]  # best first
    prompt: str  # the composed prompt line


@dataclass
class DescribeResult:
    scorer: str
    bank: str
    language: str
    images: list[Description]
    notices: list[str] = field(default_factory=list)

    def as_json(self) -> list[dict]:
        return [{"image": d.image, "phrases": [{"text": p.text, "score": p.score} for p in d.phrases],
                 "prompt": d.prompt} for d in self.images]


def load_bank(choice: str = "builtin", language: str = "en") -> PhraseBank:
    """A built-in bank (builtin, shapes) in English or Chinese, a JSON bank of that shape, or a text file."""
    if language not in LANGUAGES:
        raise InputError(f"Unknown language '{language}'. Choose one of: {', '.join(LANGUAGES)}.")
    path = BANKS.get(choice or "builtin", Path(choice or "builtin"))
    if not path.is_file():
        raise InputError(f"No phrase file '{choice}': give a text file with one phrase per line, a JSON bank, "
                         f"or one of the built-in banks ({', '.join(BANKS)}).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: cannot read it as UTF-8 text ({exc}).") from None
    name = next((bank for bank, p in BANKS.items() if p == path), path.name)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            categories = {c: [p.strip() for p in by_lang[language] if p.strip()]
                          for c, by_lang in data["categories"].items() if by_lang.get(language)}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path.name}: not a phrase bank ({type(exc).__name__}: {exc}); see "
                             "assets/phrases/README.md for its shape.") from None
        bank = PhraseBank(name, language, categories, (data.get("compose") or {}).get(language),
                          (data.get("separator") or {}).get(language, ", "))
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        language = "zh" if sum(has_cjk(line) for line in lines) * 2 > len(lines) else "en"
        bank = PhraseBank(name, language, {"phrases": lines}, None, "，" if language == "zh" else ", ")
    count = len(bank.phrases)
    if count == 0:
        raise InputError(f"{path.name} holds no phrases.")
    if count > MAX_PHRASES:
        raise InputError(f"{path.name} holds {count} phrases; the limit is {MAX_PHRASES}.")
    return bank


def _subjects(bank: PhraseBank, best: dict[str, list[str]]) -> list[str]:
    """Composed subjects from the best colours and objects, when the bank says how to compose them."""
    if not bank.compose or not best.get("colours") or not best.get("objects"):
        return []
    subjects = [bank.compose.format(colour=c, object=o) for c in best["colours"] for o in best["objects"]]
    if bank.language == "en":  # "a orange circle" -> "an orange circle"
        subjects = [re.sub(r"^a (?=[aeiouAEIOU])", "an ", s) for s in subjects]
    return subjects


def _grow_prompt(scorer: ClipScorer, image: torch.Tensor, start: str, candidates: list[str], separator: str) -> str:
    """Append each candidate in turn, keeping it only when the image's cosine to the whole line rises."""
    line = start
    score = float(scorer.embed_texts([line])[0] @ image)
    for candidate in candidates:
        if candidate in line:
            continue
        longer = line + separator + candidate
        if scorer.is_truncated(longer):
            break
        value = float(scorer.embed_texts([longer])[0] @ image)
        if value > score:
            line, score = longer, value
    return line


def describe(scorer: ClipScorer, images: Sequence[Image.Image], bank: PhraseBank, k: int = 5,
             names: Sequence[str] | None = None) -> list[Description]:
    """For each image, its k best phrases (cosine, best first) and a prompt line composed from them."""
    if not images:
        raise InputError("Give at least one image to describe.")
    if not 1 <= k <= MAX_K:
        raise InputError(f"-k must be between 1 and {MAX_K} (got {k}).")
    names = list(names) if names else [f"image {i + 1}" for i in range(len(images))]

    # 1. Every image against every phrase of the bank.
    entries = bank.phrases
    image_vectors = scorer.embed_images(images)
    cosine = image_vectors @ scorer.embed_texts([p for _, p in entries]).T

    descriptions = []
    for i, name in enumerate(names):
        # 2. Each category's phrases, best first.
        ranked = sorted(zip(cosine[i].tolist(), entries), key=lambda item: -item[0])
        best: dict[str, list[str]] = {}
        for _, (category, phrase) in ranked:
            best.setdefault(category, []).append(phrase)
        best = {c: phrases[:COMPOSE_TOP] for c, phrases in best.items()}

        # 3. Composed subjects join the single phrases; keep the k best.
        subjects = _subjects(bank, best)
        scored = [Phrase(p, s, c) for s, (c, p) in ranked]
        if subjects:
            values = (scorer.embed_texts(subjects) @ image_vectors[i]).tolist()
            scored += [Phrase(text, value, "subject") for text, value in zip(subjects, values)]
        scored.sort(key=lambda p: -p.score)

        # 4. The prompt line: the best subject (or phrase), then each other category's best, greedily.
        if subjects:
            start = next(p.text for p in scored if p.category == "subject")
            rest = [phrases[0] for c, phrases in best.items() if c not in ("colours", "objects")]
        else:
            start, rest = scored[0].text, [p.text for p in scored[1:k]]
        descriptions.append(Description(name, scored[:k], _grow_prompt(scorer, image_vectors[i], start, rest,
                                                                      bank.separator)))
    return descriptions
