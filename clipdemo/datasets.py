"""Labelled image collections for evaluation: class folders, zips of them, CSV lists, CIFAR archives.

Everything is read from local files. CIFAR archives are pickles, so they are loaded only from paths
given on the command line, never from uploads (the UI accepts zips of images only).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_ZIP_FILES = 20_000
MAX_ZIP_BYTES = 1 << 30  # 1 GiB uncompressed
MAX_COMPRESSION_RATIO = 200  # a larger ratio for a big member looks like a zip bomb


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


def safe_extract_zip(archive: str | Path, dest: str | Path, max_files: int = MAX_ZIP_FILES,
                     max_bytes: int = MAX_ZIP_BYTES) -> Path:
    """Extract a zip, refusing absolute paths, '..', symlinks, too many files and zip bombs."""
    dest = Path(dest).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise InputError("The upload is not a readable zip file.") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise InputError(f"The zip holds {len(members)} files; the limit is {max_files}.")
        total = 0
        for m in members:
            name = m.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            # a drive ("C:", "c:evil.png", "//host/share") escapes dest once the zip is opened on Windows
            drive = PureWindowsPath(name).drive or (parts and parts[0].endswith(":"))
            if name.startswith("/") or drive or ".." in parts:
                raise InputError(f"The zip entry '{m.filename}' points outside the archive; refusing it.")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"The zip entry '{m.filename}' is a symbolic link; refusing it.")
            total += m.file_size
            if total > max_bytes:
                raise InputError(f"The zip unpacks to more than {max_bytes // 2**20} MB; refusing it.")
            if m.file_size > 10 * 2**20 and m.file_size > MAX_COMPRESSION_RATIO * max(m.compress_size, 1):
                raise InputError(f"The zip entry '{m.filename}' is compressed suspiciously well (a zip bomb?).")
        for m in members:
            target = (dest / m.filename.replace("\\", "/")).resolve()
            if dest not in target.parents:
                raise InputError(f"The zip entry '{m.filename}' points outside the archive; refusing it.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                written = 0
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size:  # the header lied about the size
                        raise InputError(f"The zip entry '{m.filename}' is larger than it claims; refusing it.")
                    out.write(chunk)
    return dest


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


def _image_files(folder: Path, follow_symlinks: bool) -> list[Path]:
    """Regular image files under folder, sorted. Each real folder is walked once, so symlink loops end."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=follow_symlinks):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []  # reached again through a symlink: already walked
            continue
        seen.add(real)
        for name in files:
            p = Path(root, name)
            if p.suffix.lower() in IMAGE_SUFFIXES and (follow_symlinks or not p.is_symlink()) and p.is_file():
                found.append(p)  # is_file: no devices, fifos or dangling links
    return sorted(found)


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
        for p in _image_files(d, follow_symlinks):
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


def _class_lookup(image_set: ImageSet) -> dict[str, int]:
    """Class index by folder name or by label, as --classes, --drop, --merge and --sample accept either."""
    return {n: i for i, n in enumerate(image_set.class_names)} | {l: i for i, l in enumerate(image_set.labels)}


def _unknown_class(name: str, image_set: ImageSet, flag: str = "") -> InputError:
    known = ", ".join(image_set.class_names[:20]) + (" ..." if len(image_set.class_names) > 20 else "")
    return InputError(f"{flag + ': ' if flag else ''}Unknown class '{name}'. Known: {known}")


def subset_classes(image_set: ImageSet, classes: list[str]) -> ImageSet:
    """Evaluate on some classes only (label ablation): the classifier sees only these labels."""
    lookup = _class_lookup(image_set)
    unknown = [c for c in classes if c not in lookup]
    if unknown:
        raise _unknown_class(unknown[0], image_set)
    chosen = sorted({lookup[c] for c in classes})
    if len(chosen) < 2:
        raise InputError("Choose at least 2 classes.")
    return _relabel(image_set, {old: new for new, old in enumerate(chosen)}, chosen)


def _relabel(image_set: ImageSet, new_target: dict[int, int], kept_classes: list[int]) -> ImageSet:
    """Keep the classes `kept_classes` (in that order) and the images whose old class is in `new_target`."""
    keep = [i for i, t in enumerate(image_set.targets) if t in new_target]
    return ImageSet([image_set.class_names[i] for i in kept_classes], [image_set.labels[i] for i in kept_classes],
                    [image_set.sources[i] for i in keep], [new_target[image_set.targets[i]] for i in keep],
                    [image_set.names[i] for i in keep] if image_set.names else [])


@dataclass(frozen=True)
class ClassEdits:
    """--drop, --merge and --sample, parsed; applied in that order, each flag in the order given."""

    drop: tuple[str, ...] = ()
    merge: tuple[tuple[str, str], ...] = ()  # (A, B): A's images count as B
    sample: tuple[tuple[str, int], ...] = ()  # (CLASS, N): keep at most N images of CLASS

    @classmethod
    def parse(cls, drop: list[str] | None = None, merge: list[str] | None = None,
              sample: list[str] | None = None) -> "ClassEdits":
        """From the command-line texts: CLASS, A=B and CLASS=N."""
        merges = tuple(_split_pair(text, "--merge", "A=B") for text in merge or ())
        samples = []
        for text in sample or ():
            name, count = _split_pair(text, "--sample", "CLASS=N")
            try:
                n = int(count)
            except ValueError:
                raise InputError(f"--sample {text}: N must be a whole number (got '{count}').") from None
            if n < 1:
                raise InputError(f"--sample {text}: N must be at least 1 (got {n}).")
            samples.append((name, n))
        drops = tuple(name.strip() for name in drop or ())
        if any(not name for name in drops):
            raise InputError("--drop needs a class name (got an empty one).")
        return cls(drops, merges, tuple(samples))

    def __bool__(self) -> bool:
        return bool(self.drop or self.merge or self.sample)


def _split_pair(text: str, flag: str, form: str) -> tuple[str, str]:
    parts = [part.strip() for part in text.split("=")]
    if len(parts) != 2 or not all(parts):
        raise InputError(f"{flag} must read {form} (got '{text}').")
    return parts[0], parts[1]


def _index_of(image_set: ImageSet, name: str, flag: str, original: ImageSet) -> int:
    """The class's index now; a class that an earlier edit removed is named as such, not as unknown."""
    index = _class_lookup(image_set).get(name)
    if index is not None:
        return index
    if name in _class_lookup(original):
        raise InputError(f"{flag}: class '{name}' was already dropped or merged by an earlier flag.")
    raise _unknown_class(name, image_set, flag)


def drop_class(image_set: ImageSet, name: str, original: ImageSet | None = None) -> ImageSet:
    """Without the class and its images: the classifier no longer sees its label."""
    index = _index_of(image_set, name, f"--drop {name}", original or image_set)
    if len(image_set.class_names) - 1 < 2:
        raise InputError(f"--drop {name} leaves 1 class; at least 2 are needed.")
    kept = [c for c in range(len(image_set.class_names)) if c != index]
    return _relabel(image_set, {old: new for new, old in enumerate(kept)}, kept)


def merge_class(image_set: ImageSet, source: str, into: str, original: ImageSet | None = None) -> ImageSet:
    """Class `source` disappears from the classifier and its images count as class `into`."""
    flag = f"--merge {source}={into}"
    a = _index_of(image_set, source, flag, original or image_set)
    b = _index_of(image_set, into, flag, original or image_set)
    if a == b:
        raise InputError(f"{flag}: both name the same class; merge a class into a different one.")
    if len(image_set.class_names) - 1 < 2:
        raise InputError(f"{flag} leaves 1 class; at least 2 are needed.")
    kept = [c for c in range(len(image_set.class_names)) if c != a]
    new_target = {old: new for new, old in enumerate(kept)}
    new_target[a] = new_target[b]
    return _relabel(image_set, new_target, kept)


def sample_class(image_set: ImageSet, name: str, n: int, seed: int = 0, original: ImageSet | None = None
                 ) -> ImageSet:
    """At most n images of the class, chosen with a fixed seed; other classes keep all their images.

    The choice depends only on the seed and the class's own images, so it is the same whatever else is edited.
    """
    if n < 1:
        raise InputError(f"--sample {name}={n}: N must be at least 1 (got {n}).")
    index = _index_of(image_set, name, f"--sample {name}={n}", original or image_set)
    members = [i for i, t in enumerate(image_set.targets) if t == index]
    chosen = {members[j] for j in np.random.default_rng(seed).permutation(len(members))[:n]}
    keep = [i for i, t in enumerate(image_set.targets) if t != index or i in chosen]
    return ImageSet(list(image_set.class_names), list(image_set.labels), [image_set.sources[i] for i in keep],
                    [image_set.targets[i] for i in keep], [image_set.names[i] for i in keep] if image_set.names else [])


def apply_edits(image_set: ImageSet, edits: ClassEdits, seed: int = 0) -> ImageSet:
    """Every drop, then every merge, then every sample, each on the result of the one before."""
    original, edited = image_set, image_set
    for name in edits.drop:
        edited = drop_class(edited, name, original)
    for source, into in edits.merge:
        edited = merge_class(edited, source, into, original)
    for name, n in edits.sample:
        edited = sample_class(edited, name, n, seed, original)
    return edited


def apply_label_overrides(image_set: ImageSet, text: str | None) -> ImageSet:
    """Relabel classes from "folder: label" lines (blank lines ignored); returns the same ImageSet.

    Every folder named must exist, so a typo is an error instead of a silently unchanged label.
    """
    overrides = {}
    for line in (text or "").splitlines():
        if line.strip():
            if ":" not in line:
                raise InputError(f"Write each label as 'folder: label' (got '{line.strip()}').")
            key, value = line.split(":", 1)
            overrides[key.strip()] = value.strip()
    unknown = sorted(set(overrides) - set(image_set.class_names))
    if unknown:
        raise InputError(f"No class folder named '{unknown[0]}' in the zip "
                         f"(folders: {', '.join(image_set.class_names)}).")
    image_set.labels = [overrides.get(n, l) for n, l in zip(image_set.class_names, image_set.labels)]
    return image_set
