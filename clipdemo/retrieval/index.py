"""An image index: every image of a folder embedded once by CLIP, kept up to date incrementally.

On disk an index is a folder of three files:

- `embeddings.safetensors`: `embeddings` (n_images, dim), float32, L2-normalised, one row per file, and
  `fingerprint` (dim,), the model's embedding of a fixed text, so a query by another model is refused;
- `files.jsonl`: one line per row: `file` (relative to the folder), `size`, `mtime`, `sha256`;
- `index.json`: the model, its dtype, the embedding size, the folder and the row count.

Rerunning `build_index` embeds only new or changed files (a file whose size and mtime are unchanged is
trusted; otherwise its content hash decides) and drops deleted ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from ..imagefiles import image_files
from ..embedding import check_batch, embed_images
from ..errors import InputError
from ..files import write_atomic
from ..text import display_name
from ..scoring import ClipScorer

FORMAT = "clipdemo-index-1"
FINGERPRINT_TEXT = "a photo of a dog"  # any fixed text: its embedding identifies the model's text space
SAME_MODEL_COSINE = 0.99  # the same weights in bf16 and fp32 agree far above this; two models fall far below


@dataclass(frozen=True)
class FileEntry:
    file: str  # path relative to the indexed folder, with forward slashes
    size: int
    mtime: float
    sha256: str


class FileLines(Sequence):
    """files.jsonl read lazily: a search needs only its k hits' entries, and parsing 10^6 lines takes seconds."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [FileEntry(**json.loads(line)) for line in self._lines[i]]
        return FileEntry(**json.loads(self._lines[i]))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


@dataclass
class ImageIndex:
    folder: str  # the indexed folder, absolute
    model: str  # the CLIP model that embedded the images, as named to the loader
    model_dtype: str  # the dtype it ran in
    files: Sequence[FileEntry]
    embeddings: torch.Tensor  # (n, dim) float32, rows L2-normalised, row i is files[i]
    fingerprint: torch.Tensor  # (dim,) the model's normalised embedding of FINGERPRINT_TEXT

    def __len__(self) -> int:
        return len(self.files)

    @property
    def dim(self) -> int:
        return int(self.fingerprint.shape[0])

    def path_of(self, i: int) -> Path:
        return Path(self.folder) / self.files[i].file


@dataclass
class IndexUpdate:
    """What one `build_index` call did."""

    index: ImageIndex
    out: Path
    embedded: list[str] = field(default_factory=list)  # new or changed files, embedded now
    kept: int = 0  # rows reused unchanged (same file, or the same content under a new name)
    removed: list[str] = field(default_factory=list)  # files gone from the folder since the last run
    skipped: list[str] = field(default_factory=list)  # files that could not be read as images
    notices: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(scorer: ClipScorer) -> torch.Tensor:
    return scorer.embed_texts([FINGERPRINT_TEXT])[0]


def is_index(path: str | Path) -> bool:
    return (Path(path) / "index.json").is_file()


def load_index(path: str | Path) -> ImageIndex:
    """Read an index folder, refusing one that is incomplete or from another program."""
    path = Path(path)
    try:
        header = json.loads((path / "index.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "embeddings.safetensors"))
        files = FileLines([line for line in (path / "files.jsonl").read_text(encoding="utf-8").splitlines() if line])
        if files:
            files[0]  # a malformed file fails here, not in the middle of a search
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"'{path}' is not a readable clipdemo index ({type(exc).__name__}: {exc}). "
                         "Rebuild it with `python -m clipdemo index FOLDER --out INDEX --rebuild`.") from None
    if header.get("format") != FORMAT:
        raise InputError(f"'{path}' is not a clipdemo index of format {FORMAT} (found {header.get('format')!r}).")
    embeddings = tensors.get("embeddings")
    if embeddings is None or embeddings.shape[0] != len(files) or header.get("count") != len(files):
        raise InputError(f"'{path}' is incomplete (its files and embeddings disagree); rebuild it with --rebuild.")
    return ImageIndex(header["folder"], header["model"], header["model_dtype"], files, embeddings,
                      tensors["fingerprint"])


def save_index(index: ImageIndex, out: Path) -> None:
    """Write the three files, each through a temporary name, so a crash never leaves a half-written one."""
    out.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "model": index.model, "model_name": display_name(index.model),
              "model_dtype": index.model_dtype, "embedding_dtype": "float32", "dim": index.dim,
              "count": len(index), "folder": index.folder, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    staged = {
        "embeddings.safetensors": lambda p: save_file(
            {"embeddings": index.embeddings.contiguous(), "fingerprint": index.fingerprint.clone()}, str(p),
            metadata={"format": FORMAT, "model": index.model, "model_dtype": index.model_dtype}),
        "files.jsonl": lambda p: p.write_text("".join(json.dumps(asdict(f), ensure_ascii=False) + "\n"
                                                      for f in index.files), encoding="utf-8"),
        "index.json": lambda p: p.write_text(json.dumps(header, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8"),
    }
    for name, write in staged.items():
        write_atomic(out / name, write)


def check_same_model(index: ImageIndex, scorer: ClipScorer, what: str = "this query") -> None:
    """Refuse to compare embeddings from two different models: their cosines would mean nothing."""
    ours = fingerprint(scorer)
    if ours.shape == index.fingerprint.shape and float(ours @ index.fingerprint) >= SAME_MODEL_COSINE:
        return
    raise InputError(
        f"This index was built with {display_name(index.model)}, but {what} is embedded by "
        f"{display_name(scorer.name)}: embeddings of two models do not compare. Use the model the index was "
        f"built with (--clip-model {index.model}, or --scorer english/chinese), or rebuild the index with "
        "this one (--rebuild).")


def scan_folder(folder: Path, files: Sequence[str | Path] | None = None, follow_symlinks: bool = True
                ) -> list[tuple[str, Path, os.stat_result]]:
    """(relative name, path, stat) of each image under folder, or of the given files (each inside folder)."""
    if files is None:
        paths = image_files(folder, follow_symlinks)
    else:
        paths = []
        for f in files:
            p = Path(f) if Path(f).is_absolute() else folder / f
            if not p.resolve().is_relative_to(folder.resolve()):
                raise InputError(f"'{f}' is not inside '{folder}'.")
            paths.append(p)
    return [(p.relative_to(folder).as_posix(), p, p.stat()) for p in paths if p.is_file()]


def plan_rows(scanned, old_files: list[FileEntry], by_name: dict[str, int], by_hash: dict[str, int]
              ) -> tuple[list[FileEntry], list[int | None], list[int]]:
    """(the new rows, the old row each reuses or None, the positions of the rows to embed now)."""
    rows: list[FileEntry] = []
    sources: list[int | None] = []
    to_embed: list[int] = []
    for name, path, st in scanned:
        known = old_files[by_name[name]] if name in by_name else None
        if known is not None and known.size == st.st_size and known.mtime == st.st_mtime:
            rows.append(known)
            sources.append(by_name[name])
            continue
        digest = file_sha256(path)  # changed or new: the same content under another name is still reused
        rows.append(FileEntry(name, st.st_size, st.st_mtime, digest))
        sources.append(by_hash.get(digest))
        if digest not in by_hash:
            to_embed.append(len(rows) - 1)
    return rows, sources, to_embed


def build_index(scorer: ClipScorer, folder: str | Path, out: str | Path, *, files: Sequence[str | Path] | None = None,
                rebuild: bool = False, follow_symlinks: bool = True, batch_size: int = 32, num_workers: int = 0,
                progress: Callable[[int, int], None] | None = None, accelerator: Any = None) -> IndexUpdate:
    """Embed the folder's images into the index at `out`, reusing every row whose file is unchanged.

    With `accelerator` (under `accelerate launch`) the files to embed are split across processes and
    gathered again; only the main process writes the index.
    """
    folder, out = Path(folder).resolve(), Path(out)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder of images.")
    check_batch(batch_size, 1, "")

    # 1. The previous index, if it was made by this model; another model's rows cannot be reused.
    old = None
    if is_index(out) and not rebuild:
        old = load_index(out)
        check_same_model(old, scorer, what="this run")
    old_files = list(old.files) if old else []
    by_name = {f.file: i for i, f in enumerate(old_files)}
    by_hash = {f.sha256: i for i, f in enumerate(old_files)}

    # 2. Decide per file: reuse a row (same size and mtime, or the same content) or embed it anew.
    rows, sources, to_embed = plan_rows(scan_folder(folder, files, follow_symlinks), old_files, by_name, by_hash)
    if not rows:
        raise InputError(f"No images found under '{folder.name}'.")

    # 3. Embed what is new, in batches, split across processes under accelerate.
    features, readable = embed_images(scorer, [folder / rows[i].file for i in to_embed],
                                      [rows[i].file for i in to_embed], batch_size, num_workers, progress, accelerator)
    readable = readable.tolist()

    # 4. Assemble the rows in folder order; unreadable files are left out and named.
    fresh = dict(zip(to_embed, range(len(to_embed))))
    keep_rows, vectors, skipped = [], [], []
    for i, (row, source) in enumerate(zip(rows, sources)):
        if i in fresh:
            if not readable[fresh[i]]:
                skipped.append(row.file)
                continue
            vectors.append(features[fresh[i]])
        else:
            vectors.append(old.embeddings[source])
        keep_rows.append(row)
    if not keep_rows:
        raise InputError(f"None of the {len(rows)} images under '{folder.name}' could be read "
                         f"(the first: {skipped[0]}).")
    index = ImageIndex(str(folder), scorer.name, str(scorer.dtype).removeprefix("torch."), keep_rows,
                       torch.stack(vectors).float(), fingerprint(scorer))
    update = IndexUpdate(index, out, [rows[i].file for i in to_embed if readable[fresh[i]]],
                         kept=sum(s is not None for s in sources),
                         removed=sorted(set(by_name) - {r.file for r in rows}), skipped=skipped)
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        update.notices.append(f"Skipped {len(skipped)} file(s) that could not be read as images: {shown}.")

    # 5. Write it (the main process only).
    if accelerator is None or accelerator.is_main_process:
        save_index(index, out)
    return update
