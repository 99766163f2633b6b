"""How an image was made, written into its PNG text chunks and read back.

Every PNG the app or the CLI writes carries its parameters, so an image that leaves the app can say
which prompt, seed, models and scores produced it.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import InputError
from .version import __version__

KEY = "clipdemo"  # one iTXt chunk holding JSON; a plain "parameters" chunk mirrors it for other tools


def run_fields(result: Any) -> dict:
    """What a run asked for and which models ran it: shared by manifest.json and every PNG's metadata."""
    req = result.request
    return {"prompt": req.prompt, "negative_prompt": req.negative_prompt, "sd_model": result.sd_model,
            "clip_model": result.clip_model, "steps": req.steps, "guidance": req.guidance, "width": req.width,
            "height": req.height, "rank_by": result.rank_by}


def image_metadata(result: Any, item: Any) -> dict:
    """The parameters of one ranked image (`result` is a RankResult, `item` one of its RankedImages)."""
    return {
        **run_fields(result),
        "seed": item.seed,
        "scorers": sorted(item.scores),
        "scores": dict(item.scores),
        "rank": item.rank,
        "translated_prompt": result.translated_prompt,
        "moderation": item.moderation,
        "clipdemo_version": __version__,
    }


def png_bytes(image: Image.Image) -> bytes:
    """The PNG of an image without metadata: the costly part (compression), done before the scores exist."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def tagged_png(png: bytes, metadata: dict) -> bytes:
    """A PNG with its metadata added as iTXt chunks just before IEND (PNG allows text chunks after the data)."""
    text = json.dumps(metadata, ensure_ascii=False).encode("utf-8")
    end = png.rindex(b"IEND") - 4  # the IEND chunk starts with its 4-byte length
    chunks = b"".join(_itxt(key, text) for key in (KEY, "parameters"))  # "parameters" mirrors it for other tools
    return png[:end] + chunks + png[end:]


def _itxt(key: str, text: bytes) -> bytes:
    # keyword, NUL, uncompressed (0, 0), empty language tag and translated keyword, then UTF-8 text
    data = key.encode("latin-1") + b"\0\0\0\0\0" + text
    return struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))


def save_png(image: Image.Image, path_or_file, metadata: dict, encoded: bytes | None = None) -> None:
    """Write an image with its metadata; `encoded` is its png_bytes when they were made ahead."""
    data = tagged_png(encoded if encoded is not None else png_bytes(image), metadata)
    if hasattr(path_or_file, "write"):
        path_or_file.write(data)
    else:
        Path(path_or_file).write_bytes(data)


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
