"""Edits of a labelled collection before it is evaluated: keep some classes, drop, merge, sample, relabel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .data import ImageSet


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
