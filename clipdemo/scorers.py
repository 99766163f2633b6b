"""Which CLIP scores which text, whether PickScore joins a ranking, and the helpers' state in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .config import DEFAULT_SAFETY_MODEL
from .errors import InputError, ModelLoadError
from .text import display_name
from .scoring import ClipScorer
from .text import has_cjk

if TYPE_CHECKING:
    from .models import ModelRegistry

SCORER_CHOICES = ("auto", "english", "chinese")


def scorer_for(models: ModelRegistry, texts: Sequence[str], choice: str | None = "auto"
               ) -> tuple[ClipScorer, list[str]]:
    """The scorer for these texts, and notices for the user.

    auto: text with CJK characters goes to the Chinese-capable scorer (--zh-clip-model), the rest to
    the English one. If the Chinese scorer cannot be loaded, the English one scores and says so,
    unless the user named the Chinese model, which is then an error. None means auto (an API caller's default).
    """
    s, choice = models.settings, choice or "auto"
    if choice not in SCORER_CHOICES:
        raise InputError(f"Unknown scorer '{choice}'. Choose one of: {', '.join(SCORER_CHOICES)}.")
    chinese_text = any(has_cjk(t) for t in texts)
    if not (choice == "chinese" or choice == "auto" and chinese_text) or s.zh_clip_model == s.clip_model:
        if choice == "english" and chinese_text:
            return models.scorer(), [f"Chinese text was scored by {display_name(s.clip_model)}, an English CLIP, "
                                     "as chosen: its scores are rough."]
        return models.scorer(), []
    try:
        return models.scorer("zh_clip_model"), []
    except ModelLoadError as exc:
        if s.explicit("zh_clip_model"):
            raise
        english = models.scorer()
        return english, [f"The Chinese-capable scorer could not be loaded, so {display_name(english.name)}, an "
                         f"English CLIP, scored this Chinese text: its scores are rough. {exc}"]


def prompt_notices(scorer: ClipScorer, prompt: str) -> list[str]:
    """A notice when the prompt is longer than the scorer reads."""
    if scorer.is_truncated(prompt):
        return [f"The prompt is {scorer.count_tokens(prompt)} tokens long; CLIP reads only the first "
                f"{scorer.max_text_tokens}, so the rest was ignored for scoring."]
    return []


def pickscore_default(models: ModelRegistry) -> bool:
    """Whether a generate scores with PickScore unless told otherwise.

    auto: on a GPU, where its ViT-H/14 is cheap; off on the CPU, where it costs a large share of a run
    and gigabytes of memory, so it stays one click away (the Generate tab's PickScore box, --pickscore on).
    """
    s = models.settings
    if s.pick_model == "none" or s.pickscore == "off":
        return False
    return s.pickscore == "on" or s.rank_by == "pickscore" or models.device.type != "cpu"


def ranking_scorers(models: ModelRegistry, clip: ClipScorer, pickscore: bool | None = None
                    ) -> tuple[list[tuple[str, ClipScorer]], list[str]]:
    """[("clip", clip), ("pickscore", model)] when PickScore is wanted and loads; CLIPScore alone if not."""
    s = models.settings
    if not (pickscore_default(models) if pickscore is None else pickscore):
        return [("clip", clip)], []
    if s.pick_model == "none":
        return [("clip", clip)], ["PickScore is not configured on this server (--pick-model none), so images "
                                  "are ranked by CLIPScore alone."]
    try:
        pick = models.scorer("pick_model")
    except ModelLoadError as exc:
        if s.explicit("pick_model") or s.pickscore == "on":
            raise
        return [("clip", clip)], [f"PickScore is unavailable, so images are ranked by CLIPScore alone. {exc}"]
    return [("clip", clip), ("pickscore", pick)], []


def helpers(models: ModelRegistry) -> dict[str, str]:
    """Each optional helper model and its state, in words for the page: on, off, or one click away."""
    s, cpu = models.settings, models.device.type == "cpu"
    if s.pick_model == "none":
        pick = "off (not configured)"
    elif pickscore_default(models):
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
    decoder = ("TAESD on the CPU (--decoder full for the full VAE)" if cpu and s.decoder == "auto"
               else "the pipeline's VAE" if s.decoder in ("auto", "full") else display_name(s.decoder))
    chinese = (f"{display_name(s.zh_clip_model)} scores Chinese text; "
               + (f"{display_name(s.translator)} translates Chinese prompts" if s.zh_mode == "translate"
                  else f"{display_name(s.zh_sd_model)} draws them") + "; both load with the first Chinese text")
    return {"PickScore": pick, "moderation": moderation, "decoder": decoder, "Chinese": chinese}

