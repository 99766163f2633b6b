"""The links under Generate and Compare, and a link opened: its tab shown, the form filled, its button pressed once."""

from __future__ import annotations

import os

import gradio as gr
from gradio import route_utils
from gradio.route_utils import API_PREFIX

from ..generation import GenerationRequest
from ..history import Run
from ..links import COMPARE_FIELDS, PAGE_FIELDS, compare_link, open_link, result_link
from ..studio import SCHEDULERS
from .common import bind
from .compare import CompareTab
from .formatting import shown
from .generate import GenerateTab

# Pressing the page's own button runs its whole chain (Stop shown, the run, History, a fresh link).
PRESS = "(button) => { if (button) { document.querySelector('#' + button).click(); } return []; }"
BUTTONS = {"generate": "generate-button", "compare": "compare-button"}
COMPARE_ONLY = tuple(f.name for f in COMPARE_FIELDS if f.name not in PAGE_FIELDS)  # a_model, ..., b_negative


def page_root(request: gr.Request | None) -> str:
    """The URL people open: the Space's page on a Space (it passes the query to the app), else this server's root."""
    if space := os.environ.get("SPACE_ID"):
        return f"https://huggingface.co/spaces/{space}"
    if request is None or request.request is None:
        return ""
    starlette = request.request
    path = starlette.url.path
    route = path[path.find(API_PREFIX):] if API_PREFIX in path else path  # the route, under any mount point
    return route_utils.get_root_url(starlette, route, starlette.scope.get("root_path") or None)


def link_for(studio, run: Run | None, prompt: str, negative: str, n: int, steps: int, guidance: float,
             width: int, height: int, scorer: str, request: gr.Request = None) -> str:
    """The finished run as a link: the form's settings with the seed the run used (a blank seed was drawn)."""
    if not run:
        return gr.skip()
    job = GenerationRequest(prompt.strip(), (negative or "").strip(), int(n), int(steps), float(guidance),
                            int(width), int(height), run.seed)
    return result_link(page_root(request), job, scorer or "auto", studio.settings.preset)


def compare_link_for(studio, runs: list[Run] | None, prompt: str, seed: str, n: int, width: int, height: int,
                     a_model: str, a_steps: int, a_guidance: float, a_scheduler: str, a_negative: str,
                     b_model: str, b_steps: int, b_guidance: float, b_scheduler: str, b_negative: str,
                     scorer: str, request: gr.Request = None) -> str:
    """The finished comparison as a link, with the seed it used (a blank seed was drawn)."""
    given = dict(locals())
    if not runs:
        return gr.skip()
    named = {f.name: given[f.name] for f in COMPARE_FIELDS}
    named.update(prompt=prompt.strip(), seed=runs[0].seed, a_negative=(a_negative or "").strip(),
                 b_negative=(b_negative or "").strip())
    return compare_link(page_root(request), named, studio.settings.preset)


def apply_link(studio, request: gr.Request = None):
    """On page load: the link's tab, each input it names, a one-line notice of what it left out, the button to
    press (none unless run=1)."""
    params = dict(request.query_params) if request is not None and request.request is not None else {}
    choices = {"model": tuple(shown(m) for m in studio.generation_models()), "scheduler": tuple(SCHEDULERS)}
    opened = open_link(params, studio.settings.preset, choices)

    def value(name):
        if name not in opened.values:
            return gr.skip()
        return str(opened.values[name]) if name == "seed" else opened.values[name]

    on_generate = opened.tab == "generate"
    page = [value(n) if on_generate or n in ("scorer",) else gr.skip() for n in PAGE_FIELDS]
    compare = [value(n) if not on_generate else gr.skip() for n in ("prompt", "seed", "n", "width", "height",
                                                                       *COMPARE_ONLY)]
    notice = opened.notice()
    return (*page, *compare, gr.Tabs(selected=opened.tab) if params else gr.skip(),
            gr.Markdown(notice, visible=bool(notice)), BUTTONS[opened.tab] if opened.run else "")


def wire_links(demo: gr.Blocks, studio, gen: GenerateTab, cmp: CompareTab, tabs: gr.Tabs,
               notice: gr.Markdown) -> None:
    page = [gen.inputs[name] for name in PAGE_FIELDS]
    compare = [cmp.inputs[name] for name in ("prompt", "seed", "n", "width", "height", *COMPARE_ONLY)]
    gen_settings = [gen.inputs[n] for n in ("prompt", "negative", "n", "steps", "guidance", "width", "height",
                                            "scorer")]
    gen.event.then(bind(link_for, studio), [gen.last_run, *gen_settings], gen.link, queue=False,
                   api_visibility="private", show_progress="hidden")
    cmp_settings = [gen.inputs["scorer"] if f.name == "scorer" else cmp.inputs[f.name] for f in COMPARE_FIELDS]
    cmp.event.then(bind(compare_link_for, studio), [cmp.runs, *cmp_settings], cmp.link, queue=False,
                   api_visibility="private", show_progress="hidden")
    button = gr.Textbox(visible=False)  # the button an opened link presses, read by the browser
    opened = demo.load(bind(apply_link, studio), None, [*page, *compare, tabs, notice, button], queue=False,
                       api_visibility="private", show_progress="hidden")
    opened.then(None, button, None, js=PRESS, queue=False, api_visibility="private")
