"""The Gradio Blocks app: one tab per capability, each a thin wrapper over a Studio method.

Every handler turns InputError / ModelLoadError into gr.Error, so the page shows a message and the
server keeps running. Endpoints are named so `gradio_client` can call them (/generate, /classify,
/similarity).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..errors import InputError, ModelLoadError
from ..generation import MAX_CANDIDATES, MAX_GUIDANCE, MAX_SIZE, MAX_STEPS, MIN_SIZE, GenerationRequest
from ..images import load_image
from ..loading import is_local
from ..plots import similarity_heatmap
from ..studio import Studio
from ..text import DEFAULT_TEMPLATE

MAX_UPLOADS = 16  # images per request in the classify and similarity tabs
MAX_FILE_SIZE = "20mb"

EXAMPLE_PROMPTS = [
    ["a dog wearing glasses"],
    ["一只戴眼镜的狗"],
    ["a red circle"],
    ["a watercolor painting of a lighthouse at dawn"],
]


def _user_errors(fn):
    """Show InputError and ModelLoadError as a message box instead of a stack trace."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ModelLoadError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    import inspect

    wrapper.__signature__ = inspect.signature(fn)
    return wrapper


def _read_uploads(files: list[Any] | None) -> tuple[list, list[str]]:
    """PIL images and display names from gr.File values (paths)."""
    from pathlib import Path

    files = files or []
    if not files:
        raise InputError("Upload at least one image.")
    if len(files) > MAX_UPLOADS:
        raise InputError(f"Too many images: {len(files)} (the limit is {MAX_UPLOADS} per request).")
    paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
    names = [Path(p).name for p in paths]
    return [load_image(p, name=n) for p, n in zip(paths, names)], names


def shown(model_id: str) -> str:
    """A model's name for the page: a hub id as is, a local folder by its last part (no server paths)."""
    from pathlib import Path

    return Path(model_id).name if is_local(model_id) else model_id


def build_app(studio: Studio) -> gr.Blocks:
    s = studio.settings
    d = s.defaults

    def generate(
        prompt: str,
        negative_prompt: str,
        num_candidates: int,
        steps: int,
        guidance: float,
        width: int,
        height: int,
        seed: str,
        progress=gr.Progress(),
    ):
        """Generate candidates for a prompt and rank them best-first by CLIPScore."""
        progress(0, desc="Loading models")
        request = GenerationRequest(
            prompt, negative_prompt, num_candidates, steps, guidance, width, height,
            None if seed is None or not str(seed).strip() else str(seed).strip(),
        ).validated()

        def on_step(step: int, total: int) -> None:
            progress((step, total), desc="Denoising", unit="steps")

        result = studio.generate(request, on_step)
        for notice in result.notices:
            gr.Warning(notice)
        gallery = [(item.image, item.caption()) for item in result.images]
        table = [[item.rank, item.seed, None if item.clip_score is None else round(item.clip_score, 2)] for item in result.images]
        info = (
            f"Ranked by CLIPScore = 100·max(cos, 0) with **{shown(result.clip_model)}**; generated with "
            f"**{shown(result.sd_model)}**. Seeds {request.seed}–{request.seed + request.n - 1}."
        )
        if result.notices:
            info += "\n\n" + "\n".join(f"- ⚠️ {n}" for n in result.notices)
        return gallery, table, info

    def classify(images: list[str], labels: str, template: str, top_k: int):
        """Zero-shot classify each image against the labels; returns the first image's label and a table."""
        pil_images, names = _read_uploads(images)
        results = studio.classify(pil_images, labels, template, int(top_k) if top_k else None, names=names)
        first = {p.label: p.prob for p in results[0].predictions}
        table = [[r.name, p.label, round(p.prob, 4)] for r in results for p in r.predictions]
        per_image = [{p.label: p.prob for p in r.predictions} for r in results]
        return first, table, per_image, [(im, f"{r.name}: {r.top.label} ({r.top.prob:.0%})") for im, r in zip(pil_images, results)]

    def similarity(images: list[str], texts: str):
        """Cosine similarity of every image with every text (one per line), and each pair's CLIPScore."""
        pil_images, names = _read_uploads(images)
        lines = [t for t in (texts or "").splitlines() if t.strip()]
        result = studio.similarity(pil_images, lines, names=names)
        figure = similarity_heatmap(result.cosine, result.image_names, result.texts)
        table = [
            [name, text, round(float(result.cosine[i, j]), 4), round(float(result.clip_score[i, j]), 2)]
            for i, name in enumerate(result.image_names)
            for j, text in enumerate(result.texts)
        ]
        return figure, table

    with gr.Blocks(title="clipdemo: CLIP studio") as demo:
        gr.Markdown(
            "# clipdemo\nGenerate candidates with Stable Diffusion, rank them with CLIP, and explore CLIP "
            f"zero-shot.\n\nModels: **{shown(s.sd_model)}** (generation), **{shown(s.clip_model)}** (CLIP) · "
            f"device {studio.device.type}, {str(studio.dtype).replace('torch.', '')} · loaded on first use."
            + "".join(f"\n\n> ⚠️ {notice}" for notice in studio.notices),
            elem_id="model-banner",
        )
        with gr.Tab("Generate & rank"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", placeholder="a dog wearing glasses / 一只戴眼镜的狗", lines=2)
                    negative = gr.Textbox(label="Negative prompt", placeholder="blurry, low quality")
                    with gr.Row():
                        n = gr.Slider(1, MAX_CANDIDATES, value=d.n, step=1, label="Candidates")
                        steps = gr.Slider(1, MAX_STEPS, value=d.steps, step=1, label="Steps")
                        guidance = gr.Slider(0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="Guidance")
                    with gr.Row():
                        width = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.width, step=8, label="Width")
                        height = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.height, step=8, label="Height")
                        seed = gr.Textbox(value="", label="Seed (blank = random)", placeholder="random")
                    go = gr.Button("Generate", variant="primary", elem_id="generate-button")
                    gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt])
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="Ranked candidates (best first)", columns=4, format="png",
                                         elem_id="ranked-gallery")
                    info = gr.Markdown()
                    ranking = gr.Dataframe(headers=["rank", "seed", "CLIP score"], label="Ranking", interactive=False)
            go.click(_user_errors(generate), [prompt, negative, n, steps, guidance, width, height, seed],
                     [gallery, ranking, info], api_name="generate", concurrency_limit=1)

        with gr.Tab("Zero-shot"):
            with gr.Row():
                with gr.Column():
                    zs_images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                        file_types=["image"], elem_id="classify-files")
                    labels = gr.Textbox(label="Labels (comma or new line separated)", lines=3,
                                        placeholder="cat, dog, bird", elem_id="classify-labels")
                    template = gr.Textbox(label="Template", value=DEFAULT_TEMPLATE)
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k")
                    zs_go = gr.Button("Classify", variant="primary", elem_id="classify-button")
                with gr.Column():
                    zs_label = gr.Label(label="First image", elem_id="classify-label")
                    zs_gallery = gr.Gallery(label="Top-1 per image (click to see its probabilities)", columns=4, format="png")
                    zs_table = gr.Dataframe(headers=["image", "label", "probability"], interactive=False)
                    zs_state = gr.State([])
            zs_go.click(_user_errors(classify), [zs_images, labels, template, top_k],
                        [zs_label, zs_table, zs_state, zs_gallery], api_name="classify", concurrency_limit=4)

            def show_selected(per_image: list[dict], evt: gr.SelectData):
                return per_image[evt.index] if per_image and evt.index < len(per_image) else {}

            zs_gallery.select(show_selected, [zs_state], [zs_label], api_visibility="private")

        with gr.Tab("Similarity"):
            with gr.Row():
                with gr.Column():
                    sim_images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                         file_types=["image"], elem_id="similarity-files")
                    texts = gr.Textbox(label="Texts (one per line)", lines=4, placeholder="a dog\na cat\n一只戴眼镜的狗")
                    sim_go = gr.Button("Compute similarity", variant="primary", elem_id="similarity-button")
                with gr.Column():
                    heatmap = gr.Plot(label="Cosine similarity")
                    sim_table = gr.Dataframe(headers=["image", "text", "cosine", "CLIP score"], interactive=False)
            sim_go.click(_user_errors(similarity), [sim_images, texts], [heatmap, sim_table],
                         api_name="similarity", concurrency_limit=4)
    return demo


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs) -> Any:
    demo = build_app(studio)
    demo.queue(max_size=32, default_concurrency_limit=2)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
        **kwargs,
    )
