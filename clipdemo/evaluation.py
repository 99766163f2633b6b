"""Zero-shot evaluation of a labelled image collection: top-1/top-5, per-class accuracy, confusions.

The classifier is built once (one text embedding per class, template-ensembled), then images stream
through a DataLoader in batches. Under `accelerate launch` the batches are split across processes
and the logits gathered, so the metrics equal the single-process run. Probe labels (attributes such
as "man, woman") are scored in the same pass from the same image embeddings; clipdemo.ablation turns
the logits into ablation series and per-class probe tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from .config import ASSETS_DIR
from .datasets import ImageSet
from .errors import InputError
from .embedding import embed_images
from .scoring import ClipScorer
from .text import DEFAULT_TEMPLATE, ZH_DEFAULT_TEMPLATE, check_template, has_cjk
from .zeroshot import label_embeddings

if TYPE_CHECKING:
    from .ablation import AblationSeries, ProbeTable

TEMPLATE_SETS = ("single", "cifar", "imagenet", "zh")


def load_templates(choice: str, labels: list[str] | None = None) -> tuple[str, list[str]]:
    """(name, templates) for 'single', 'cifar' (18), 'imagenet' (80), 'zh', a FILE, or one template.

    'single' picks the template in the labels' language: Chinese labels get ZH_DEFAULT_TEMPLATE.
    """
    if choice == "single":
        chinese = bool(labels) and sum(has_cjk(label) for label in labels) * 2 >= len(labels)
        return "single", [ZH_DEFAULT_TEMPLATE if chinese else DEFAULT_TEMPLATE]
    if choice in TEMPLATE_SETS[1:]:  # the files in assets/templates
        path = ASSETS_DIR / "templates" / f"{choice}.txt"
    elif Path(choice).is_file():
        path = Path(choice)
    elif "{}" in choice:
        return choice, [check_template(choice)]
    else:
        raise InputError(f"Unknown templates '{choice}': use single, cifar, imagenet, zh, a file, or a text with {{}}.")
    templates = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not templates:
        raise InputError(f"{path.name} holds no templates.")
    return (choice if choice in TEMPLATE_SETS else path.name), [check_template(t) for t in templates]


@dataclass
class EvalResult:
    clip_model: str
    templates: str
    n_templates: int
    class_names: list[str]
    labels: list[str]
    logits: np.ndarray  # (n_images, n_classes): logit_scale * cosine
    targets: np.ndarray  # (n_images,)
    image_names: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # images that could not be read, left out of every figure
    # Each row's position in the ImageSet (rows skip the unreadable images, so the two can differ).
    source_indices: list[int] = field(default_factory=list)
    probe_labels: list[str] = field(default_factory=list)
    probe_logits: np.ndarray | None = None  # (n_images, n_probe_labels), rows as in `logits`
    probe_scorer: str | None = None
    probes: ProbeTable | None = None  # set by Studio.evaluate when probe labels were given
    ablations: AblationSeries | None = None  # set by Studio.evaluate(ablate=True)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def top1(self) -> float:
        return top1_accuracy(self.logits, self.targets)

    @property
    def top5(self) -> float:
        return top5_accuracy(self.logits, self.targets)

    @property
    def confusion(self) -> np.ndarray:
        """Rows are true classes, columns predicted classes."""
        n = len(self.labels)
        matrix = np.zeros((n, n), dtype=np.int64)
        np.add.at(matrix, (self.targets, self.predictions), 1)
        return matrix

    @property
    def per_class(self) -> dict[str, float | None]:
        matrix = self.confusion
        totals = matrix.sum(axis=1)
        return {label: (float(matrix[i, i] / totals[i]) if totals[i] else None) for i, label in enumerate(self.labels)}

    def most_confused(self, k: int = 10) -> list[dict]:
        matrix = self.confusion.copy()
        np.fill_diagonal(matrix, 0)
        order = np.argsort(-matrix, axis=None)[:k]
        pairs = []
        for flat in order:
            true, pred = np.unravel_index(flat, matrix.shape)
            if matrix[true, pred] == 0:
                break
            pairs.append({"true": self.labels[true], "predicted": self.labels[pred], "count": int(matrix[true, pred])})
        return pairs

    def misclassified(self, limit: int = 24) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.predictions != self.targets)[:limit]]

    def as_json(self) -> dict:
        data = {
            "clip_model": self.clip_model,
            "scorer": self.clip_model,
            "n_images": int(len(self.targets)),
            "n_classes": len(self.labels),
            "logits_shape": f"torch.Size([{self.logits.shape[0]}, {self.logits.shape[1]}])",
            "top1": self.top1,
            "top5": self.top5,
            "per_class": self.per_class,
            "templates": self.templates,
            "n_templates": self.n_templates,
            "most_confused": self.most_confused(),
            "skipped_images": self.skipped,
        }
        if self.ablations is not None:
            data["ablations"] = self.ablations.as_json()
        if self.probes is not None:
            data["probes"] = self.probes.as_json()
        return data


def top1_accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose largest logit is the target's."""
    return float((logits.argmax(axis=1) == targets).mean())


def top5_accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose target is among the 5 largest logits (all of them when there are fewer classes)."""
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


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
    if len(image_set) == 0:
        raise InputError("There are no images to evaluate.")
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {batch_size}).")
    probe_labels = list(probe_labels or [])
    probe_scorer = probe_scorer or scorer
    heads = [label_embeddings(scorer, image_set.labels, templates)]  # once, before any image
    same_pass = bool(probe_labels) and probe_scorer is scorer
    if same_pass:
        heads.append(label_embeddings(scorer, probe_labels, templates))
    passes = 2 if probe_labels and not same_pass else 1
    first_progress = _share_of(progress, 0, passes)
    logits, readable = _score_images(scorer, image_set, heads, batch_size, num_workers, first_progress, accelerator)
    probe_logits = logits[1] if same_pass else None
    if probe_labels and not same_pass:
        probe_head = [label_embeddings(probe_scorer, probe_labels, templates)]
        (probe_logits,), probe_readable = _score_images(probe_scorer, image_set, probe_head, batch_size,
                                                        num_workers, _share_of(progress, 1, passes), accelerator)
        readable = readable & probe_readable  # rows line up: both passes are in ImageSet order
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
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        result.notices.append(f"Skipped {len(skipped)} image(s) that could not be read (corrupt, not an image, or "
                              f"too large), left out of every figure: {shown}.")
    return result


def _share_of(progress: Callable[[int, int], None] | None, done_passes: int, passes: int
              ) -> Callable[[int, int], None] | None:
    """Progress of one pass over the images reported as a share of all passes, so the bar never runs back."""
    if progress is None or passes == 1:
        return progress
    return lambda done, total: progress(done_passes * total + done, passes * total)


def markdown_report(result: EvalResult, source: str) -> str:
    lines = [
        f"# Zero-shot evaluation of {source}",
        "",
        f"- CLIP model: `{result.clip_model}`",
        f"- templates: {result.templates} ({result.n_templates})",
        f"- images: {len(result.targets)}, classes: {len(result.labels)}, logits: "
        f"`torch.Size([{result.logits.shape[0]}, {result.logits.shape[1]}])`",
        f"- **top-1 {result.top1:.2%}**, top-5 {result.top5:.2%}",
    ]
    if result.skipped:
        lines.append(f"- skipped {len(result.skipped)} image(s) that could not be read: {', '.join(result.skipped)}")
    lines += [
        "",
        "| class | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {label} | {'–' if acc is None else f'{acc:.1%}'} |" for label, acc in result.per_class.items()]
    confused = result.most_confused()
    if confused:
        lines += ["", "## Most confused pairs", "", "| true | predicted | count |", "|---|---|---|"]
        lines += [f"| {p['true']} | {p['predicted']} | {p['count']} |" for p in confused]
    if result.probes is not None:
        lines += ["", *result.probes.markdown()]
    if result.ablations is not None:
        lines += ["", *result.ablations.markdown()]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    return "\n".join(lines)


def write_report(result: EvalResult, out_dir: str | Path, source: str) -> dict[str, Path]:
    """eval.json, report.md and confusion.png in out_dir."""
    import json

    from .plots import confusion_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "report.md", "confusion": out / "confusion.png"}
    paths["json"].write_text(json.dumps(result.as_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_report(result, source), encoding="utf-8")
    confusion_figure(result.confusion, result.labels, f"{source}: top-1 {result.top1:.1%}").savefig(
        paths["confusion"], dpi=110)
    return paths
