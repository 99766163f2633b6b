"""How an image was made, written into its PNG text chunks and read back.

Every PNG the app or the CLI writes carries its parameters, so an image that leaves the app can say
which prompt, seed, models and scores produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .errors import InputError

KEY = "clipdemo"  # one iTXt chunk holding JSON; a plain "parameters" chunk mirrors it for other tools


def image_metadata(result: Any, item: Any) -> dict:
    """The parameters of one ranked image (`result` is a RankResult, `item` one of its RankedImages)."""
    from . import __version__

    req = result.request
    return {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "seed": item.seed,
        "steps": req.steps,
        "guidance": req.guidance,
        "width": req.width,
        "height": req.height,
        "sd_model": result.sd_model,
        "clip_model": result.clip_model,
        "scorers": sorted(item.scores),
        "scores": dict(item.scores),
        "rank": item.rank,
        "rank_by": result.rank_by,
        "translated_prompt": result.translated_prompt,
        "moderation": item.moderation,
        "clipdemo_version": __version__,
    }


def save_png(image: Image.Image, path_or_file, metadata: dict) -> None:
    info = PngImagePlugin.PngInfo()
    text = json.dumps(metadata, ensure_ascii=False)
    info.add_itxt(KEY, text)
    info.add_itxt("parameters", text)
    image.save(path_or_file, format="PNG", pnginfo=info)


def read_metadata(path: str | Path) -> dict | None:
    """The clipdemo parameters stored in a PNG, or None when it has none."""
    try:
        with Image.open(path) as image:
            image.load()
            text = getattr(image, "text", {}).get(KEY)
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{Path(path).name}: not a readable image.") from None
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
