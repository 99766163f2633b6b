"""The Generate & rank tab: candidates for a prompt, ranked best-first, with a Stop button."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import Cancelled
from ..generation import MAX_CANDIDATES, MAX_GUIDANCE, MAX_STEPS, MIN_SIZE, PAGE_MAX_SIZE, GenerationRequest, gpu_seconds
from ..history import run_from_result
from .common import (StopFlags, bind, gallery_of, new_run, on_gpu, session_of, show_notices, temp_folders,
                     user_errors)
from .formatting import describe_run, ranking_table, shown


def generate(
    studio,
    stop_flags: StopFlags,
    prompt: str,
    negative_prompt: str,
    num_candidates: int,
    steps: int,
    guidance: float,
    width: int,
    height: int,
    seed: str,
    scorer: str = "auto",
    pickscore: bool | None = None,
    request: gr.Request = None,
    progress=gr.Progress(),
):
    """Generate candidate images for a prompt and rank them best-first by CLIPScore (with each one's seed).

    Args:
        prompt: what the image should show, in English or Chinese
        negative_prompt: what it should not show (optional)
        num_candidates: how many images to generate and rank (1 to 8)
        steps: denoising steps per image
        guidance: classifier-free guidance scale (0 turns it off)
        width: image width in pixels, a multiple of 8
        height: image height in pixels, a multiple of 8
        seed: the first candidate's seed (the others follow it); blank for a random one
        scorer: which CLIP scores: auto (by the text's language), english or chinese
        pickscore: also score with PickScore (human preference), where the server has it
    Returns:
        The ranked images with their rank, CLIPScore and seed as captions, the ranking table, the run's details
        and a zip of the PNGs with their parameters.
    """
    job = GenerationRequest(
        prompt, negative_prompt or "", num_candidates, steps, guidance, width, height,
        None if seed is None or not str(seed).strip() else str(seed).strip(),
    ).validated()
    # A click before the models are downloaded waits here, with the download's bytes and time left in view.
    studio.await_models(job.prompt, lambda status: progress(status.fraction, desc=status.line()), pickscore)
    progress(0, desc="Loading models")

    def on_step(step: int, total: int) -> None:
        progress((step, total), desc="Denoising", unit="steps")

    stop_flag = stop_flags.arm(session_of(request))
    try:
        out, archive = new_run(studio)
        result = studio.generate(job, on_step, scorer=scorer, should_stop=stop_flag.is_set, pickscore=pickscore,
                                 out_dir=out, archive=archive, prunable=temp_folders())
    except Cancelled:
        raise gr.Error("Stopped: the generation was cancelled, nothing was kept.", print_exception=False) from None
    show_notices(result.notices)
    gallery = gallery_of(result)
    run = run_from_result(0, "generate", result, model_label=shown(result.sd_model), files=[p for p, _ in gallery])
    return gallery, ranking_table(result), describe_run(result), str(result.files.archive), run


def gpu_time(num_candidates=None, steps=None, width=None, height=None) -> int:
    """The ZeroGPU seconds one click asks for, from its own settings."""
    return gpu_seconds(num_candidates, steps, width, height)


def show_stop(stop_flags: StopFlags, request: gr.Request = None):
    """On the click, before the run is queued: from now on Stop cancels this page's run, even while it waits."""
    stop_flags.submit(session_of(request))
    return gr.Button(visible=True)


def stop(stop_flags: StopFlags, request: gr.Request = None):
    """Stop this page's running generation; its worker is freed at the next denoising step."""
    stop_flags.stop(session_of(request))
    return "Stopping…"


def examples(studio) -> list[str]:
    """The active preset's example prompts: what its models can draw, the seed's example first."""
    from ..config import get_preset

    return list(get_preset(studio.settings.preset).examples)


def kept_for(studio) -> str:
    """How long a run's download stays on the server, said beside it: a page left open past it gets a dead link."""
    hours = studio.disk_policy.min_age_s / 3600
    return f"at least {hours:g} hour" + ("" if hours == 1 else "s")


def pickscore_info(on_cpu: bool) -> str:
    return ("also score with PickScore (human-preference CLIP-H; "
            + ("about a fifth more time on this CPU" if on_cpu else "cheap on a GPU") + ", loads on first use)")


@dataclass
class GenerateTab:
    """What other parts of the page reach: the event and its run (History), the prompt (Search sends to it),
    the inputs by link field name and the link's own elements."""

    event: gr.events.Dependency
    last_run: gr.State
    prompt: gr.Textbox
    inputs: dict[str, gr.components.Component]
    link: gr.Textbox


def build_generate(studio, scorer_choice: gr.Radio) -> GenerateTab:
    """The tab's layout and events."""
    s, d = studio.settings, studio.settings.defaults
    stop_flags = StopFlags()
    with gr.Tab("Generate & rank", id="generate"):
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", placeholder="a dog wearing glasses / 一只戴眼镜的狗", lines=2,
                                    elem_id="generate-prompt")
                with gr.Row():  # right under the prompt: on a phone both fit the first screen
                    go = gr.Button("Generate", variant="primary", elem_id="generate-button", scale=3)
                    # Shown only while this page's generation runs.
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button", scale=1, visible=False)
                gr.Examples([[e] for e in examples(studio)], inputs=[prompt])
                with gr.Accordion("Settings", open=True):
                    negative = gr.Textbox(value="", label="Negative prompt", placeholder="blurry, low quality")
                    with gr.Row():
                        n = gr.Slider(1, MAX_CANDIDATES, value=d.n, step=1, label="Candidates")
                        steps = gr.Slider(1, MAX_STEPS, value=d.steps, step=1, label="Steps")
                        guidance = gr.Slider(0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="Guidance")
                    with gr.Row():
                        width = gr.Slider(MIN_SIZE, PAGE_MAX_SIZE, value=d.width, step=8, label="Width")
                        height = gr.Slider(MIN_SIZE, PAGE_MAX_SIZE, value=d.height, step=8, label="Height")
                        seed = gr.Textbox(value="", label="Seed (blank = random)", placeholder="random")
                    pickscore = gr.Checkbox(value=studio.pickscore_default, label="PickScore",
                                            interactive=s.pick_model != "none", elem_id="pickscore-box",
                                            info=pickscore_info(studio.device.type == "cpu"))
            with gr.Column(scale=3):
                gallery = gr.Gallery(label="Ranked candidates (best first)", columns=4, format="png",
                                     height=320, elem_id="ranked-gallery")
                info = gr.Markdown(label="details")
                ranking = gr.Dataframe(headers=["rank", "seed", "CLIP score", "moderation"],
                                       label="Ranking", interactive=False, elem_id="ranking-table")
                download = gr.File(label="Download all (PNGs with their parameters + manifest.json; "
                                         f"kept on the server for {kept_for(studio)})")
                link = gr.Textbox(label="Link to this result", elem_id="result-link", interactive=False,
                                  buttons=["copy"], placeholder="after a Generate: a link that brings this ranking back")
        last_run = gr.State(None)
        gen_event = go.click(bind(show_stop, stop_flags), None, stop_button, queue=False,
                             api_visibility="private")
        gen_event = gen_event.then(user_errors(on_gpu(bind(generate, studio, stop_flags), gpu_time)),
                                   [prompt, negative, n, steps, guidance, width, height, seed, scorer_choice,
                                    pickscore],
                                   [gallery, ranking, info, download, last_run], api_name="generate",
                                   concurrency_limit=1)
        gen_event.then(lambda: gr.Button(visible=False), None, stop_button, queue=False, api_visibility="private")
        # The page runs .then only after a success: a stopped or refused run must hide Stop too.
        gen_event.failure(lambda: gr.Button(visible=False), None, stop_button, queue=False, api_visibility="private")
        stop_button.click(bind(stop, stop_flags), None, info, api_name="stop", concurrency_limit=None, queue=False)
    inputs = {"prompt": prompt, "negative": negative, "seed": seed, "n": n, "steps": steps, "guidance": guidance,
              "width": width, "height": height, "scorer": scorer_choice}
    return GenerateTab(gen_event, last_run, prompt, inputs, link)
