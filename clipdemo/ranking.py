"""Score candidates, sort them best-first, and write them out with a manifest.

Scores are computed on the 8-bit image exactly as it is saved (PNG is lossless), so a score in the
manifest can be reproduced from the file alone. Scores keep full precision; only displays round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .generation import Candidate, GenerationRequest
from .scoring import ClipScorer


@dataclass
class RankedImage:
    rank: int
    seed: int
    image: Image.Image
    scores: dict[str, float]  # scorer name -> value, e.g. {"clip": 31.4}
    problem: str | None = None

    @property
    def clip_score(self) -> float | None:
        return self.scores.get("clip")

    def caption(self) -> str:
        if self.problem:
            return f"#{self.rank} · not ranked: {self.problem} · seed {self.seed}"
        return f"#{self.rank} · CLIP {self.clip_score:.1f} · seed {self.seed}"


@dataclass
class RankResult:
    request: GenerationRequest
    sd_model: str
    clip_model: str
    images: list[RankedImage]
    notices: list[str] = field(default_factory=list)  # things the user must see (truncation, fallbacks)


def rank_candidates(candidates: list[Candidate], prompt: str, scorer: ClipScorer) -> list[RankedImage]:
    """Score every usable candidate against the prompt; broken ones go last with no score."""
    usable = [c for c in candidates if c.problem is None]
    scores = scorer.clip_scores([c.image for c in usable], prompt) if usable else []
    scored = sorted(zip(usable, scores), key=lambda pair: pair[1], reverse=True)
    ranked = [RankedImage(0, c.seed, c.image, {"clip": float(s)}) for c, s in scored]
    ranked += [RankedImage(0, c.seed, c.image, {}, c.problem) for c in candidates if c.problem is not None]
    for rank, item in enumerate(ranked, start=1):
        item.rank = rank
    return ranked


def image_filename(item: RankedImage) -> str:
    return f"rank{item.rank:02d}_seed{item.seed}.png"


def manifest(result: RankResult) -> dict[str, Any]:
    """The JSON record of a run; `file` entries are relative to the folder the images are written to."""
    req = result.request
    return {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "sd_model": result.sd_model,
        "clip_model": result.clip_model,
        "steps": req.steps,
        "guidance": req.guidance,
        "width": req.width,
        "height": req.height,
        "images": [
            {
                "rank": item.rank,
                "seed": item.seed,
                "clip_score": item.clip_score,
                "scores": dict(item.scores),
                "file": image_filename(item),
                **({"problem": item.problem} if item.problem else {}),
            }
            for item in result.images
        ],
        "notices": list(result.notices),
    }


def write_run(result: RankResult, out_dir: str | Path) -> Path:
    """Write each image and then manifest.json. Each file is written whole, then renamed into place."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in result.images:
        _atomic_write(out / image_filename(item), lambda f, im=item.image: im.save(f, format="PNG"))
    data = json.dumps(manifest(result), ensure_ascii=False, indent=2).encode("utf-8")
    _atomic_write(out / "manifest.json", lambda f: f.write(data))
    return out / "manifest.json"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)
