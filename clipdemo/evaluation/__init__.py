"""Evaluate a labelled image collection zero-shot, as one unit: its data, templates, run, ablations and report.

load: a collection from a path, edited (data: the readers; edits: drop, merge, sample, relabel);
templates: how a class name becomes text; run: one pass that gives the logits (result: what they say);
ablation: ablations and attribute probes read off the same logits; report: report.md, eval.json, figure.
"""

from .ablation import AblationSeries, ProbeTable, ablation_series, drop_logits, merge_logits, probe_table
from .data import ImageSet, from_class_folders
from .edits import ClassEdits, apply_edits, apply_label_overrides, drop_class, merge_class, sample_class
from .load import load_image_set
from .report import markdown_report, write_report
from .result import EvalResult, top1_accuracy, top5_accuracy
from .run import evaluate
from .templates import TEMPLATE_SETS, load_templates

__all__ = ["AblationSeries", "ClassEdits", "EvalResult", "ImageSet", "ProbeTable", "TEMPLATE_SETS", "ablation_series",
           "apply_edits", "apply_label_overrides", "drop_class", "drop_logits", "evaluate", "from_class_folders",
           "load_image_set", "load_templates", "markdown_report", "merge_class", "merge_logits", "probe_table",
           "sample_class", "top1_accuracy", "top5_accuracy", "write_report"]
