"""The Compare tab: one prompt and the same seeds under settings A and B, compared seed by seed."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import InputError
from ..generation import MAX_CANDIDATES, MAX_GUIDANCE, MAX_STEPS, MIN_SIZE, PAGE_MAX_SIZE, gpu_seconds
from ..history import run_from_result
from ..links import SIDE_FIELDS
from ..studio import SCHEDULERS, Setting
from .common import bind, on_gpu, show_notices, user_errors, write_run_files
from .formatting import compare_rows, compare_summary, score_name, setting_title, shown


def compare(studio, prompt: str, seed: str, num_candidates: int, width: int, height: int,
            model_a: str, steps_a: int, guidance_a: float, scheduler_a: str, negative_a: str,
            model_b: str, steps_b: int, guidance_b: float, scheduler_b: str, negative_b: str,
            scorer: str = "auto", progress=gr.Progress()):
    """Generate the same prompt and seeds with settings A and B, and compare their CLIPScores seed by seed.

    Args:
        prompt: what the images should show, in English or Chinese
        seed: the first seed (blank for a random one); both sides use the same seeds
        num_candidates: how many seeds to compare
        width: image width in pixels
        height: image height in pixels
        model_a: side A's text-to-image model
        steps_a: side A's denoising steps
        guidance_a: side A's guidance scale
        scheduler_a: side A's scheduler
        negative_a: side A's negative prompt
        model_b: side B's text-to-image model
        steps_b: side B's denoising steps
        guidance_b: side B's guidance scale
        scheduler_b: side B's scheduler
        negative_b: side B's negative prompt
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        Both sides' images, a summary of wins and mean scores, a table per seed and a plot of both distributions.
    """
    from ..plots import score_distributions

    models = {shown(m): m for m in studio.generation_models()}
    model_a, model_b = model_a or next(iter(models)), model_b or next(iter(models))  # None: the first model
    if model_a not in models or model_b not in models:
        raise InputError(f"Choose models from the list: {', '.join(models)}.")
    a = Setting(models[model_a], int(steps_a), float(guidance_a), scheduler_a or "default", negative_a or "")
    b = Setting(models[model_b], int(steps_b), float(guidance_b), scheduler_b or "default", negative_b or "")
    seed_value = None if seed is None or not str(seed).strip() else str(seed).strip()
    progress(0, desc="Generating A and B")
    result = studio.compare(prompt, seed_value, num_candidates, a, b, int(width), int(height), scorer=scorer)
    show_notices(list(dict.fromkeys(result.a.notices + result.b.notices)))
    gallery_a, gallery_b = write_run_files(studio, result.a), write_run_files(studio, result.b)
    figure = score_distributions(result.scores(result.a), result.scores(result.b),
                                 (setting_title("A", model_a, a), setting_title("B", model_b, b)),
                                 score_name(result.key))
    runs = [run_from_result(0, "compare A", result.a, a.scheduler, model_a, [p for p, _ in gallery_a]),
            run_from_result(0, "compare B", result.b, b.scheduler, model_b, [p for p, _ in gallery_b])]
    return gallery_a, gallery_b, compare_summary(result), compare_rows(result), figure, runs


def gpu_time(num_candidates=None, width=None, height=None, steps_a=None, steps_b=None) -> int:
    """The ZeroGPU seconds a comparison asks for: both settings' steps on the same seeds."""
    try:
        steps = int(steps_a) + int(steps_b)
    except (TypeError, ValueError):
        steps = None
    return gpu_seconds(num_candidates, steps, width, height)


@dataclass
class CompareTab:
    """The compare event and its two runs (History), the inputs by link field name, the link to the result."""

    event: gr.events.Dependency
    runs: gr.State
    inputs: dict[str, gr.components.Component]
    link: gr.Textbox


def build_compare(studio, scorer_choice: gr.Radio) -> CompareTab:
    """The tab's layout and events."""
    d = studio.settings.defaults
    with gr.Tab("Compare", id="compare"):
        model_names = [shown(m) for m in studio.generation_models()]
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", scale=3, placeholder="a red circle", elem_id="compare-prompt")
            seed = gr.Textbox(label="Seed (blank = random)", value="", scale=1)
            n = gr.Slider(1, MAX_CANDIDATES, value=d.n, step=1, label="Seeds", scale=1)
            width = gr.Slider(MIN_SIZE, PAGE_MAX_SIZE, value=d.width, step=8, label="Width", scale=1)
            height = gr.Slider(MIN_SIZE, PAGE_MAX_SIZE, value=d.height, step=8, label="Height", scale=1)
        sides = []
        # B starts with other steps than A (half, or 2 for a one-step model), so that the first click
        # already compares something; two identical settings would only ever draw.
        side_steps = {"A": d.steps, "B": d.steps // 2 if d.steps > 2 else 2}
        with gr.Row():
            for side in ("A", "B"):
                with gr.Column():
                    gr.Markdown(f"### Setting {side}")
                    sides.append([
                        gr.Dropdown(model_names, value=model_names[0], label="Model"),
                        gr.Slider(1, MAX_STEPS, value=side_steps[side], step=1, label="Steps"),
                        gr.Slider(0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="Guidance"),
                        gr.Dropdown(list(SCHEDULERS), value="default", label="Scheduler"),
                        gr.Textbox(value="", label="Negative prompt"),
                    ])
        go = gr.Button("Compare", variant="primary", elem_id="compare-button")
        with gr.Row():
            gallery_a = gr.Gallery(label="A (best first)", columns=4, format="png", height=260)
            gallery_b = gr.Gallery(label="B (best first)", columns=4, format="png", height=260)
        with gr.Row():
            summary = gr.Markdown(label="summary", elem_id="compare-summary")
            plot = gr.Plot(label="Score distributions")
        table = gr.Dataframe(headers=["seed", "A", "B"], label="Scores per seed", interactive=False,
                             elem_id="compare-table")
        link = gr.Textbox(label="Link to this comparison", elem_id="compare-link", interactive=False,
                          buttons=["copy"], placeholder="after a Compare: a link that brings it back")
        runs = gr.State(None)
        event = go.click(user_errors(on_gpu(bind(compare, studio), gpu_time)),
                         [prompt, seed, n, width, height, *sides[0], *sides[1], scorer_choice],
                         [gallery_a, gallery_b, summary, table, plot, runs], api_name="compare", concurrency_limit=1)
    inputs = {"prompt": prompt, "seed": seed, "n": n, "width": width, "height": height,
              **{f"{side}_{name}": box for side, boxes in zip("ab", sides) for name, box in zip(SIDE_FIELDS, boxes)}}
    return CompareTab(event, runs, inputs, link)
