"""A run's files, written by one writer: the ranked PNGs (with their provenance), manifest.json and a zip.

The PNGs are compressed in a worker thread while the candidates are scored (`encode_ahead`); the scores,
known later, go into small text chunks added to the finished PNG. A run's files exist before its result
is returned, and manifest.json is written last, so a folder with a manifest holds every file it names.
"""

from __future__ import annotations

import json
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..files import write_atomic
from ..provenance import image_metadata, png_bytes, run_fields, tagged_png
from ..storage import no_space

_ENCODER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="png")  # zlib releases the GIL


@dataclass
class RunFiles:
    folder: Path
    manifest: Path
    images: list[Path]  # in rank order
    archive: Path | None = None


class EncodedPngs:
    """PNG bytes of candidates being compressed in the background, by seed."""

    def __init__(self, candidates: list[Any]) -> None:
        self._futures: dict[int, tuple[Image.Image, Future]] = {
            c.seed: (c.image, _ENCODER.submit(png_bytes, c.image)) for c in candidates}

    def get(self, item: Any) -> bytes:
        """The PNG of a ranked image; one whose image was replaced since (a moderation blur) is encoded now."""
        entry = self._futures.get(item.seed)
        return entry[1].result() if entry is not None and entry[0] is item.image else png_bytes(item.image)


def encode_ahead(candidates: list[Any]) -> EncodedPngs:
    return EncodedPngs(candidates)


def image_filename(item: Any) -> str:
    return f"rank{item.rank:02d}_seed{item.seed}.png"


def manifest(result: Any) -> dict[str, Any]:
    """The JSON record of a run (a RankResult); `file` entries are relative to the run's folder."""
    return {
        **run_fields(result),
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


def write_run(result: Any, out_dir: str | Path, encoded: EncodedPngs | None = None,
              archive: str | Path | None = None) -> RunFiles:
    """Write each PNG, then manifest.json, each whole; with `archive`, a zip of them too (from memory). A disk
    that fills meanwhile is a DiskFullError, and the folder then has no manifest."""
    try:
        return _write_run(result, Path(out_dir), encoded, archive)
    except OSError as exc:
        raise no_space(exc, out_dir) or exc from None


def _write_run(result: Any, out: Path, encoded: EncodedPngs | None, archive: str | Path | None) -> RunFiles:
    # 1. The images, in rank order, each with its provenance.
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for item in result.images:
        png = encoded.get(item) if encoded is not None else png_bytes(item.image)
        pngs[image_filename(item)] = tagged_png(png, image_metadata(result, item))
        write_atomic(out / image_filename(item), pngs[image_filename(item)])
    # 2. The manifest last: it claims only files that exist.
    data = json.dumps(manifest(result), ensure_ascii=False, indent=2).encode("utf-8")
    files = RunFiles(out, write_atomic(out / "manifest.json", data), [out / name for name in pngs])
    # 3. The zip, from the bytes just written rather than read back.
    if archive is not None:
        files.archive = write_atomic(archive, lambda tmp: _zip(tmp, {"manifest.json": data, **pngs}))
    return files


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():  # PNGs are compressed already; deflating them again gains nothing
            zf.writestr(name, data, zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED)
