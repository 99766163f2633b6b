"""The prompt-embedding cache: a re-run of the same prompt skips the text encoder."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..generation.request import GenerationRequest

PROMPT_CACHE_SIZE = 32


class PromptCache:
    """Text-encoder output for (prompt, negative, guidance on/off), least recently used out: re-runs skip the encoder."""

    def __init__(self, size: int = PROMPT_CACHE_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()

    def embeddings(self, pipe: Any, request: GenerationRequest) -> tuple | None:
        """(prompt_embeds, negative_prompt_embeds) for a Stable Diffusion pipeline; None for any other."""
        from diffusers import StableDiffusionPipeline

        if not isinstance(pipe, StableDiffusionPipeline):
            return None
        use_cfg = request.guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None
        key = (id(pipe.text_encoder), request.prompt, request.negative_prompt, use_cfg)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with torch.inference_mode():
            embeddings = pipe.encode_prompt(request.prompt, pipe.device, 1, use_cfg, request.negative_prompt or None)
        with self._lock:
            self._entries[key] = embeddings
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return embeddings
