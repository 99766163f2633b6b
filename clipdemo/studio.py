"""The one object the UI and the CLI talk to: it resolves models lazily and runs each capability.

Each method takes plain Python values, validates them, and returns a small dataclass. Failures come
out as InputError (bad input) or ModelLoadError (a model that will not load); nothing here knows
about gradio or argparse.
"""

from __future__ import annotations

import threading
from typing import Sequence

from PIL import Image

from .config import Settings
from .generation import GenerationRequest, ProgressFn, generate_candidates
from .loading import ModelSpec, load_clip, load_text2image, pick_device, pick_dtype
from .ranking import RankResult, rank_candidates
from .scoring import ClipScorer
from .similarity import SimilarityResult, similarity
from .text import DEFAULT_TEMPLATE, has_cjk
from .zeroshot import Classification, classify


class Studio:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        self._lock = threading.Lock()
        self._scorer: ClipScorer | None = None

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
        """The text-to-image pipeline, loaded on first use. Raises ModelLoadError."""
        return load_text2image(self.sd_spec, self.device, self.dtype)

    # -- capabilities ---------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> RankResult:
        """Generate N candidates and rank them by CLIPScore against the prompt as typed."""
        request = request.validated()
        scorer = self.scorer()  # fail before the slow part if scoring cannot work
        notices = self.prompt_notices(scorer, request.prompt)
        candidates = generate_candidates(self.pipeline(), request, progress)
        ranked = rank_candidates(candidates, request.prompt, scorer)
        broken = [item for item in ranked if item.problem]
        if broken:
            notices.append(f"{len(broken)} of {len(ranked)} images were not ranked: {broken[0].problem}.")
        return RankResult(request, self.settings.sd_model, self.settings.clip_model, ranked, notices)

    def prompt_notices(self, scorer: ClipScorer, prompt: str) -> list[str]:
        notices = []
        if scorer.is_truncated(prompt):
            notices.append(
                f"The prompt is {scorer.count_tokens(prompt)} tokens long; CLIP reads only the first "
                f"{scorer.max_text_tokens}, so the rest was ignored for scoring."
            )
        if has_cjk(prompt):
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
