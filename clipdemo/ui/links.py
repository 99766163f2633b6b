"""The link under Generate, and a link opened: the page filled from its query, then Generate pressed once."""

from __future__ import annotations

import os

import gradio as gr
from gradio import route_utils
from gradio.route_utils import API_PREFIX

from ..generation import GenerationRequest
from ..history import Run
from ..links import PAGE_FIELDS, open_link, result_link
from .generate import GenerateTab

# Pressing the page's own button runs its whole chain: Stop shown, the run, History, a fresh link.
PRESS_GENERATE = "(run) => { if (run) { document.querySelector('#generate-button').click(); } return []; }"


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


def apply_link(studio, request: gr.Request = None):
    """On page load: each input the link names, a one-line notice of what it left out, and whether to run."""
    params = dict(request.query_params) if request is not None and request.request is not None else {}
    opened = open_link(params, studio.settings.preset)
    values = [gr.skip() if name not in opened.values else
              str(opened.values[name]) if name == "seed" else opened.values[name] for name in PAGE_FIELDS]
    notice = opened.notice()
    return *values, gr.Markdown(notice, visible=bool(notice)), opened.run


def wire_links(demo: gr.Blocks, studio, tab: GenerateTab) -> None:
    from .common import bind

    inputs = [tab.inputs[name] for name in PAGE_FIELDS]
    run_box = gr.Checkbox(visible=False)  # carries "run" to the browser, which presses Generate
    settings = [tab.inputs[name] for name in ("prompt", "negative", "n", "steps", "guidance", "width", "height",
                                              "scorer")]
    tab.event.then(bind(link_for, studio), [tab.last_run, *settings], tab.link, queue=False,
                   api_visibility="private", show_progress="hidden")
    opened = demo.load(bind(apply_link, studio), None, [*inputs, tab.link_notice, run_box], queue=False,
                       api_visibility="private", show_progress="hidden")
    opened.then(None, run_box, None, js=PRESS_GENERATE, queue=False, api_visibility="private")
