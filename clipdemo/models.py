"""The one place a studio gets its models from: CLIP scorers, pipelines, checkers, the translator.

Loaded weights live in the process-wide `loading.MODELS`, which also remembers failures; a registry
adds only what depends on its own settings: the scorers' text caches, the assembled pipelines and
their locks, and the prompt-embedding cache.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from . import loading
from .config import Settings
from .errors import ModelLoadError
from .generation.candidates import PromptCache
from .generation.pipeline import assemble, decoder_is_builtin, decoder_spec, pipeline_spec
from .hub import hub_model_reachable, is_local
from .loading import display_name
from .scoring import ClipScorer


# A diffusers pipeline keeps per-call state (scheduler steps, guidance), and loading.MODELS shares one
# UNet between studios: one call at a time per UNet, across the process.
_PIPE_LOCKS: dict[int, threading.Lock] = {}
_PIPE_LOCKS_GUARD = threading.Lock()


def with_demo_fallback(settings: Settings) -> tuple[Settings, str | None]:
    """Switch to the offline demo models when the built-in Hub defaults cannot be reached.

    Only when the user chose no model and no preset: a model the user named is never replaced.
    """
    if not settings.uses_builtin_defaults:
        return settings, None
    missing = [m for m in (settings.sd_model, settings.clip_model) if not hub_model_reachable(m)]
    if not missing:
        return settings, None
    notice = (
        f"The default models ({', '.join(missing)}) cannot be reached from here, so the offline demo models "
        "are used (--preset demo: coloured shapes only). Name models with --sd-model/--clip-model, or "
        "connect to the Hugging Face Hub, to use others."
    )
    return settings.with_preset("demo"), notice


class ModelRegistry:
    """Models for one set of settings, each loaded on first use. Every getter raises ModelLoadError."""

    def __init__(self, settings: Settings, device: torch.device, dtype: torch.dtype,
                 notices: list[str] | None = None) -> None:
        self.settings, self.device, self.dtype = settings, device, dtype
        self.notices: list[str] = notices if notices is not None else []  # fallbacks while loading, for the page
        self.decoder_name = "pipeline VAE"  # what decodes latents; shown in the page
        self.decoder_model: str | None = None  # the tiny decoder's model id, once one is in use
        self.prompts = PromptCache()
        self._lock = threading.Lock()
        self._scorers: dict[str, ClipScorer] = {}
        self._pipes: dict[str, Any] = {}

    # -- CLIP scorers ---------------------------------------------------------------------------
    def scorer(self, role: str = "clip_model") -> ClipScorer:
        """The scorer of a CLIP setting: clip_model (English), zh_clip_model (Chinese) or pick_model."""
        spec = self.settings.spec(role)
        processor = self.settings.pick_processor if role == "pick_model" else None
        with self._lock:
            if spec.model_id not in self._scorers:
                model, proc = loading.load_clip(spec, self.device, self.dtype, processor)
                self._scorers[spec.model_id] = ClipScorer(model, proc, name=spec.model_id)
            return self._scorers[spec.model_id]

    def loaded_scorer(self, model_id: str) -> ClipScorer | None:
        """The scorer for this model if one was loaded already; never loads."""
        with self._lock:
            return self._scorers.get(model_id)

    # -- pipelines ------------------------------------------------------------------------------
    def pipeline(self, model_id: str | None = None) -> Any:
        """A text-to-image pipeline with the chosen decoder, built on first use."""
        model_id = model_id or self.settings.sd_model
        with self._lock:
            if model_id not in self._pipes:
                base = loading.load_text2image(pipeline_spec(self.settings, model_id), self.device, self.dtype)
                self._pipes[model_id] = assemble(base, self._tiny_decoder(base), self.settings, self.device,
                                                 self.dtype)
            return self._pipes[model_id]

    def pipe_lock(self, pipe: Any) -> threading.Lock:
        """The lock of this pipeline's UNet, shared by every view of it (another sampler, another studio)."""
        with _PIPE_LOCKS_GUARD:
            return _PIPE_LOCKS.setdefault(id(pipe.unet), threading.Lock())

    def _tiny_decoder(self, base: Any) -> Any | None:
        """The AutoencoderTiny for `base`, or None. TAESD that cannot load: the full VAE, and a notice."""
        spec = decoder_spec(self.settings, self.device, base.vae)
        if spec is None:
            return None
        try:
            decoder = loading.load_tiny_decoder(spec, self.device, self.dtype)
        except ModelLoadError as exc:
            if not decoder_is_builtin(self.settings):
                raise
            self.notices.append(f"The fast TAESD decoder could not be loaded, so the pipeline's full VAE decodes "
                                f"(slower, same composition). {exc}")
            return None
        named = self.settings.decoder
        self.decoder_name = named if not decoder_is_builtin(self.settings) and not is_local(named) else "TAESD"
        self.decoder_model = spec.model_id
        return decoder

    # -- helpers --------------------------------------------------------------------------------
    def safety_checker(self) -> tuple[Any, Any]:
        """diffusers' StableDiffusionSafetyChecker of --safety-model and its image processor."""
        return loading.load_safety_checker(self.settings.spec("safety_model"), self.device, self.dtype)

    def translator(self) -> tuple[Any, Any]:
        """The zh→en translation model and its tokenizer."""
        return loading.load_translator(self.settings.spec("translator"), self.device)

    def sources(self, model_ids: dict[str, str | None]) -> dict[str, dict[str, str]]:
        """{role: {"model", "weights"}} for the given roles' models that were loaded (weights: which file)."""
        weights = loading.MODELS.weights
        return {role: {"model": display_name(model_id), "weights": weights[model_id]}
                for role, model_id in model_ids.items() if model_id and model_id in weights}
