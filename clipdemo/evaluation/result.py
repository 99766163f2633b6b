"""One evaluation's logits and what is read off them: top-1/top-5, per-class accuracy, confusions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .ablation import AblationSeries, ProbeTable


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
