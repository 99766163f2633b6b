"""Zero-shot evaluation of a labelled image collection: top-1/top-5, per-class accuracy, confusions.

The classifier is built once (one text embedding per class, template-ensembled), then images stream
through a DataLoader in batches. Under `accelerate launch` the batches are split across processes
and the logits gathered, so the metrics equal the single-process run. Probe labels (attributes such
as "man, woman") are scored in the same pass from the same image embeddings; .ablation turns
the logits into ablation series and per-class probe tables.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..embedding import check_batch, embed_images
from ..errors import InputError
from ..scoring import ClipScorer
from ..zeroshot import label_embeddings
from .data import ImageSet
from .result import EvalResult


def _score_images(scorer: ClipScorer, image_set: ImageSet, heads: list[torch.Tensor], batch_size: int,
                  num_workers: int, progress: Callable[[int, int], None] | None, accelerator: Any
                  ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Embed every image once and score it against each head (normalised text embeddings, one row a label).

    Returns the logits of each head, one row per image in ImageSet order, and which images were readable.
    """
    names = image_set.names or [f"image {i + 1}" for i in range(len(image_set))]
    features, readable = embed_images(scorer, image_set.sources, names, batch_size, num_workers, progress,
                                      accelerator)
    return [scorer.logit_scale * features @ head.T for head in heads], readable


def evaluate(
    scorer: ClipScorer,
    image_set: ImageSet,
    templates: list[str],
    templates_name: str = "single",
    batch_size: int = 64,
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    accelerator: Any = None,
    probe_labels: Sequence[str] | None = None,
    probe_scorer: ClipScorer | None = None,
) -> EvalResult:
    """Classify every image against every class label. With `accelerator`, each process takes a share.

    probe_labels: also classify each image against these (same templates). They are scored in the same
    pass unless `probe_scorer` is another model (Chinese probes for English classes), which needs its own.
    """
    check_batch(batch_size, len(image_set), "There are no images to evaluate.")
    # 1. Every image against the class labels, and the probe labels in the same pass when the model is the same.
    probe_labels = list(probe_labels or [])
    probe_scorer = probe_scorer or scorer
    heads = [label_embeddings(scorer, image_set.labels, templates)]  # once, before any image
    same_pass = bool(probe_labels) and probe_scorer is scorer
    if same_pass:
        heads.append(label_embeddings(scorer, probe_labels, templates))
    passes = 2 if probe_labels and not same_pass else 1
    logits, readable = _score_images(scorer, image_set, heads, batch_size, num_workers, _share_of(progress, 0, passes),
                                     accelerator)
    probe_logits = logits[1] if same_pass else None
    # 2. Probes in another model's words take a second pass.
    if probe_labels and not same_pass:
        probe_head = [label_embeddings(probe_scorer, probe_labels, templates)]
        (probe_logits,), probe_readable = _score_images(probe_scorer, image_set, probe_head, batch_size,
                                                        num_workers, _share_of(progress, 1, passes), accelerator)
        readable = readable & probe_readable  # rows line up: both passes are in ImageSet order
    # 3. The result over the readable images; the rest are named.
    indices, targets = torch.arange(len(image_set)), torch.tensor(image_set.targets)
    name_of = (lambda i: image_set.names[i]) if image_set.names else (lambda i: f"image {i + 1}")
    skipped = [name_of(i) for i in indices[~readable].tolist()]
    if not readable.any():
        raise InputError(f"None of the {len(image_set)} images could be read (the first: {skipped[0]}).")
    kept = indices[readable].tolist()
    result = EvalResult(
        clip_model=scorer.name,
        templates=templates_name,
        n_templates=len(templates),
        class_names=image_set.class_names,
        labels=image_set.labels,
        logits=logits[0][readable].numpy(),
        targets=targets[readable].numpy(),
        image_names=[image_set.names[i] for i in kept] if image_set.names else [],
        skipped=skipped,
        source_indices=kept,
        probe_labels=probe_labels,
        probe_logits=probe_logits[readable].numpy() if probe_labels else None,
        probe_scorer=probe_scorer.name if probe_labels else None,
    )
    if skipped:
        result.notices.append(skipped_notice(skipped))
    return result


def skipped_notice(skipped: list[str]) -> str:
    shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    return (f"Skipped {len(skipped)} image(s) that could not be read (corrupt, not an image, or too large), "
            f"left out of every figure: {shown}.")


def _share_of(progress: Callable[[int, int], None] | None, done_passes: int, passes: int
              ) -> Callable[[int, int], None] | None:
    """Progress of one pass over the images reported as a share of all passes, so the bar never runs back."""
    if progress is None or passes == 1:
        return progress
    return lambda done, total: progress(done_passes * total + done, passes * total)
