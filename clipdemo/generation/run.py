"""One generate, top to bottom: validate, score, pick the pipeline, generate, rank, moderate, report, write.

Each step is a small function below `generate`; the result is built once, at the end.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import InputError
from ..moderation import moderate_ranked, moderator
from .ranking import RankedImage, RankResult, rank_candidates
from ..scorers import prompt_notices, ranking_scorers, scorer_for
from ..scoring import ClipScorer
from ..storage import DiskPolicy, ensure_space, run_bytes
from ..text import has_cjk
from .candidates import Candidate, generate_within_memory
from .output import encode_ahead, write_run
from ..models.pipeline import generation_models, with_scheduler
from .request import GenerationRequest, ProgressFn
from .translate import translate

if TYPE_CHECKING:
    from ..models import ModelRegistry


def generate(models: ModelRegistry, request: GenerationRequest, progress: ProgressFn | None = None,
             scorer: str | None = "auto", sd_model: str | None = None, scheduler: str = "default",
             should_stop: Callable[[], bool] | None = None, pickscore: bool | None = None,
             out_dir: str | Path | None = None, archive: str | Path | None = None,
             prunable: Sequence[Path] = ()) -> RankResult:
    """Generate N candidates and rank them by score against the prompt as typed.

    `sd_model` picks another configured pipeline (Compare tab); `scheduler` swaps its sampler;
    `pickscore` also scores with PickScore (None: the server's default, see `scorers.pickscore_default`).
    With `out_dir` the run's PNGs and manifest (and with `archive` a zip) are written before it returns; the
    space for them is checked first (`prunable`: a server's temp folders, pruned when the disk runs low).
    """
    # 1. Validate the request and the chosen model, before anything loads.
    request = request.validated()
    check_model(models, sd_model)
    if out_dir is not None:  # refused before the work, not half way through writing it
        ensure_space(out_dir, run_bytes(request.n, request.width, request.height),
                     DiskPolicy.from_settings(models.settings), prunable)
    # 2. Pick the scorer now: one that cannot load fails before the slow part.
    clip, notices = scorer_for(models, [request.prompt], scorer)
    notices += prompt_notices(clip, request.prompt)
    # 3. Pick the pipeline: a Chinese prompt goes to the Chinese pipeline, or is translated for the English one.
    model_id, drawn, translation, more = route(models, request, sd_model)
    pipe, loading_notices = load_pipeline(models, model_id, scheduler)
    notices += more + loading_notices
    # 4. Generate the candidates, fewer if the GPU runs out of memory (same seeds).
    candidates, fewer = generate_within_memory(pipe, drawn, models.pipe_lock(pipe), models.prompts, progress,
                                               should_stop)
    if fewer:
        notices.append(fewer)
        request = replace(request, n=len(candidates))
    encoded = encode_ahead(candidates) if out_dir is not None else None  # while scoring
    # 5. Rank against the prompt as typed, not its translation.
    ranked, rank_by, kinds, more = rank(models, candidates, request.prompt, clip, pickscore)
    notices += more
    # 6. Moderate: flagged images are blurred in place.
    checker, more = moderator(models)
    notices += more + moderate_ranked(ranked, checker)
    # 7. The result, built once.
    result = RankResult(request, model_id, clip.name, ranked, notices, translated_prompt=translation,
                        rank_by=rank_by, models=sources(models, model_id, clip, kinds, checker, translation),
                        score_dtypes=kinds)
    # 8. Its files, when asked for: written before the result is returned.
    if out_dir is not None:
        result.files = write_run(result, out_dir, encoded, archive)
    return result


def check_model(models: ModelRegistry, sd_model: str | None) -> None:
    """A pipeline a request names must be one this server configured."""
    allowed = generation_models(models.settings)
    if sd_model is not None and sd_model not in allowed:
        raise InputError(f"'{sd_model}' is not one of this server's models: {', '.join(allowed)}.")


def route(models: ModelRegistry, request: GenerationRequest, sd_model: str | None
          ) -> tuple[str, GenerationRequest, str | None, list[str]]:
    """(the pipeline's model id, the request it sees, the translation or None, notices)."""
    s = models.settings
    if sd_model is not None or not has_cjk(request.prompt):
        return sd_model or s.sd_model, request, None, []
    if s.zh_mode == "native":
        return s.zh_sd_model, request, None, []
    translation, notices = translate(models, request.prompt)
    return s.sd_model, replace(request, prompt=translation) if translation else request, translation, notices


def load_pipeline(models: ModelRegistry, model_id: str, scheduler: str) -> tuple[Any, list[str]]:
    """The pipeline with the chosen sampler, and what went wrong while it loaded (a decoder fallback, say)."""
    known = len(models.notices)
    pipe = models.pipeline(model_id)
    notices = models.notices[known:]
    return (pipe if scheduler == "default" else with_scheduler(pipe, scheduler, models.dtype)), notices


def rank(models: ModelRegistry, candidates: list[Candidate], prompt: str, clip: ClipScorer, pickscore: bool | None
         ) -> tuple[list[RankedImage], str, dict[str, str], list[str]]:
    """(ranked images, the score sorted by, the score kinds computed with the dtype each ran in, notices)."""
    scorers, notices = ranking_scorers(models, clip, pickscore)
    wanted = models.settings.rank_by
    rank_by = wanted if wanted in dict(scorers) else "clip"
    if rank_by != wanted:
        notices.append(f"Sorted by CLIPScore: {wanted} is unavailable.")
    ranked = rank_candidates(candidates, prompt, scorers, rank_by)
    broken = [item for item in ranked if item.problem]
    if broken:
        notices.append(f"{len(broken)} of {len(ranked)} images were not ranked: {broken[0].problem}.")
    return ranked, rank_by, {kind: str(model.dtype).replace("torch.", "") for kind, model in scorers}, notices


def sources(models: ModelRegistry, model_id: str, clip: ClipScorer, kinds: dict[str, str], checker: Any,
            translation: str | None) -> dict[str, dict[str, str]]:
    """Which model filled each role of this run, and from which weights."""
    s = models.settings
    return models.sources({
        "generator": model_id, "decoder": models.decoder_model, "clip": clip.name,
        "pickscore": s.pick_model if "pickscore" in kinds else None,
        "safety_checker": s.safety_model if checker is not None and s.safety_model != "concepts" else None,
        "translator": s.translator if translation else None,
    })
