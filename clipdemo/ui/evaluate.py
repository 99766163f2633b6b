"""The Evaluate tab: zero-shot accuracy on an uploaded zip of class folders, with its report files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..errors import InputError
from ..plots import missing_font_notice
from ..studio import TEMPLATE_SETS, EvalSource
from .common import bind, make_room, show_notices, user_errors
from .formatting import eval_mistakes, eval_rows, eval_summary, notice_lines



def evaluate(studio, archive: str | None, label_lines: str, templates: str, custom_template: str,
             scorer: str = "auto", progress=gr.Progress()):
    """Zero-shot evaluation of a zip of class folders with CLIP: top-1 and top-5, per class, confusion matrix.

    Args:
        archive: a zip with one folder of images per class (a file or an http(s) URL)
        label_lines: optional 'folder: label' lines that name the classes
        templates: the prompt templates: single, cifar, imagenet, zh or custom
        custom_template: the template when templates is custom, with {} for the label
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        A metrics summary, a per-class table, the confusion matrix, the misclassified images and the report files.
    """
    if not archive:
        raise InputError("Upload a zip with one folder of images per class.")
    evals = Path(tempfile.gettempdir()) / "clipdemo-evals"
    evals.mkdir(exist_ok=True)
    make_room(studio)
    choice = (custom_template or "").strip() if templates == "custom" else templates
    report = tempfile.mkdtemp(prefix="report-", dir=evals)
    run = studio.evaluate_source(EvalSource(archive, labels=label_lines, upload=True, workdir=evals), report,
                                 choice or "single", batch_size=32, scorer=scorer,
                                 progress=lambda done, total: progress((done, total), desc="Classifying", unit="images"))
    result = run.result
    if font_notice := missing_font_notice(result.labels):  # the confusion matrix would draw boxes
        result.notices.append(font_notice)
    show_notices(result.notices)
    mistakes = [(studio.open_image(run.image_set.sources[result.source_indices[i]]), caption)
                for i, caption in eval_mistakes(result)]
    files = [str(run.report[kind]) for kind in ("json", "markdown", "confusion")]
    summary = eval_summary(result) + notice_lines(result.notices)
    return summary, eval_rows(result), run.report["figure"], mistakes, files


def build_evaluate(studio, scorer_choice: gr.Radio) -> None:
    with gr.Tab("Evaluate"):
        with gr.Row():
            with gr.Column():
                archive = gr.File(label="Zip of class folders (one folder of images per class)",
                                  file_types=[".zip"], elem_id="eval-zip")
                label_lines = gr.Textbox(value="", label="Labels (optional, one 'folder: label' per line)",
                                         lines=3, placeholder="cat: 猫\ndog: 狗")
                templates = gr.Dropdown([*TEMPLATE_SETS, "custom"], value="single",
                                        label="Templates (single picks the labels' language)")
                custom = gr.Textbox(value="", label="Custom template",
                                    placeholder="a photo of a {}, a type of pet.")
                go = gr.Button("Evaluate", variant="primary", elem_id="evaluate-button")
            with gr.Column():
                summary = gr.Markdown(label="summary")
                plot = gr.Plot(label="Confusion matrix")
                table = gr.Dataframe(headers=["class", "accuracy"], label="Per-class accuracy", interactive=False)
                mistakes = gr.Gallery(label="Misclassified (true → predicted)", columns=6, format="png")
                files = gr.File(label="Report files", file_count="multiple")
        go.click(user_errors(bind(evaluate, studio)), [archive, label_lines, templates, custom, scorer_choice],
                 [summary, table, plot, mistakes, files], api_name="evaluate", concurrency_limit=1)
