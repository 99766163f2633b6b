"""The one object the UI and the CLI talk to: it resolves models lazily and runs each capability.

Each method takes plain Python values, validates them, and returns a small dataclass. Failures come
out as InputError (bad input) or ModelLoadError (a model that will not load); nothing here knows
about gradio or argparse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Sequence

from PIL import Image

from .speedups.attention import use_fast_cpu_attention
from .config import DEFAULT_SAFETY_MODEL, DEFAULT_TAESD, Settings
from .datasets import ImageSet
from .errors import InputError, ModelLoadError
from .evaluation import EvalResult, evaluate, load_templates
from .speedups.fastconv import use_fast_cpu_convolutions
from .generation import GenerationRequest, ProgressFn, generate_candidates
from .loading import (
    MODELS,
    ModelSpec,
    has_sd_latents,
    hub_model_reachable,
    display_name,
    is_local,
    load_clip,
    load_safety_checker,
    load_text2image,
    load_tiny_decoder,
    load_translator,
    pick_device,
    pick_dtype,
)
from .speedups.memory import keep_freed_buffers
from .moderation import DEFAULT_CONCEPTS, ConceptChecker, SafetyChecker, Verdict, blur
from .ranking import RankResult, rank_candidates
from .scoring import ClipScorer
from .similarity import SimilarityResult, similarity
from .text import DEFAULT_TEMPLATE, check_template, check_texts, has_cjk
from .zeroshot import Classification, classify

PROMPT_CACHE_SIZE = 32
SCORER_CHOICES = ("auto", "english", "chinese")


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


@dataclass
class ZeroShotResult:
    scorer: str  # the CLIP model that scored
    images: list[Classification]
    notices: list[str] = field(default_factory=list)
    template: str = DEFAULT_TEMPLATE


class Studio:
    def __init__(self, settings: Settings, allow_fallback: bool = True) -> None:
        self.notices: list[str] = []  # shown in the page header and printed by the CLI
        if allow_fallback:
            settings, notice = with_demo_fallback(settings)
            if notice:
                self.notices.append(notice)
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        if self.device.type == "cpu" and settings.safety_model == DEFAULT_SAFETY_MODEL and not settings.explicit("safety_model"):
            # CompVis' ViT-L/14 checker is a large share of a CPU run; the concept check reuses the loaded CLIP.
            settings = replace(settings, safety_model="concepts")
        self.settings = settings
        self._lock = threading.Lock()
        self._scorers: dict[str, ClipScorer] = {}
        self._pipes: dict[str, object] = {}
        self._prompt_cache: OrderedDict = OrderedDict()
        # A diffusers pipeline keeps per-call state (scheduler steps, guidance): one call at a time each.
        self._pipe_locks: dict[int, threading.Lock] = {}
        self.decoder_name = "pipeline VAE"  # what decodes latents; shown in the page
        self.decoder_model: str | None = None  # the tiny decoder's model id, once one is in use
        if self.device.type == "cpu":
            keep_freed_buffers()  # big activations reuse memory instead of faulting in new pages each call

    # -- models -------------------------------------------------------------------------------
    @property
    def clip_spec(self) -> ModelSpec:
        return self.settings.spec("clip_model")

    @property
    def sd_spec(self) -> ModelSpec:
        return self.settings.spec("sd_model")

    def _clip(self, spec: ModelSpec) -> ClipScorer:
        with self._lock:
            if spec.model_id not in self._scorers:
                model, processor = load_clip(spec, self.device, self.dtype)
                self._scorers[spec.model_id] = ClipScorer(model, processor, name=spec.model_id)
            return self._scorers[spec.model_id]

    def scorer(self) -> ClipScorer:
        """The English CLIP scorer, loaded on first use. Raises ModelLoadError."""
        return self._clip(self.clip_spec)

    def scorer_for(self, texts: Sequence[str], choice: str | None = "auto") -> tuple[ClipScorer, list[str]]:
        """The scorer for these texts, and notices for the user.

        auto: text with CJK characters goes to the Chinese-capable scorer (--zh-clip-model), the rest to
        the English one. If the Chinese scorer cannot be loaded, the English one scores and says so,
        unless the user named the Chinese model, which is then an error. None means auto (an API caller's default).
        """
        choice = choice or "auto"
        if choice not in SCORER_CHOICES:
            raise InputError(f"Unknown scorer '{choice}'. Choose one of: {', '.join(SCORER_CHOICES)}.")
        wants_chinese = choice == "chinese" or (choice == "auto" and any(has_cjk(t) for t in texts))
        if not wants_chinese or self.settings.zh_clip_model == self.settings.clip_model:
            if choice == "english" and any(has_cjk(t) for t in texts):
                return self.scorer(), [f"Chinese text was scored by {display_name(self.settings.clip_model)}, an "
                                       "English CLIP, "
                                       "as chosen: its scores are rough."]
            return self.scorer(), []
        spec = self.settings.spec("zh_clip_model")
        try:
            return self._clip(spec), []
        except ModelLoadError as exc:
            if self.settings.explicit("zh_clip_model"):
                raise
            english = self.scorer()
            return english, [
                f"The Chinese-capable scorer could not be loaded, so {display_name(english.name)}, an English CLIP, "
                f"scored this "
                f"Chinese text: its scores are rough. {exc}"
            ]

    @property
    def pickscore_default(self) -> bool:
        """Whether a generate scores with PickScore unless told otherwise.

        auto: on a GPU, where its ViT-H/14 is cheap; off on the CPU, where it adds about a fifth to a run
        and 2-4 GB, so it stays one click away (the Generate tab's PickScore box, --pickscore on).
        """
        s = self.settings
        if s.pick_model == "none" or s.pickscore == "off":
            return False
        return s.pickscore == "on" or s.rank_by == "pickscore" or self.device.type != "cpu"

    def ranking_scorers(self, clip: ClipScorer, pickscore: bool | None = None
                        ) -> tuple[list[tuple[str, ClipScorer]], list[str]]:
        """[("clip", clip), ("pickscore", model)] when PickScore is wanted and loads; CLIPScore alone if not."""
        wanted = self.pickscore_default if pickscore is None else pickscore
        if not wanted:
            return [("clip", clip)], []
        if self.settings.pick_model == "none":
            return [("clip", clip)], ["PickScore is not configured on this server (--pick-model none), so images "
                                      "are ranked by CLIPScore alone."]
        spec = self.settings.spec("pick_model")
        try:
            with self._lock:
                if spec.model_id not in self._scorers:
                    model, processor = load_clip(spec, self.device, self.dtype, self.settings.pick_processor)
                    self._scorers[spec.model_id] = ClipScorer(model, processor, name=spec.model_id)
                pick = self._scorers[spec.model_id]
        except ModelLoadError as exc:
            if self.settings.explicit("pick_model") or self.settings.pickscore == "on":
                raise
            return [("clip", clip)], [f"PickScore is unavailable, so images are ranked by CLIPScore alone. {exc}"]
        return [("clip", clip), ("pickscore", pick)], []

    def helpers(self) -> dict[str, str]:
        """Each optional helper model and its state, in words for the page: on, off, or one click away."""
        s = self.settings
        if s.pick_model == "none":
            pick = "off (not configured)"
        elif self.pickscore_default:
            pick = f"on ({display_name(s.pick_model)}, loads with the first generate; untick PickScore to skip it)"
        else:
            pick = (f"off on the CPU, one click away: tick PickScore in Generate ({display_name(s.pick_model)}, "
                    "a ViT-H/14 that adds about a fifth to a run here)")
        if s.moderation == "off":
            moderation = "off (set by the operator)"
        else:
            checker = (f"a CLIP concept check (CompVis' checker: --safety-model {DEFAULT_SAFETY_MODEL})"
                       if s.safety_model == "concepts" else display_name(s.safety_model))
            moderation = f"{s.moderation}: {checker}, loads with the first generate"
        cpu_tiny = self.device.type == "cpu" and s.decoder == "auto"
        decoder = ("TAESD on the CPU (--decoder full for the full VAE)" if cpu_tiny
                   else "the pipeline's VAE" if s.decoder in ("auto", "full") else display_name(s.decoder))
        chinese = (f"{display_name(s.zh_clip_model)} scores Chinese text; "
                   + (f"{display_name(s.translator)} translates Chinese prompts" if s.zh_mode == "translate"
                      else f"{display_name(s.zh_sd_model)} draws them") + "; both load with the first Chinese text")
        return {"PickScore": pick, "moderation": moderation, "decoder": decoder, "Chinese": chinese}

    def model_sources(self, model_ids: dict[str, str | None]) -> dict[str, dict[str, str]]:
        """{role: {"model", "weights"}} for the given roles' models that were loaded (weights: which file)."""
        return {role: {"model": display_name(model_id), "weights": MODELS.weights[model_id]}
                for role, model_id in model_ids.items() if model_id and model_id in MODELS.weights}

    def moderator(self) -> tuple[SafetyChecker | ConceptChecker | None, list[str]]:
        """The configured checker, or None with a notice. Raises when moderation is "on" and none loads."""
        s = self.settings
        if s.moderation == "off":
            return None, []
        try:
            if s.safety_model == "concepts":
                concepts = list(s.moderation_concepts) or list(DEFAULT_CONCEPTS)
                checker = ConceptChecker(self.scorer(), concepts)
                if s.moderation_neutral:
                    checker.neutral = list(s.moderation_neutral)
            else:
                spec = s.spec("safety_model")
                model, processor = load_safety_checker(spec, self.device, self.dtype)
                checker = SafetyChecker(model, processor, name=display_name(s.safety_model))
            if s.moderation_threshold is not None:
                checker.threshold = s.moderation_threshold
            return checker, []
        except ModelLoadError as exc:
            if s.moderation == "on" or s.explicit("safety_model"):
                raise ModelLoadError(f"Moderation is on but no checker could be loaded, so no image is shown. {exc}") from exc
            return None, [f"⚠️ Moderation unavailable: images are shown unchecked. {exc}"]

    def moderate(self, images: Sequence[Image.Image]) -> tuple[list[Verdict], str]:
        """Verdicts for images (the Moderate tab), and the checker's name."""
        checker, notices = self.moderator()
        if checker is None:
            raise ModelLoadError(notices[0] if notices else "Moderation is off on this server.")
        return checker.check(list(images)), checker.name

    def pipeline(self, model_id: str | None = None):
        """A text-to-image pipeline with the chosen decoder, built on first use. Raises ModelLoadError."""
        model_id = model_id or self.settings.sd_model
        with self._lock:
            if model_id not in self._pipes:
                self._pipes[model_id] = self._assemble_pipeline(model_id)
            return self._pipes[model_id]

    def _assemble_pipeline(self, model_id: str):
        import torch

        if model_id == self.settings.sd_model:
            spec = self.sd_spec
        else:
            spec = self.settings.spec("zh_sd_model", model_id)
        base = load_text2image(spec, self.device, self.dtype)
        decoder = self._tiny_decoder(base)
        # from_pipe casts every component to its dtype argument, fp32 when none is given, in place: without
        # it the shared UNet and TAESD would silently leave bf16/fp16.
        pipe = base if decoder is None else type(base).from_pipe(base, vae=decoder, dtype=self.dtype)
        # fp32 or bf16 on the CPU: faster convolution algorithms, same images (torch.compile picks its own kernels).
        fast_conv = (self.settings.fast_conv and not self.settings.compile
                     and self.device.type == "cpu" and self.dtype in (torch.float32, torch.bfloat16))
        for model in (pipe.unet, pipe.vae):
            use_fast_cpu_convolutions(model, enabled=fast_conv)
        # bf16 on the CPU: attention as blocked bf16 matrix multiplies instead of the fp32-bound fused kernel.
        fast_attention = (self.settings.fast_attention and not self.settings.compile
                          and self.device.type == "cpu" and self.dtype == torch.bfloat16)
        use_fast_cpu_attention(pipe.unet, enabled=fast_attention)
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
        spec = self.settings.spec("decoder", choice if named else DEFAULT_TAESD)
        try:
            decoder = load_tiny_decoder(spec, self.device, self.dtype)
        except ModelLoadError as exc:
            if named:
                raise
            self.notices.append(f"The fast TAESD decoder could not be loaded, so the pipeline's full VAE decodes "
                                f"(slower, same composition). {exc}")
            return None
        self.decoder_name = choice if named and not is_local(choice) else "TAESD"
        self.decoder_model = spec.model_id
        return decoder

    def translate(self, text: str) -> tuple[str | None, list[str]]:
        """(English translation or None, notices). A translator that cannot load is reported, not fatal."""
        spec = self.settings.spec("translator")
        try:
            model, tokenizer = load_translator(spec, self.device)
        except ModelLoadError as exc:
            return None, [f"The zh→en translator could not be loaded, so the Chinese prompt went to the pipeline "
                          f"untranslated. {exc}"]
        import torch

        with torch.inference_mode():
            tokens = tokenizer([text], return_tensors="pt", truncation=True).to(self.device)
            limit = min(96, getattr(model.config, "max_position_embeddings", 512) - 2)  # positions are finite
            output = model.generate(**tokens, max_new_tokens=limit, num_beams=4)
        return tokenizer.batch_decode(output, skip_special_tokens=True)[0].strip(), []

    # -- capabilities ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None,
                 scorer: str = "auto", sd_model: str | None = None, scheduler: str = "default",
                 should_stop=None, pickscore: bool | None = None) -> RankResult:
        """Generate N candidates and rank them by score against the prompt as typed.

        `sd_model` picks another configured pipeline (Compare tab); `scheduler` swaps its sampler;
        `pickscore` also scores with PickScore (None: the server's default, see `pickscore_default`).
        """
        request = request.validated()
        if sd_model is not None and sd_model not in self.generation_models():
            raise InputError(f"'{sd_model}' is not one of this server's models: {', '.join(self.generation_models())}.")
        clip, notices = self.scorer_for([request.prompt], scorer)  # fail before the slow part
        notices += self.prompt_notices(clip, request.prompt)
        model_id, model_request, translation = sd_model or self.settings.sd_model, request, None
        if has_cjk(request.prompt) and sd_model is None:
            if self.settings.zh_mode == "native":
                model_id = self.settings.zh_sd_model
            else:
                translation, more = self.translate(request.prompt)
                notices += more
                if translation:
                    model_request = replace(request, prompt=translation)
        known = len(self.notices)
        pipe = self.pipeline(model_id)
        notices += self.notices[known:]  # e.g. the decoder fell back while loading
        if scheduler != "default":
            pipe = self.with_scheduler(pipe, scheduler)
        candidates, fewer = self._generate_within_memory(pipe, model_request, progress, should_stop)
        if fewer:
            notices.append(fewer)
            request = replace(request, n=len(candidates))
        scorers, more = self.ranking_scorers(clip, pickscore)
        notices += more
        rank_by = self.settings.rank_by if self.settings.rank_by in dict(scorers) else "clip"
        if rank_by != self.settings.rank_by:
            notices.append(f"Sorted by CLIPScore: {self.settings.rank_by} is unavailable.")
        ranked = rank_candidates(candidates, request.prompt, scorers, rank_by)  # always the prompt as typed
        broken = [item for item in ranked if item.problem]
        if broken:
            notices.append(f"{len(broken)} of {len(ranked)} images were not ranked: {broken[0].problem}.")
        checker, more = self.moderator()
        notices += more + self._moderate_ranked(ranked, checker)
        s = self.settings
        models = self.model_sources({
            "generator": model_id, "decoder": self.decoder_model, "clip": clip.name,
            "pickscore": s.pick_model if "pickscore" in dict(scorers) else None,
            "safety_checker": s.safety_model if checker is not None and s.safety_model != "concepts" else None,
            "translator": s.translator if translation else None,
        })
        return RankResult(request, model_id, clip.name, ranked, notices, translated_prompt=translation,
                          rank_by=rank_by, models=models)

    def _moderate_ranked(self, ranked, checker) -> list[str]:
        """Check every image; blur the flagged ones in place. Returns notices for the user."""
        notices: list[str] = []
        if checker is None or not ranked:
            return notices
        verdicts = checker.check([item.image for item in ranked])
        flagged = 0
        for item, verdict in zip(ranked, verdicts):
            item.moderation = verdict.as_json()
            if verdict.flagged:
                item.image = blur(item.image, verdict)
                flagged += 1
        if flagged:
            concept, score = max((v.top for v in verdicts if v.flagged), key=lambda t: t[1])
            notices.append(f"{flagged} image(s) flagged by {checker.name} ({concept}, score {score:.2f} over "
                           f"threshold {checker.threshold:g}) and blurred.")
        return notices

    def _generate_within_memory(self, pipe, request: GenerationRequest, progress, should_stop):
        """Generate; on GPU out-of-memory, retry with half the candidates until one fits.

        Returns (candidates, notice or None). The seeds stay seed, seed+1, ... so the kept images are the
        same ones a full run would have made.
        """
        import torch

        n = request.n
        while True:
            attempt = replace(request, n=n)
            with self._lock:
                pipe_lock = self._pipe_locks.setdefault(id(pipe.unet), threading.Lock())
            try:
                with pipe_lock:
                    candidates = generate_candidates(pipe, attempt, progress, self._prompt_embeddings(pipe, attempt),
                                                     should_stop)
            except torch.cuda.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if n == 1:
                    raise InputError("The GPU ran out of memory even for one image: try a smaller size.") from None
                n = max(1, n // 2)
                continue
            if n < request.n:
                return candidates, f"The GPU ran out of memory for {request.n} candidates, so {n} were generated."
            return candidates, None

    def generation_models(self) -> list[str]:
        """Models a request may pick: the configured ones only (a web user never types a path)."""
        models = [self.settings.sd_model]
        if self.settings.zh_mode == "native" and self.settings.zh_sd_model not in models:
            models.append(self.settings.zh_sd_model)
        return models + [m for m in self.settings.compare_models if m not in models]

    def with_scheduler(self, pipe, name: str):
        """The same components with another sampler; the cached pipeline is left as it was."""
        from .compare import SCHEDULERS, scheduler_class

        if name not in SCHEDULERS:
            raise InputError(f"Unknown scheduler '{name}'. Choose one of: {', '.join(SCHEDULERS)}.")
        cls = scheduler_class(name)
        if cls is None:
            return pipe
        # dtype: from_pipe would otherwise cast the shared components to fp32 in place (see _assemble_pipeline).
        # vae: from_pipe drops a TAESD that replaced the pipeline's own VAE, then fails for want of one.
        return type(pipe).from_pipe(pipe, scheduler=cls.from_config(pipe.scheduler.config), vae=pipe.vae,
                                    dtype=self.dtype)

    def compare(self, prompt: str, seed: int | None, n: int, a, b, width: int | None = None,
                height: int | None = None, progress: ProgressFn | None = None, scorer: str = "auto"):
        """Generate with settings A and B on the same seeds and compare their scores."""
        from .compare import Comparison

        d = self.settings.defaults
        a, b = a.check(), b.check()
        first = GenerationRequest(prompt, a.negative_prompt, n, a.steps, a.guidance, width or d.width,
                                  height or d.height, seed).validated()
        second = replace(first, negative_prompt=b.negative_prompt, steps=b.steps, guidance=b.guidance).validated()
        result_a = self.generate(first, progress, scorer, a.model, a.scheduler)
        result_b = self.generate(second, progress, scorer, b.model, b.scheduler)
        seeds = [first.seed + i for i in range(first.n)]
        return Comparison(result_a, result_b, result_a.rank_by, seeds)

    def _prompt_embeddings(self, pipe, request: GenerationRequest):
        """Text-encoder output for (prompt, negative, guidance on/off), cached: re-runs skip the encoder."""
        from diffusers import StableDiffusionPipeline

        if not isinstance(pipe, StableDiffusionPipeline):
            return None
        use_cfg = request.guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None
        key = (id(pipe.text_encoder), request.prompt, request.negative_prompt, use_cfg)
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
        if scorer.is_truncated(prompt):
            return [
                f"The prompt is {scorer.count_tokens(prompt)} tokens long; CLIP reads only the first "
                f"{scorer.max_text_tokens}, so the rest was ignored for scoring."
            ]
        return []

    def classify(
        self,
        images: Sequence[Image.Image],
        labels: str | Sequence[str],
        template: str | None = None,
        top_k: int | None = None,
        names: Sequence[str] | None = None,
        scorer: str = "auto",
    ) -> ZeroShotResult:
        from .text import parse_labels
        from .evaluation import load_templates

        label_list = parse_labels(labels if isinstance(labels, str) else list(labels))
        if not (template or "").strip():  # no template given: one in the labels' language
            template = load_templates("single", label_list)[1][0]
        template = check_template(template)  # before any model loads: bad input fails fast
        clip, notices = self.scorer_for(label_list + [template], scorer)
        result = ZeroShotResult(clip.name, classify(clip, images, label_list, template, top_k, names), notices)
        result.template = template
        return result

    def similarity(
        self, images: Sequence[Image.Image], texts: Sequence[str], names: Sequence[str] | None = None,
        scorer: str = "auto",
    ) -> SimilarityResult:
        texts = check_texts(list(texts))  # before any model loads
        clip, notices = self.scorer_for(texts, scorer)
        result = similarity(clip, images, texts, names)
        result.scorer, result.notices = clip.name, notices
        return result

    def evaluate(
        self,
        image_set: ImageSet,
        templates: str = "single",
        batch_size: int = 64,
        num_workers: int = 0,
        progress=None,
        accelerator=None,
        scorer: str = "auto",
    ) -> EvalResult:
        """Zero-shot top-1/top-5 of a labelled image set against its class labels."""
        name, template_list = load_templates(templates, image_set.labels)
        clip, notices = self.scorer_for(image_set.labels + template_list, scorer)
        result = evaluate(clip, image_set, template_list, name, batch_size, num_workers, progress, accelerator)
        result.notices = notices + result.notices
        return result
