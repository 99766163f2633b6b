"""An evaluation written for people: report.md, eval.json and the confusion figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .result import EvalResult


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


def write_report(result: EvalResult, out_dir: str | Path, source: str) -> dict[str, Any]:
    """eval.json, report.md and confusion.png in out_dir: their paths, and the confusion figure as "figure"."""
    import json

    from ..plots import confusion_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "report.md", "confusion": out / "confusion.png"}
    paths["json"].write_text(json.dumps(result.as_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_report(result, source), encoding="utf-8")
    figure = confusion_figure(result.confusion, result.labels, f"{source}: top-1 {result.top1:.1%}")
    figure.savefig(paths["confusion"], dpi=110)
    return {**paths, "figure": figure}
