"""The Similarity tab: the image × text cosine matrix, and how uploaded clipdemo PNGs were made."""

from __future__ import annotations

import gradio as gr

from ..plots import missing_font_notice, similarity_heatmap
from .common import MAX_UPLOADS, bind, read_uploads, show_notices, upload_paths, user_errors
from .formatting import similarity_info, similarity_rows, similarity_title


def similarity(studio, images: list[str], texts: str, scorer: str = "auto"):
    """Cosine similarity of every image with every text, and each pair's CLIPScore (100 × max(cosine, 0)).

    Args:
        images: the images (files or http(s) URLs, up to 16)
        texts: the texts, one per line, in English or Chinese
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        A heatmap, a table of each image-text pair's cosine and CLIPScore, the scorer, and uploaded PNGs' origin.
    """
    pil_images, names = read_uploads(images)
    lines = [t for t in (texts or "").splitlines() if t.strip()]
    result = studio.similarity(pil_images, lines, names=names, scorer=scorer)
    if font_notice := missing_font_notice(result.image_names + result.texts):
        result.notices.append(font_notice)  # else the heatmap's Chinese labels would be boxes with no word why
    show_notices(result.notices)
    figure = similarity_heatmap(result.cosine, result.image_names, result.texts, similarity_title(result))
    found = {name: meta for name, p in zip(names, upload_paths(images)) if (meta := studio.read_provenance(p))}
    return figure, similarity_rows(result), similarity_info(result), found


def build_similarity(studio, scorer_choice: gr.Radio) -> None:
    with gr.Tab("Similarity"):
        with gr.Row():
            with gr.Column():
                images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                 file_types=["image"], elem_id="similarity-files")
                texts = gr.Textbox(label="Texts (one per line)", lines=4, placeholder="a dog\na cat\n一只戴眼镜的狗")
                go = gr.Button("Compute similarity", variant="primary", elem_id="similarity-button")
            with gr.Column():
                heatmap = gr.Plot(label="Cosine similarity")
                table = gr.Dataframe(headers=["image", "text", "cosine", "CLIP score"], label="Pairs",
                                     interactive=False,
                                     elem_id="similarity-table")
                info = gr.Markdown(label="scorer", elem_id="similarity-info")
                metadata = gr.JSON(label="How uploaded clipdemo PNGs were made (from their metadata)")
        go.click(user_errors(bind(similarity, studio)), [images, texts, scorer_choice],
                 [heatmap, table, info, metadata], api_name="similarity", concurrency_limit=4)
