"""The Gradio Blocks app: a header, then one tab per capability, each a thin wrapper over a Studio method.

Every handler turns InputError / ModelLoadError into gr.Error, so the page shows a message and the
server keeps running. Endpoints are named so `gradio_client` can call them (/generate, /classify,
/similarity, /search, /describe, ...). Each tab's layout, events and handlers live in its own module.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..studio import SCORER_CHOICES, Studio
from .bench import build_bench
from .cache import install as install_cache_writes
from .common import auth_from_env, bind
from .compare import build_compare
from .evaluate import build_evaluate
from .formatting import details, downloads_markdown, header, scorer_info
from .generate import build_generate
from .history import build_history
from .links import wire_links
from .mcp import install as install_mcp
from .queue import install as install_queue
from .moderate import build_moderate
from .search import build_search
from .similarity import build_similarity
from .zeroshot import build_zeroshot

MAX_FILE_SIZE = "50mb"  # per uploaded file (a zip of class folders may be this large)


def download_status(studio: Studio):
    """The models panel, refreshed each second while a download runs; the timer stops once all are settled."""
    statuses, warming = studio.downloads(), studio.warm_up
    busy = any(s.state in ("waiting", "downloading") for s in statuses) or warming.state == "running"
    text = "\n\n".join(part for part in (downloads_markdown(statuses) if statuses else "", warming.line) if part)
    return gr.Markdown(text, visible=bool(text)), gr.Timer(active=busy)


def build_app(studio: Studio) -> gr.Blocks:
    install_mcp()  # whoever turns the MCP server on (--mcp, GRADIO_MCP_SERVER) gets clipdemo's
    install_cache_writes()  # two visitors shown the same image at once both get all of it
    s = studio.settings
    max_age = int(studio.disk_policy.max_age_s)  # Gradio's own copies of served files age out too, hourly checked
    with gr.Blocks(title="clipdemo: CLIP studio", delete_cache=(min(3600, max_age), max_age)) as demo:
        history = gr.State([])  # this page's runs, fed by the Generate and Compare tabs
        gr.Markdown(header(s.sd_model, s.clip_model, studio.device.type, studio.dtype, studio.notices),
                    elem_id="model-banner")
        downloads = gr.Markdown(downloads_markdown(studio.downloads()), elem_id="model-downloads")
        ticker = gr.Timer(1.0, active=bool(studio.downloads()))
        ticker.tick(bind(download_status, studio), None, [downloads, ticker], queue=False, api_visibility="private",
                    show_progress="hidden")
        demo.load(bind(download_status, studio), None, [downloads, ticker], queue=False, api_visibility="private",
                  show_progress="hidden")
        with gr.Accordion("Details", open=False, elem_id="details"):  # operators' detail, off the first screen
            gr.Markdown(details(s.rank_by, studio.helpers(), studio.notices), elem_id="details-text")
            scorer_choice = gr.Radio(list(SCORER_CHOICES), value="auto", label="Scorer",
                                     info=scorer_info(s.zh_clip_model, s.clip_model))
        link_notice = gr.Markdown(visible=False, elem_id="link-notice")  # what an opened link left out
        with gr.Tabs() as tabs:
            generate_tab = build_generate(studio, scorer_choice)
            compare_tab = build_compare(studio, scorer_choice)
            build_bench(studio, scorer_choice)
            build_history(history, (generate_tab.event, generate_tab.last_run), (compare_tab.event, compare_tab.runs))
            build_search(studio, scorer_choice, history, generate_tab.prompt, tabs)
            build_zeroshot(studio, scorer_choice)
            build_similarity(studio, scorer_choice)
            build_moderate(studio)
            build_evaluate(studio, scorer_choice)
        wire_links(demo, studio, generate_tab, compare_tab, tabs, link_notice)
    return demo


def queue(demo: gr.Blocks, studio: Studio) -> gr.Blocks:
    """The server's queue: two runs of an event at once, a request refused only by its expected wait."""
    demo.queue(default_concurrency_limit=2)
    install_queue(demo, max_wait_s=studio.settings.max_wait_minutes * 60)
    return demo


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs) -> Any:
    """Serve the app. No extra allowed_paths: only gradio's own cache and temp files are served."""
    import os

    studio.start_serving()  # memory settings, the downloads and the warm-up, before the page takes visitors
    demo = build_app(studio)
    queue(demo, studio)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        auth=auth_from_env(os.environ.get("CLIPDEMO_AUTH")),
        show_error=True,
        **kwargs,
    )
