"""The Zero-shot tab: classify uploaded images against any labels typed."""

from __future__ import annotations

import gradio as gr

from ..text import DEFAULT_TEMPLATE, ZH_DEFAULT_TEMPLATE
from .common import MAX_UPLOADS, bind, read_uploads, show_notices, user_errors
from .formatting import classify_captions, classify_info, classify_rows, label_scores


def classify(studio, images: list[str], labels: str, template: str, top_k: int, scorer: str = "auto"):
    """Zero-shot classify each image against the labels with CLIP: each label's probability, best first.

    Args:
        images: the images to classify (files or http(s) URLs, up to 16)
        labels: the candidate labels, comma or newline separated, in English or Chinese
        template: the prompt each label is put in, with {} for the label; blank picks one by language
        top_k: how many labels to list per image
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        The first image's labels with their probabilities, a table of every image's top labels, and the scorer.
    """
    pil_images, names = read_uploads(images)
    result = studio.classify(pil_images, labels, template, int(top_k) if top_k else None, names=names,
                             scorer=scorer)
    show_notices(result.notices)
    per_image = [label_scores(r) for r in result.images]
    gallery = list(zip(pil_images, classify_captions(result)))
    return label_scores(result.images[0]), classify_rows(result), per_image, gallery, classify_info(result)


def show_selected(per_image: list[dict], evt: gr.SelectData):
    return per_image[evt.index] if per_image and evt.index < len(per_image) else {}


def build_zeroshot(studio, scorer_choice: gr.Radio) -> None:
    with gr.Tab("Zero-shot"):
        with gr.Row():
            with gr.Column():
                images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                 file_types=["image"], elem_id="classify-files")
                labels = gr.Textbox(label="Labels (comma or new line separated)", lines=3,
                                    placeholder="cat, dog, bird", elem_id="classify-labels")
                template = gr.Textbox(label="Template (blank: picked by the labels' language)", value="",
                                      placeholder=f"{DEFAULT_TEMPLATE} / {ZH_DEFAULT_TEMPLATE}")
                top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k")
                go = gr.Button("Classify", variant="primary", elem_id="classify-button")
            with gr.Column():
                label = gr.Label(label="First image", elem_id="classify-label")
                gallery = gr.Gallery(label="Top-1 per image (click to see its probabilities)", columns=4, format="png")
                table = gr.Dataframe(headers=["image", "label", "probability"], label="Probabilities",
                                     interactive=False)
                per_image = gr.State([])
                info = gr.Markdown(label="scorer")
        go.click(user_errors(bind(classify, studio)), [images, labels, template, top_k, scorer_choice],
                 [label, table, per_image, gallery, info], api_name="classify", concurrency_limit=4)
        gallery.select(show_selected, [per_image], [label], api_visibility="private")
