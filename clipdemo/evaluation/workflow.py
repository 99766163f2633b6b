"""One evaluation, top to bottom: open the images, pick the scorers, classify, read probes and ablations off the
same logits, write the report. The CLI and the Evaluate tab both call `evaluate_source`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..imagefiles import safe_extract_zip
from ..scorers import scorer_for
from ..text import has_cjk, parse_labels
from .ablation import ablation_series, probe_table
from .data import ImageSet, from_class_folders
from .edits import ClassEdits, apply_label_overrides
from .load import load_image_set
from .report import write_report
from .result import EvalResult
from .run import evaluate
from .templates import load_templates

if TYPE_CHECKING:
    from ..models import ModelRegistry

MAX_UPLOAD_FILES = 2000  # images in one uploaded zip
MAX_UPLOAD_BYTES = 200 * 2**20  # uncompressed size of one uploaded zip


@dataclass
class EvalSource:
    """Where the labelled images are, and how to read them."""

    path: str | Path  # a folder of class folders, a zip of them, a CSV or a CIFAR archive
    classes: list[str] | None = None  # keep only these (names or labels)
    limit: int | None = None
    edits: ClassEdits | None = None  # --drop, --merge, --sample
    labels: str | None = None  # "folder: label" lines
    upload: bool = False  # a visitor's zip: size-limited, never read through a link, no pickles
    workdir: str | Path | None = None  # where an upload is unpacked (the server prunes it); default: a temp folder


@dataclass
class EvalRun:
    result: EvalResult
    image_set: ImageSet
    report: dict[str, Any] = field(default_factory=dict)  # "json", "markdown", "confusion" paths; "figure"


def evaluate_source(models: ModelRegistry, source: EvalSource, out: str | Path | None, templates: str = "single",
                    batch_size: int = 64, num_workers: int = 0, progress: Callable[[int, int], None] | None = None,
                    accelerator: Any = None, scorer: str = "auto", probe: str | Sequence[str] | None = None,
                    ablate: bool = False) -> EvalRun:
    """Open the images, evaluate them and, on the main process, write the report to `out`."""
    # 1. The images (an upload is unpacked to a temp folder of its own first).
    image_set = open_source(source)
    # 2. Classify, with probes and ablations read off the same logits.
    result = evaluate_set(models, image_set, templates, batch_size, num_workers, progress, accelerator, scorer,
                          probe, ablate)
    # 3. The report: the main process writes it once.
    run = EvalRun(result, image_set)
    if out is not None and (accelerator is None or accelerator.is_main_process):
        run.report = write_report(result, out, Path(source.path).stem if source.upload else Path(source.path).name)
    return run


def open_source(source: EvalSource) -> ImageSet:
    if not source.upload:
        image_set = load_image_set(source.path, source.classes, source.limit, edits=source.edits)
    else:
        work = tempfile.mkdtemp(prefix="eval-", dir=source.workdir)
        folder = safe_extract_zip(source.path, work, max_files=MAX_UPLOAD_FILES, max_bytes=MAX_UPLOAD_BYTES)
        image_set = from_class_folders(folder, follow_symlinks=False)  # an upload: never read through a link
    return apply_label_overrides(image_set, source.labels) if source.labels else image_set


def evaluate_set(models: ModelRegistry, image_set: ImageSet, templates: str = "single", batch_size: int = 64,
                 num_workers: int = 0, progress: Callable[[int, int], None] | None = None, accelerator: Any = None,
                 scorer: str = "auto", probe: str | Sequence[str] | None = None, ablate: bool = False) -> EvalResult:
    """Zero-shot top-1/top-5 of a labelled image set against its class labels.

    probe: other labels (commas or new lines, like classify's) every image is also classified against,
    tabulated per class in result.probes. ablate: result.ablations holds full, each drop and each merge.
    """
    # 1. Labels and templates first: bad probe labels fail before any model loads.
    probe_labels = parse_labels(probe) if probe else []
    name, template_list = load_templates(templates, image_set.labels)
    # 2. The scorers: the probes' own language picks theirs, as in classify; the class results never change.
    clip, notices = scorer_for(models, image_set.labels + template_list, scorer)
    probe_clip = None
    if probe_labels:
        probe_clip, probe_notices = scorer_for(models, probe_labels + template_list, scorer)
        notices += [n for n in probe_notices if n not in notices]
    # 3. One pass over the images.
    result = evaluate(clip, image_set, template_list, name, batch_size, num_workers, progress, accelerator,
                      probe_labels, probe_clip)
    result.notices = notices + result.notices
    # 4. Probes and ablations, read off the same logits.
    if probe_labels:
        result.probes = probe_table(result)
    if ablate:
        result.ablations = ablation_series(result)
        result.notices += ablation_notices(result, image_set)
    return result


def ablation_notices(result: EvalResult, image_set: ImageSet) -> list[str]:
    notices = []
    if len(result.class_names) < 3:
        notices.append("With 2 classes every drop or merge leaves 1 class: the ablations hold the full run only.")
    if len({has_cjk(label) for label in image_set.labels}) == 2:
        notices.append("The labels mix Chinese and other text: the ablations reuse this run's scorer and "
                       "templates, which a separate run of an edited set may not choose.")
    return notices
