"""The Moderate tab: the configured checker's per-concept scores and verdict for uploaded images."""

from __future__ import annotations

import gradio as gr

from .common import MAX_UPLOADS, bind, read_uploads, user_errors
from .formatting import moderation_captions, moderation_rows, moderation_summary


def moderate(studio, images: list[str]):
    """Check images for unsafe content: each image's verdict and per-concept scores, with the server's checker.

    Args:
        images: the images to check (files or http(s) URLs, up to 16)
    Returns:
        The verdicts in words, a table of concept scores, and the images as shown (flagged ones blurred).
    """
    pil_images, names = read_uploads(images)
    verdicts, checker = studio.moderate(pil_images)
    shown_images = studio.blur_flagged(pil_images, verdicts)
    gallery = list(zip(shown_images, moderation_captions(names, verdicts)))
    return moderation_summary(names, verdicts, checker), moderation_rows(names, verdicts), gallery


def build_moderate(studio) -> None:
    with gr.Tab("Moderate"):
        with gr.Row():
            with gr.Column():
                images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                 file_types=["image"], elem_id="moderate-files")
                go = gr.Button("Check", variant="primary", elem_id="moderate-button")
            with gr.Column():
                verdict = gr.Markdown(label="verdict")
                gallery = gr.Gallery(label="Images as shown (flagged ones blurred)", columns=4, format="png")
                table = gr.Dataframe(headers=["image", "concept", "score", "flagged"], label="Concept scores",
                                     interactive=False)
        go.click(user_errors(bind(moderate, studio)), [images], [verdict, table, gallery],
                 api_name="moderate", concurrency_limit=2)
