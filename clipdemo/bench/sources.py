"""Where the images to score are, and the prompt each one was made from.

A prompt comes from, in this order: a `file,prompt` CSV the user gives, clipdemo's own PNG provenance,
AUTOMATIC1111's `parameters` text, or ComfyUI's `prompt` graph. Nothing here loads a model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import InputError
from ..provenance import KEY, read_metadata
from .metadata import a1111_prompt, a1111_seed, comfyui_prompt, comfyui_seed, int_or_none, json_or_none

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_IMAGES = 20_000  # a folder walk stops here: scoring more in one run is a mistake, not a workload
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286  # where A1111 puts its parameters in a JPEG or WebP


@dataclass(frozen=True)
class ImageInput:
    file: str  # the image's path as given (the PATH argument joined with the path below it)
    root: str  # the PATH argument it was found under
    relative: str  # its path relative to root, with '/' separators (the file name when root is a file)


@dataclass(frozen=True)
class Found:
    prompt: str
    source: str  # prompts-file, clipdemo, a1111 or comfyui
    seed: int | None = None


@dataclass
class PromptsTable:
    """A `file,prompt` CSV: prompts by relative path, and by file name when the name is unambiguous."""

    name: str = ""
    by_path: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, str | None] = field(default_factory=dict)  # None: two rows name it with different prompts

    def lookup(self, image: ImageInput) -> str | None:
        for key in (image.relative, Path(image.file).as_posix()):
            if key in self.by_path:
                return self.by_path[key]
        return self.by_name.get(Path(image.file).name)

    def unmatched(self, images: list[ImageInput]) -> list[str]:
        """Rows that name no image: most likely a typo the user wants to hear about."""
        keys = {k for i in images for k in (i.relative, Path(i.file).as_posix())}
        names = {Path(i.file).name for i in images}
        return [f for f in self.by_path if f not in keys and Path(f).name not in names]


# -- finding the images ---------------------------------------------------------------------------
def find_images(paths: list[str], limit: int = MAX_IMAGES) -> list[ImageInput]:
    """Every image under the PATHs (files, or folders walked recursively in name order), at most `limit`."""
    found: list[ImageInput] = []
    for root in paths:
        path = Path(root)
        if path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{root}: not an image file ({', '.join(IMAGE_SUFFIXES)}).")
            found.append(ImageInput(root, root, path.name))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            found += [ImageInput(str(p), root, p.relative_to(path).as_posix()) for p in files]
        else:
            raise InputError(f"{root}: no such file or folder.")
        if len(found) > limit:
            raise InputError(f"More than {limit} images under {', '.join(paths)}; score fewer at a time.")
    if not found:
        raise InputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(paths)}.")
    return found


def read_prompts(path: str | Path) -> PromptsTable:
    """Parse a `file,prompt` CSV (a header row naming both columns; other columns are ignored)."""
    name = Path(path).name
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise InputError(f"{name}: cannot read the prompts file ({exc.strerror}).") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{name}: not a readable UTF-8 CSV ({exc}).") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "file" not in header or "prompt" not in header:
        raise InputError(f"{name}: the first row must name the columns 'file' and 'prompt' (got {rows[0] if rows else 'nothing'}).")
    file_col, prompt_col = header.index("file"), header.index("prompt")
    table = PromptsTable(name)
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless
        if len(row) <= max(file_col, prompt_col) or not row[file_col].strip() or not row[prompt_col].strip():
            raise InputError(f"{name}, line {line}: each row needs a file and a prompt (got {row}).")
        file, prompt = row[file_col].strip().replace("\\", "/"), row[prompt_col].strip()
        if table.by_path.get(file, prompt) != prompt:
            raise InputError(f"{name}, line {line}: {file} is listed twice with different prompts.")
        table.by_path[file] = prompt
        base = Path(file).name
        table.by_name[base] = prompt if table.by_name.get(base, prompt) == prompt else None
    return table


# -- the prompt of one image ----------------------------------------------------------------------
def prompt_of(path: str | Path, prompts_table: PromptsTable | None = None, root: str | None = None
              ) -> tuple[str, str]:
    """(prompt, source) of one image file. Raises InputError when it has none or cannot be read."""
    image = ImageInput(str(path), root or str(path), Path(path).relative_to(root).as_posix() if root else Path(path).name)
    found = describe(image, prompts_table)
    if found is None:
        raise InputError(f"{path}: no prompt found (not in a prompts file, and no clipdemo, A1111 or ComfyUI metadata).")
    return found.prompt, found.source


def describe(image: ImageInput, table: PromptsTable | None = None) -> Found | None:
    """The prompt, where it came from and the seed when known; None when no source has a prompt."""
    text = _text_chunks(image.file)
    # 1. the prompts file wins: the user's word beats what a tool wrote
    if table is not None and (prompt := table.lookup(image)):
        return Found(prompt, "prompts-file", _seed_from(text))
    # 2-4. what a tool wrote into the file
    meta = read_metadata(image.file) if KEY in text else None
    if meta and str(meta.get("prompt") or "").strip():
        return Found(str(meta["prompt"]).strip(), "clipdemo", int_or_none(meta.get("seed")))
    if prompt := a1111_prompt(text.get("parameters", "")):
        return Found(prompt, "a1111", a1111_seed(text["parameters"]))
    graph = json_or_none(text.get("prompt", ""))
    if isinstance(graph, dict) and (prompt := comfyui_prompt(graph)):
        return Found(prompt, "comfyui", comfyui_seed(graph))
    return None


def _seed_from(text: dict[str, str]) -> int | None:
    """The seed any tool recorded, for rows whose prompt came from the prompts file."""
    meta = json_or_none(text.get(KEY, ""))
    if isinstance(meta, dict) and "seed" in meta:
        return int_or_none(meta["seed"])
    if "parameters" in text and (seed := a1111_seed(text["parameters"])) is not None:
        return seed
    graph = json_or_none(text.get("prompt", ""))
    return comfyui_seed(graph) if isinstance(graph, dict) else None


def _text_chunks(path: str) -> dict[str, str]:
    """PNG text chunks, plus A1111's EXIF UserComment as `parameters` for JPEG and WebP."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
            if "parameters" not in text:
                comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
                if comment:
                    text["parameters"] = _user_comment(comment)
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{path}: not a readable image (is it corrupt, or not an image at all?).") from None
    return {k: v for k, v in text.items() if isinstance(v, str)}


def _user_comment(value: bytes | str) -> str:
    """EXIF UserComment: an 8-byte charset tag, then the text (A1111 writes UTF-16 under 'UNICODE')."""
    if isinstance(value, str):
        return value
    tag, body = value[:8], value[8:]
    if tag.startswith(b"UNICODE"):  # piexif writes big-endian; an ASCII first character then starts with 0
        return body.decode("utf-16-be" if body[:1] == b"\x00" else "utf-16-le", errors="replace").rstrip("\x00")
    return body.decode("utf-8", errors="replace").rstrip("\x00")


# -- AUTOMATIC1111 --------------------------------------------------------------------------------
