"""Gradio's cache of returned images and bytes, written so that a file being served is never rewritten.

Gradio names such a file by a hash of its content and writes it in place each time it is returned, so two
visitors given the same image at once (the same upload shown back, the same seed) could each truncate the file the
other is downloading, and one of them got an empty response. Here the first writer renames a finished file into
place and later writers keep it: the name is the content's hash, so the file already there is the same.
"""

from __future__ import annotations

import os
from pathlib import Path

from gradio import processing_utils

from ..files import write_atomic


def _keep_or_place(data: bytes, folder: Path, name: str) -> str:
    """The path of folder/name holding data: the file already there (touched, so age-based pruning keeps it),
    or a new one renamed into place whole."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    try:
        os.utime(path)
        return str(path.resolve())
    except FileNotFoundError:
        pass
    return str(write_atomic(path, data).resolve())


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    data = processing_utils.encode_pil_to_bytes(img, format)
    return _keep_or_place(data, Path(cache_dir) / processing_utils.hash_bytes(data), f"{name}.{format}")


def save_bytes_to_cache(data: bytes, file_name: str, cache_dir: str) -> str:
    if not Path(file_name).suffix:
        file_name += processing_utils.detect_audio_format(data)
    return _keep_or_place(data, Path(cache_dir) / processing_utils.hash_bytes(data), Path(file_name).name)


def install() -> None:
    """Route Gradio's writes of returned images and bytes (galleries, images, files) through the versions above."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
    processing_utils.save_bytes_to_cache = save_bytes_to_cache
