"""Checks and helpers for the text a user types: prompts, label lists and templates."""

from __future__ import annotations

import re
from pathlib import Path
import unicodedata

from .errors import InputError
from .hub import is_local, looks_like_path

MIN_LABELS = 2
MAX_LABELS = 1000
DEFAULT_TEMPLATE = "a photo of a {}."
ZH_DEFAULT_TEMPLATE = "一张{}的照片。"  # the same template for Chinese labels

# Commas (ASCII and full-width), the Chinese enumeration comma, semicolons and newlines separate labels.
_LABEL_SEPARATORS = re.compile(r"[,\n\r;，、；]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def has_cjk(text: str) -> bool:
    """True when the text holds Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(text))


def check_prompt(prompt: str | None) -> str:
    prompt = (prompt or "").strip()
    if not prompt:
        raise InputError("The prompt is empty: type what the image should show.")
    return prompt


def is_only_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PSZ" or ch.isspace() for ch in text)


def parse_labels(labels: str | list[str] | None) -> list[str]:
    """Split labels on commas or newlines, strip them, and refuse lists that cannot be classified."""
    if labels is None:
        items: list[str] = []
    elif isinstance(labels, str):
        items = _LABEL_SEPARATORS.split(labels)
    else:
        items = [part for label in labels for part in _LABEL_SEPARATORS.split(str(label))]
    items = [item.strip() for item in items if item.strip()]
    punctuation = [item for item in items if is_only_punctuation(item)]
    if punctuation:
        raise InputError(f"Label '{punctuation[0]}' has no letters or digits: use words as labels.")
    seen: set[str] = set()
    duplicates = [item for item in items if item.casefold() in seen or seen.add(item.casefold())]
    if duplicates:
        raise InputError(f"Label '{duplicates[0]}' appears more than once: each label must be different.")
    if len(items) < MIN_LABELS:
        raise InputError(
            f"Give at least {MIN_LABELS} labels separated by commas or new lines (got {len(items)})."
        )
    if len(items) > MAX_LABELS:
        raise InputError(f"Too many labels: {len(items)} (the limit is {MAX_LABELS}).")
    return items


def check_template(template: str | None) -> str:
    template = (template or "").strip() or DEFAULT_TEMPLATE
    if template.count("{}") != 1:
        raise InputError(
            f"The template must contain '{{}}' exactly once, where the label goes (for example '{DEFAULT_TEMPLATE}')."
        )
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError):
        raise InputError("The template may contain only '{}' in braces; write other braces as '{{' and '}}'.") from None
    return template


def check_texts(texts: list[str] | None) -> list[str]:
    texts = [t.strip() for t in (texts or []) if t and t.strip()]
    if not texts:
        raise InputError("Give at least one text.")
    return texts


def display_name(model_id: str) -> str:
    """How a model is named to users: a Hub id as is, a local folder by its last part (no server paths)."""
    return Path(model_id).name if is_local(model_id) or looks_like_path(model_id) else model_id
