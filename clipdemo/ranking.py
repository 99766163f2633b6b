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
from .provenance import image_metadata, save_png
from .scoring import SCORE_KINDS, ClipScorer


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
    images = [c.image for c in usable]
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
        "rank_by": result.rank_by,
        "images": [
            {
                "rank": item.rank,
                "seed": item.seed,
                "clip_score": item.clip_score,
                "scores": dict(item.scores),
                "file": image_filename(item),
                **({"problem": item.problem} if item.problem else {}),
                **({"moderation": item.moderation} if item.moderation else {}),
            }
            for item in result.images
        ],
        "notices": list(result.notices),
        **({"score_dtypes": dict(result.score_dtypes)} if result.score_dtypes else {}),
        **({"models": result.models} if result.models else {}),
        **({"translated_prompt": result.translated_prompt} if result.translated_prompt else {}),
    }


def write_run(result: RankResult, out_dir: str | Path) -> Path:
    """Write each image and then manifest.json. Each file is written whole, then renamed into place."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in result.images:
        metadata = image_metadata(result, item)
        _atomic_write(out / image_filename(item), lambda f, im=item.image, m=metadata: save_png(im, f, m))
    data = json.dumps(manifest(result), ensure_ascii=False, indent=2).encode("utf-8")
    _atomic_write(out / "manifest.json", lambda f: f.write(data))
    return out / "manifest.json"


def zip_run(out_dir: str | Path, zip_path: str | Path | None = None) -> Path:
    """A zip of a written run: the ranked PNGs (with their metadata) and manifest.json."""
    import zipfile

    out = Path(out_dir)
    zip_path = Path(zip_path) if zip_path else out.with_suffix(".zip")
    data = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(out / "manifest.json", "manifest.json")
        for entry in data["images"]:
            zf.write(out / entry["file"], entry["file"])
    return zip_path


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)
