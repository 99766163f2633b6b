"""Labelled image collections: class folders, zips of them, CSV lists, CIFAR archives.

Everything is read from local files. CIFAR archives are pickles, so they are loaded only from paths
given on the command line, never from uploads (the UI accepts zips of images only).
"""

from __future__ import annotations

import csv
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..imagefiles import IMAGE_SUFFIXES, image_files


@dataclass
class ImageSet:
    """Images with class indices. `sources` are file paths or HxWx3 uint8 arrays (CIFAR)."""

    class_names: list[str]  # identifiers: folder names, CSV labels, CIFAR names
    labels: list[str]  # the text each class is classified against (labels.json may map names to it)
    sources: list[Any]
    targets: list[int]
    names: list[str] = field(default_factory=list)  # a display name per image

    def __len__(self) -> int:
        return len(self.sources)


def _read_label_map(folder: Path) -> dict[str, str]:
    """labels.json ({"folder": "label"}) or labels.txt (lines 'folder: label'), if present."""
    if (folder / "labels.json").is_file():
        try:
            data = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"labels.json is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError('labels.json must map folder names to labels, like {"cat": "猫"}.')
        return {str(k): str(v) for k, v in data.items()}
    if (folder / "labels.txt").is_file():
        mapping = {}
        for line in (folder / "labels.txt").read_text(encoding="utf-8").splitlines():
            if line.strip():
                if ":" not in line:
                    raise InputError(f"labels.txt lines must read 'folder: label' (got '{line.strip()}').")
                key, value = line.split(":", 1)
                mapping[key.strip()] = value.strip()
        return mapping
    return {}


def from_class_folders(folder: Path, follow_symlinks: bool = True) -> ImageSet:
    """One sub-folder of images per class. follow_symlinks=False for extracted uploads: a link is never read."""
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "__"))
                        and (follow_symlinks or not d.is_symlink()))
    if len(class_dirs) == 1 and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in class_dirs[0].iterdir() if p.is_file()):
        return from_class_folders(class_dirs[0], follow_symlinks)  # a zip that wraps everything in one top folder
    if len(class_dirs) < 2:
        raise InputError(f"'{folder.name}' needs one sub-folder per class, at least 2 (found {len(class_dirs)}).")
    mapping = _read_label_map(folder)
    names = [d.name for d in class_dirs]
    sources, targets, display = [], [], []
    for index, d in enumerate(class_dirs):
        for p in image_files(d, follow_symlinks):
            sources.append(p)
            targets.append(index)
            display.append(p.relative_to(folder).as_posix())  # class/…/file: unique in nested folders
    if not sources:
        raise InputError(f"No images found under '{folder.name}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return ImageSet(names, [mapping.get(n, n.replace("_", " ")) for n in names], sources, targets, display)


def from_csv(path: Path) -> ImageSet:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or row[0].strip().lower() in ("path", "file", "image"):
                continue
            if len(row) < 2:
                raise InputError(f"{path.name}: each row must be 'path,label' (got {row}).")
            rows.append((row[0].strip(), row[1].strip()))
    if not rows:
        raise InputError(f"{path.name} lists no images.")
    names = sorted({label for _, label in rows})
    index = {n: i for i, n in enumerate(names)}
    sources = [(path.parent / p) if not Path(p).is_absolute() else Path(p) for p, _ in rows]
    return ImageSet(names, list(names), sources, [index[label] for _, label in rows], [p for p, _ in rows])


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")  # local CIFAR files named on the command line only


def from_cifar(folder: Path) -> ImageSet:
    if (folder / "test_batch").is_file():  # CIFAR-10
        batch, meta = _unpickle(folder / "test_batch"), _unpickle(folder / "batches.meta")
        targets, names = batch[b"labels"], meta[b"label_names"]
    else:  # CIFAR-100
        batch, meta = _unpickle(folder / "test"), _unpickle(folder / "meta")
        targets, names = batch[b"fine_labels"], meta[b"fine_label_names"]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ImageSet(names, [n.replace("_", " ") for n in names], list(data), [int(t) for t in targets],
                    [f"test[{i}]" for i in range(len(data))])


def find_cifar(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py", path / "cifar-100-python"):
        if (candidate / "test_batch").is_file() and (candidate / "batches.meta").is_file():
            return candidate
        if (candidate / "test").is_file() and (candidate / "meta").is_file():
            return candidate
    return None
