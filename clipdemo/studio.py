"""The one object the UI and the CLI talk to: it resolves models lazily and runs each capability.

Each method takes plain Python values, validates them, and returns a small dataclass. Failures come
out as InputError (bad input) or ModelLoadError (a model that will not load); nothing here knows
about gradio or argparse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

from PIL import Image

from .config import Settings
from .generation import GenerationRequest, ProgressFn, generate_candidates
from .config import DEFAULT_TAESD
from .errors import ModelLoadError
from .loading import (
    ModelSpec,
    has_sd_latents,
    hub_model_reachable,
    is_local,
    load_clip,
    load_text2image,
    load_tiny_decoder,
    pick_device,
    pick_dtype,
)
from .ranking import RankResult, rank_candidates
from .scoring import ClipScorer
from .similarity import SimilarityResult, similarity
from .text import DEFAULT_TEMPLATE, has_cjk
from .zeroshot import Classification, classify


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


PROMPT_CACHE_SIZE = 32


class Studio:
    def __init__(self, settings: Settings, allow_fallback: bool = True) -> None:
        self.notices: list[str] = []  # shown in the page header and printed by the CLI
        if allow_fallback:
            settings, notice = with_demo_fallback(settings)
            if notice:
                self.notices.append(notice)
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        self._lock = threading.Lock()
        self._scorer: ClipScorer | None = None
        self._pipe = None
        self._prompt_cache: OrderedDict = OrderedDict()
        self.decoder_name = "pipeline VAE"  # what decodes latents; shown in the page and manifest

    # -- models -------------------------------------------------------------------------------
    @property
    def clip_spec(self) -> ModelSpec:
        return ModelSpec("CLIP", self.settings.clip_model, "--clip-model", "CLIPDEMO_CLIP_MODEL")

    @property
    def sd_spec(self) -> ModelSpec:
        return ModelSpec("Stable Diffusion", self.settings.sd_model, "--sd-model", "CLIPDEMO_SD_MODEL")

    def scorer(self) -> ClipScorer:
        """The CLIP scorer, loaded on first use. Raises ModelLoadError."""
        with self._lock:
            if self._scorer is None:
                model, processor = load_clip(self.clip_spec, self.device, self.dtype)
                self._scorer = ClipScorer(model, processor, name=self.settings.clip_model)
            return self._scorer

    def pipeline(self):
        """The text-to-image pipeline with the chosen decoder, built on first use. Raises ModelLoadError."""
        with self._lock:
            if self._pipe is None:
                self._pipe = self._assemble_pipeline()
            return self._pipe

    def _assemble_pipeline(self):
        import torch

        base = load_text2image(self.sd_spec, self.device, self.dtype)
        decoder = self._tiny_decoder(base)
        pipe = base if decoder is None else type(base).from_pipe(base, vae=decoder)
        if self.settings.compile:
            pipe.unet = torch.compile(pipe.unet)
        if self.settings.cpu_offload and self.device.type == "cuda":
            pipe.enable_model_cpu_offload()
        return pipe

    def _tiny_decoder(self, base):
        """The AutoencoderTiny to decode with, or None for the pipeline's own VAE.

        auto: TAESD on CPU when the pipeline uses SD latents. taesd: TAESD wherever. full: never.
        PATH: that folder, as named. If TAESD cannot be loaded, the full VAE is used and the user told.
        """
        choice = self.settings.decoder
        if choice == "full" or (choice == "auto" and (self.device.type != "cpu" or not has_sd_latents(base.vae))):
            return None
        named = choice not in ("auto", "taesd")
        spec = ModelSpec("tiny decoder (TAESD)", choice if named else DEFAULT_TAESD, "--decoder", "CLIPDEMO_DECODER")
        try:
            decoder = load_tiny_decoder(spec, self.device, self.dtype)
        except ModelLoadError as exc:
            if named:
                raise
            self.notices.append(f"The fast TAESD decoder could not be loaded, so the pipeline's full VAE decodes "
                                f"(slower, same composition). {exc}")
            return None
        self.decoder_name = choice if named and not is_local(choice) else "TAESD"
        return decoder

    # -- capabilities ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> RankResult:
        """Generate N candidates and rank them by CLIPScore against the prompt as typed."""
        request = request.validated()
        scorer = self.scorer()  # fail before the slow part if scoring cannot work
        notices = self.prompt_notices(scorer, request.prompt)
        known = len(self.notices)
        pipe = self.pipeline()
        notices += self.notices[known:]  # e.g. the decoder fell back while loading
        candidates = generate_candidates(pipe, request, progress, self._prompt_embeddings(pipe, request))
        ranked = rank_candidates(candidates, request.prompt, scorer)
        broken = [item for item in ranked if item.problem]
        if broken:
            notices.append(f"{len(broken)} of {len(ranked)} images were not ranked: {broken[0].problem}.")
        return RankResult(request, self.settings.sd_model, self.settings.clip_model, ranked, notices)

    def _prompt_embeddings(self, pipe, request: GenerationRequest):
        """Text-encoder output for (prompt, negative, guidance on/off), cached: re-runs skip the encoder."""
        from diffusers import StableDiffusionPipeline

        if not isinstance(pipe, StableDiffusionPipeline):
            return None
        use_cfg = request.guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None
        key = (request.prompt, request.negative_prompt, use_cfg)
        with self._lock:
            if key in self._prompt_cache:
                self._prompt_cache.move_to_end(key)
                return self._prompt_cache[key]
        import torch

        with torch.inference_mode():
            embeddings = pipe.encode_prompt(request.prompt, pipe.device, 1, use_cfg, request.negative_prompt or None)
        with self._lock:
            self._prompt_cache[key] = embeddings
            while len(self._prompt_cache) > PROMPT_CACHE_SIZE:
                self._prompt_cache.popitem(last=False)
        return embeddings

    def prompt_notices(self, scorer: ClipScorer, prompt: str) -> list[str]:
        notices = []
        if scorer.is_truncated(prompt):
            notices.append(
                f"The prompt is {scorer.count_tokens(prompt)} tokens long; CLIP reads only the first "
                f"{scorer.max_text_tokens}, so the rest was ignored for scoring."
            )
        bilingual_demo = self.settings.preset == "demo" and not self.settings.clip_model_explicit
        if has_cjk(prompt) and not bilingual_demo:
            notices.append(f"This Chinese prompt was scored by {scorer.name}, an English CLIP: its scores are rough.")
        return notices

    def classify(
        self,
        images: Sequence[Image.Image],
        labels: str | Sequence[str],
        template: str = DEFAULT_TEMPLATE,
        top_k: int | None = None,
        names: Sequence[str] | None = None,
    ) -> list[Classification]:
        return classify(self.scorer(), images, labels, template, top_k, names)

    def similarity(
        self, images: Sequence[Image.Image], texts: Sequence[str], names: Sequence[str] | None = None
    ) -> SimilarityResult:
        return similarity(self.scorer(), images, texts, names)
