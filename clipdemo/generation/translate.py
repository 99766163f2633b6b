"""zh→en prompt translation for the English pipeline (zh-mode "translate")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ModelLoadError

if TYPE_CHECKING:
    from ..models import ModelRegistry

MAX_NEW_TOKENS = 96


def translate(models: ModelRegistry, text: str) -> tuple[str | None, list[str]]:
    """(English translation or None, notices). A translator that cannot load is reported, not fatal."""
    try:
        model, tokenizer = models.translator()
    except ModelLoadError as exc:
        return None, [f"The zh→en translator could not be loaded, so the Chinese prompt went to the pipeline "
                      f"untranslated. {exc}"]
    with torch.inference_mode():
        tokens = tokenizer([text], return_tensors="pt", truncation=True).to(models.device)
        limit = min(MAX_NEW_TOKENS, getattr(model.config, "max_position_embeddings", 512) - 2)  # positions are finite
        output = model.generate(**tokens, max_new_tokens=limit, num_beams=4)
    return tokenizer.batch_decode(output, skip_special_tokens=True)[0].strip(), []
