"""Label ablations and attribute probes, read off one evaluation's logits.

An image's embedding and a class's label embedding do not depend on which other classes are present,
so each ablation is a slice of the full run's (n_images, n_classes) logits, with nothing re-embedded:

- drop X: remove column X and the rows whose target is X;
- merge A=B: remove column A; the rows whose target was A now have target B.

Their top-1/top-5 equal a fresh evaluation of the folder edited the same way (X's folder removed, A's
images moved into B's folder).

A probe classifies the same images against other labels ("man, woman", "red, blue") and tabulates, per
class, the share of its images whose top probe label is each label and the mean probe probability.
Two classes whose images win the same probe label are the ones CLIP is expected to confuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .result import EvalResult, top1_accuracy, top5_accuracy


@dataclass(frozen=True)
class Ablation:
    name: str  # "full", "drop cat", "merge cat=dog"
    n_images: int
    n_classes: int
    top1: float
    top5: float

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class AblationSeries:
    entries: list[Ablation]

    def as_json(self) -> list[dict]:
        return [entry.as_json() for entry in self.entries]

    def markdown(self) -> list[str]:
        lines = ["## Ablations", "", "| ablation | images | classes | top-1 | top-5 |", "|---|---|---|---|---|"]
        lines += [f"| {a.name} | {a.n_images} | {a.n_classes} | {a.top1:.2%} | {a.top5:.2%} |" for a in self.entries]
        return lines

    def text(self) -> str:
        width = max(len("ablation"), *(len(a.name) for a in self.entries))
        lines = [f"{'ablation'.ljust(width)}  images  classes   top-1   top-5"]
        lines += [f"{a.name.ljust(width)}  {a.n_images:>6}  {a.n_classes:>7}  {a.top1:>6.1%}  {a.top5:>6.1%}"
                  for a in self.entries]
        return "\n".join(lines)


def drop_logits(logits: np.ndarray, targets: np.ndarray, x: int) -> tuple[np.ndarray, np.ndarray]:
    """The logits and targets of a run without class x: its column and its images are gone."""
    rows = targets != x
    kept_targets = targets[rows]
    return np.delete(logits[rows], x, axis=1), kept_targets - (kept_targets > x)  # later classes move up one


def merge_logits(logits: np.ndarray, targets: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The logits and targets of a run in which class a's images count as class b and a's label is gone."""
    relabelled = np.where(targets == a, b, targets)
    return np.delete(logits, a, axis=1), relabelled - (relabelled > a)  # later classes move up one


def _entry(name: str, logits: np.ndarray, targets: np.ndarray) -> Ablation:
    return Ablation(name, int(len(targets)), int(logits.shape[1]), top1_accuracy(logits, targets),
                    top5_accuracy(logits, targets))


def ablation_series(result: EvalResult) -> AblationSeries:
    """full, then each single drop, then each merge of a class into every other class.

    Ablations that would leave fewer than 2 classes are left out (with 2 classes, only "full" remains).
    """
    names, logits, targets = result.class_names, result.logits, result.targets
    entries = [_entry("full", logits, targets)]
    if len(names) < 3:
        return AblationSeries(entries)
    for x, name in enumerate(names):
        entries.append(_entry(f"drop {name}", *drop_logits(logits, targets, x)))
    for a, source in enumerate(names):
        for b, into in enumerate(names):
            if a != b:
                entries.append(_entry(f"merge {source}={into}", *merge_logits(logits, targets, a, b)))
    return AblationSeries(entries)


@dataclass(frozen=True)
class ProbeRow:
    class_name: str
    label: str
    n_images: int
    top_share: dict[str, float | None]  # share of the class's images whose top probe label is each label
    mean_prob: dict[str, float | None]  # mean softmax probability of each probe label over the class's images

    @property
    def top_label(self) -> str | None:
        """The probe label that wins most often for this class (None for a class without images)."""
        if not self.n_images:
            return None
        return max(self.top_share, key=lambda label: self.top_share[label])

    def as_json(self) -> dict:
        return {"class": self.class_name, "label": self.label, "n_images": self.n_images,
                "top_label": self.top_label, "top_share": self.top_share, "mean_prob": self.mean_prob}


@dataclass
class ProbeTable:
    labels: list[str]  # the probe labels
    scorer: str
    rows: list[ProbeRow]  # one per class, in class order

    def as_json(self) -> dict:
        return {"labels": self.labels, "scorer": self.scorer, "classes": [row.as_json() for row in self.rows]}

    def markdown(self) -> list[str]:
        header = " | ".join(self.labels)
        lines = ["## Probes", "",
                 "Share of each class's images whose top probe label is each label (mean probe probability).", "",
                 f"| class | images | {header} |", "|---|---|" + "---|" * len(self.labels)]
        for row in self.rows:
            cells = " | ".join(_cell(row.top_share[label], row.mean_prob[label]) for label in self.labels)
            lines.append(f"| {row.label} | {row.n_images} | {cells} |")
        return lines

    def text(self) -> str:
        width = max(len("class"), *(len(row.label) for row in self.rows))
        columns = [max(len(label), 15) for label in self.labels]
        lines = [f"{'class'.ljust(width)}  images  " + "  ".join(l.ljust(w) for l, w in zip(self.labels, columns))]
        for row in self.rows:
            cells = "  ".join(_cell(row.top_share[label], row.mean_prob[label]).ljust(w)
                              for label, w in zip(self.labels, columns))
            lines.append(f"{row.label.ljust(width)}  {row.n_images:>6}  {cells}")
        return "\n".join(lines)


def _cell(share: float | None, mean_prob: float | None) -> str:
    return "–" if share is None else f"{share:.0%} ({mean_prob:.2f})"


def probe_table(result: EvalResult) -> ProbeTable:
    """Per class: how often each probe label is an image's top probe label, and its mean probability."""
    if result.probe_logits is None:
        raise ValueError("this evaluation was run without probe labels")
    logits = result.probe_logits
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    top = logits.argmax(axis=1)
    rows = []
    for c, (name, label) in enumerate(zip(result.class_names, result.labels)):
        members = result.targets == c
        n = int(members.sum())
        share = {p: (float((top[members] == j).mean()) if n else None) for j, p in enumerate(result.probe_labels)}
        mean = {p: (float(probs[members, j].mean()) if n else None) for j, p in enumerate(result.probe_labels)}
        rows.append(ProbeRow(name, label, n, share, mean))
    return ProbeTable(list(result.probe_labels), result.probe_scorer or result.clip_model, rows)
