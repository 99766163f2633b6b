"""Open whatever image a user hands us as a plain 8-bit RGB picture, or say clearly why not."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

# Above this many pixels an upload is refused: a 4000x4000 photo is fine, a decompression bomb is not.
MAX_PIXELS = 40_000_000

ImageLike = Union[str, Path, bytes, Image.Image, np.ndarray]


def to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any PIL mode to RGB: first frame of animations, alpha on white, 16-bit scaled to 8."""
    if getattr(image, "is_animated", False):
        image.seek(0)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        top = array.max() if array.max() > 1 else 1.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(source: ImageLike, name: str | None = None) -> Image.Image:
    """Open a path, bytes, array or PIL image as RGB, refusing what is not a usable picture."""
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "image")
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3):
            raise InputError(f"{label}: an image array must be HxW or HxWxC, not shape {source.shape}.")
        array = source
        if array.dtype != np.uint8:
            array = np.clip(np.nan_to_num(array.astype(np.float64)) * (255 if array.max() <= 1 else 1), 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    else:
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
        except OSError as exc:
            raise InputError(f"{label}: cannot read the file ({exc.strerror}).") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
                check_size(image, label)
                image.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(f"{label}: the image is too large (over {MAX_PIXELS:,} pixels).") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise InputError(f"{label}: not a readable image (is it corrupt, or not an image at all?).") from None
    check_size(image, label)
    image = ImageOps.exif_transpose(image) if hasattr(image, "getexif") and image.mode != "P" else image
    return to_rgb(image)


def check_size(image: Image.Image, label: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InputError(f"{label}: the image is empty ({width}x{height}).")
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{label}: the image is too large ({width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels)."
        )
