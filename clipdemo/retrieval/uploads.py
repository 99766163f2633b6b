"""A zip of images to search: unpacked once per content, so a second search of it reuses the images and index."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ..errors import InputError
from ..imagefiles import IMAGE_SUFFIXES, safe_extract_zip

MAX_UPLOAD_FILES = 2000  # images in one uploaded zip
MAX_UPLOAD_BYTES = 200 * 2**20  # uncompressed size of one uploaded zip


def unpacked_images(archive: str | Path, workdir: str | Path) -> Path:
    """The folder `zip-<hash>` under workdir holding the zip's images in `images/` (its index goes in `index/`)."""
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()[:16]
    work = Path(workdir) / f"zip-{digest}"
    if not (work / "images").is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f".zip-{digest}-", dir=workdir))
        images = safe_extract_zip(archive, staging / "images", max_files=MAX_UPLOAD_FILES, max_bytes=MAX_UPLOAD_BYTES)
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in images.rglob("*")):
            raise InputError(f"The zip holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
        try:
            os.replace(staging, work)  # atomic: a concurrent search of the same zip sees all of it or none
        except OSError:
            pass  # another request finished first; its copy is the same
    os.utime(work)  # recently used: pruning keeps it
    return work
