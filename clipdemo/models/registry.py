"""The one place a studio gets its models from: CLIP scorers, pipelines, checkers, the translator.

Loaded weights live in the process-wide `loading.MODELS`, which also remembers failures; a registry
adds only what depends on its own settings: the scorers' text caches, the assembled pipelines and
their locks, and the prompt-embedding cache.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from .. import loading
from ..config import DEFAULT_TAESD, Settings
from ..downloads import DOWNLOADS, PIPELINE, PROCESSOR, ModelDownload, Need
from ..errors import ModelLoadError
from ..text import has_cjk
from .pipeline import assemble, decoder_is_builtin, decoder_spec, pipeline_spec
from .prompts import PromptCache
from ..hub import is_local, unreachable_reason
from ..text import display_name
from ..scoring import ClipScorer


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
    reasons = {m: unreachable_reason(m) for m in (settings.sd_model, settings.clip_model)}
    missing = [m for m, reason in reasons.items() if reason]
    if not missing:
        return settings, None
    notice = (
        "Using the offline demo models: they draw animals and coloured shapes only. "
        f"The default models ({', '.join(missing)}) cannot be reached from here ({reasons[missing[0]]}), "
        "so --preset demo is used. Name models with --sd-model/--clip-model, or connect to the Hugging Face "
        "Hub, to use others."
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
                model, proc = loading.load_clip(spec, self.device, self.scorer_dtype(role), processor)
                self._scorers[spec.model_id] = ClipScorer(model, proc, name=spec.model_id)
            return self._scorers[spec.model_id]

    def scorer_dtype(self, role: str = "clip_model") -> torch.dtype:
        """fp32 for the CLIPs that give CLIPScore, a number compared across tools at two decimals (bf16 moves
        it by tenths); PickScore's ViT-H/14 keeps the run's dtype, and its scores say so."""
        return self.dtype if role == "pick_model" else torch.float32

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

    # -- downloads ------------------------------------------------------------------------------
    def needs(self, chinese: bool = True, pickscore: bool | None = None) -> list[Need]:
        """The Hub models a generate loads, in loading order: what an English prompt needs, then Chinese text's."""
        from ..scorers import pickscore_default

        s, wanted = self.settings, [Need("Stable Diffusion", self.settings.sd_model, PIPELINE),
                                    Need("CLIP", self.settings.clip_model)]
        if s.decoder not in ("auto", "full", "taesd"):
            wanted.append(Need("tiny decoder", s.decoder))
        elif s.decoder == "taesd" or (s.decoder == "auto" and self.device.type == "cpu" and self._sd_latents()):
            wanted.append(Need("tiny decoder", DEFAULT_TAESD))
        if s.moderation != "off" and s.safety_model != "concepts":
            wanted.append(Need("safety checker", s.safety_model))
        if s.pick_model != "none" and (pickscore_default(self) if pickscore is None else pickscore):
            wanted += [Need("PickScore", s.pick_model), Need("PickScore processor", s.pick_processor, PROCESSOR)]
        if chinese:
            wanted.append(Need("Chinese CLIP", s.zh_clip_model))
            wanted.append(Need("translator", s.translator) if s.zh_mode == "translate"
                          else Need("Chinese Stable Diffusion", s.zh_sd_model, PIPELINE))
        unique = {n.repo_id: n for n in reversed(wanted) if not is_local(n.repo_id)}
        return [n for n in wanted if unique.get(n.repo_id) is n]

    def _sd_latents(self) -> bool:
        """Whether the pipeline decodes SD latents (TAESD's), read from a local folder's VAE config; a Hub
        pipeline is taken to (the defaults do) and is checked again when it loads."""
        import json
        from pathlib import Path

        config = Path(self.settings.sd_model).expanduser() / "vae" / "config.json"
        if not is_local(self.settings.sd_model) or not config.is_file():
            return True
        vae = json.loads(config.read_text())
        return vae.get("latent_channels") == 4 and abs(vae.get("scaling_factor", 0) - 0.18215) < 1e-4

    def start_downloads(self) -> None:
        """Fetch every Hub model a generate may load in the background, unless offline (the server's start)."""
        from ..hub import offline

        needs = self.needs()
        if needs and not offline():
            DOWNLOADS.start(needs)

    def await_models(self, prompt: str, report=None, pickscore: bool | None = None) -> None:
        """Wait until the models a generate of `prompt` loads are fetched, reporting their progress."""
        from ..downloads import DownloadError
        from ..hub import offline

        if offline():
            return
        for need in self.needs(chinese=has_cjk(prompt), pickscore=pickscore):
            try:
                DOWNLOADS.ensure(need, report)
            except DownloadError as exc:
                raise ModelLoadError(f"The {need.role} model {need.repo_id} could not be downloaded. {exc}") from None

    @staticmethod
    def downloads() -> list[ModelDownload]:
        return DOWNLOADS.status()

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
