"""Score candidates and sort them best-first.

Scores are computed on the 8-bit image exactly as it is saved (PNG is lossless), so a score in the
manifest can be reproduced from the file alone. Scores keep full precision; only displays round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..scoring import SCORE_KINDS, ClipScorer
from .candidates import Candidate
from .output import manifest
from .request import GenerationRequest


@dataclass
class RankedImage:
    rank: int
    seed: int
    image: Image.Image
    scores: dict[str, float]  # scorer name -> value, e.g. {"clip": 31.4, "pickscore": 21.2}
    problem: str | None = None
    moderation: dict | None = None  # Verdict.as_json() when a checker looked at it

    @property
    def clip_score(self) -> float | None:
        return self.scores.get("clip")

    def caption(self) -> str:
        if self.problem:
            return f"#{self.rank} · not ranked: {self.problem} · seed {self.seed}"
        scores = " · ".join(f"{SCORE_KINDS[k].label} {v:.1f}" for k, v in self.scores.items())
        flag = " · ⚠️ flagged, blurred" if self.moderation and self.moderation["flagged"] else ""
        return f"#{self.rank} · {scores} · seed {self.seed}{flag}"


@dataclass
class RankResult:
    request: GenerationRequest
    sd_model: str
    clip_model: str
    images: list[RankedImage]
    notices: list[str] = field(default_factory=list)  # things the user must see (truncation, fallbacks)
    rank_by: str = "clip"
    translated_prompt: str | None = None  # what the pipeline saw, when a Chinese prompt was translated
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> {"model", "weights"} that ran
    score_dtypes: dict[str, str] = field(default_factory=dict)  # score kind -> the dtype its model ran in
    files: Any = None  # generation.output.RunFiles once the run is written

    def manifest(self) -> dict[str, Any]:
        """The run's JSON record, as manifest.json holds it."""
        return manifest(self)

    def reduced_precision(self) -> dict[str, str]:
        """The scores computed below fp32 (PickScore in bf16, say), which the manifest and the page name."""
        return {kind: dtype for kind, dtype in self.score_dtypes.items() if dtype != "float32"}


def rank_candidates(candidates: list[Candidate], prompt: str, scorers: list[tuple[str, ClipScorer]],
                    rank_by: str = "clip") -> list[RankedImage]:
    """Score every usable candidate with every scorer; sort by `rank_by`; broken ones go last unscored.

    `scorers` pairs a score kind ("clip", "pickscore") with the model that computes it. The order
    follows the raw cosine of the `rank_by` scorer: CLIPScore clamps negative cosines to 0, and
    candidates that all score 0 must still be ordered by how close they are to the prompt.
    """
    usable = [c for c in candidates if c.problem is None]
    if rank_by not in {kind for kind, _ in scorers}:
        raise ValueError(f"no scorer named {rank_by!r}")
    images = candidate_pixels(usable)
    cosines = {kind: model.cosine(images, [prompt])[:, 0] for kind, model in scorers} if usable else {}
    table = {kind: SCORE_KINDS[kind].value(cosines[kind], model.logit_scale).tolist() if usable else []
             for kind, model in scorers}
    rows = [{kind: float(values[i]) for kind, values in table.items()} for i in range(len(usable))]
    order = cosines[rank_by].tolist() if usable else []
    scored = [(usable[i], rows[i]) for i in sorted(range(len(usable)), key=lambda i: order[i], reverse=True)]
    ranked = [RankedImage(0, c.seed, c.image, scores) for c, scores in scored]
    ranked += [RankedImage(0, c.seed, c.image, {}, c.problem) for c in candidates if c.problem is not None]
    for rank, item in enumerate(ranked, start=1):
        item.rank = rank
    return ranked


def candidate_pixels(candidates: list[Candidate]) -> torch.Tensor | list[Image.Image]:
    """The candidates as one 8-bit batch on the generator's device when they have one, else their PIL images."""
    if candidates and all(c.pixels is not None for c in candidates):
        return torch.stack([c.pixels for c in candidates])
    return [c.image for c in candidates]
