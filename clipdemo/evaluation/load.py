"""A labelled collection from a path (folder, zip, CSV or CIFAR), then edited as asked."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..imagefiles import safe_extract_zip
from .data import ImageSet, find_cifar, from_cifar, from_class_folders, from_csv
from .edits import ClassEdits, apply_edits, subset_classes


def load_image_set(path: str | Path, classes: list[str] | None = None, limit: int | None = None,
                   allow_pickles: bool = True, workdir: str | Path | None = None,
                   edits: ClassEdits | None = None) -> ImageSet:
    """Open any supported layout, keep only `classes` (by name or label), apply `edits`, keep at most `limit`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' does not exist.")
    if path.is_file() and path.suffix.lower() == ".zip":
        workdir = Path(workdir or tempfile.mkdtemp(prefix="clipdemo-eval-"))
        image_set = from_class_folders(safe_extract_zip(path, workdir), follow_symlinks=False)
    elif path.is_file() and path.suffix.lower() == ".csv":
        image_set = from_csv(path)
    elif path.is_dir() and find_cifar(path) is not None:
        if not allow_pickles:
            raise InputError("CIFAR archives (pickles) are accepted only from the command line.")
        image_set = from_cifar(find_cifar(path))
    elif path.is_dir():
        image_set = from_class_folders(path)
    else:
        raise InputError(f"'{path.name}' is not a folder of class folders, a zip, a CSV or a CIFAR archive.")
    if classes:
        image_set = subset_classes(image_set, classes)
    if edits:
        image_set = apply_edits(image_set, edits)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1 (got {limit}).")
        keep = np.random.default_rng(0).permutation(len(image_set))[:limit]
        keep.sort()
        image_set = ImageSet(image_set.class_names, image_set.labels, [image_set.sources[i] for i in keep],
                             [image_set.targets[i] for i in keep], [image_set.names[i] for i in keep])
    return image_set
