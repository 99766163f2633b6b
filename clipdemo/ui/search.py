"""The Search tab: find images by text or by image in an uploaded zip or in this page's generations,
and describe an image in words, with a button that sends the description to Generate."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import gradio as gr

from ..errors import InputError
from ..studio import LANGUAGES
from ..text import display_name
from .common import bind, make_room, session_of, show_notices, user_errors
from .formatting import notice_lines

SOURCES = ("uploaded zip", "generated on this page")
DEFAULT_K = 12


def _work_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "clipdemo-search"
    folder.mkdir(exist_ok=True)
    return folder


def _zip_folder(studio, archive: str) -> Path:
    """The zip's images, unpacked once per content; the least recently used files make room first."""
    make_room(studio)
    return studio.unpack_images(archive, _work_dir())


def generated_files(history: list[dict] | None) -> list[str]:
    """The images this page generated (Generate and Compare runs), oldest first, those still on disk."""
    files = [f for run in history or [] for f in run.get("files") or []]
    return [f for f in dict.fromkeys(files) if Path(f).is_file()]


def search(studio, archive: str | None, text: str, image: str | None = None, source: str = SOURCES[0],
           k: int = DEFAULT_K, scorer: str = "auto", history: list[dict] | None = None, request: gr.Request = None,
           progress=gr.Progress()):
    """Search a zip of images by a text or by an image with CLIP: the closest images, best first.

    Args:
        archive: a zip of images to search (a file or an http(s) URL)
        text: what to look for, in English or Chinese (or give an image instead)
        image: an image to find similar ones to (used when the text is blank)
        source: uploaded zip, or the images this page generated
        k: how many images to return
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        The closest images with their scores as captions, a table of file, cosine and CLIPScore, and a summary.
    """
    if source not in SOURCES:
        raise InputError(f"Choose where to search: {' or '.join(SOURCES)}.")
    if not (text or "").strip() and not image:
        raise InputError("Type a text or give an image to search with.")
    query = {"text": text} if (text or "").strip() else {"image": image}
    embed = lambda done, total: progress((done, total), desc="Embedding images", unit="images")  # noqa: E731
    if source == SOURCES[1]:
        files = generated_files(history)
        make_room(studio)
        if not files:
            raise InputError("Nothing was generated on this page yet: generate some images first, or upload a zip.")
        root = Path(tempfile.gettempdir()) / "clipdemo-runs"
        page = hashlib.sha1(str(session_of(request)).encode()).hexdigest()[:12]
        result = studio.search(root, k=int(k), scorer=scorer, progress=embed, files=files,
                               cache=_work_dir() / f"page-{page}", **query)
    else:
        if not archive:
            raise InputError("Upload a zip of images to search (or choose 'generated on this page').")
        work = _zip_folder(studio, archive)
        result = studio.search(work / "images", k=int(k), scorer=scorer, progress=embed, follow_symlinks=False,
                               cache=work / "index", **query)
    show_notices(result.notices)
    gallery = [(hit.path, f"{hit.score:.3f} · {hit.file}") for hit in result.hits]
    rows = [[rank, hit.file, round(hit.score, 4)] for rank, hit in enumerate(result.hits, 1)]
    asked = f"the text **{result.query}**" if result.kind == "text" else "the query image"
    summary = (f"The {len(result.hits)} of {result.n_images} images closest to {asked} (cosine similarity, "
               f"{display_name(result.scorer)}).") + notice_lines(result.notices)
    return gallery, rows, summary


def describe(studio, image: str | None, language: str = "en", k: int = 8, phrases: str | None = None,
             scorer: str = "auto"):
    """Describe an image with CLIP: the phrases from a bank that fit it best, and a prompt composed from them.

    Args:
        image: the image to describe (a file or an http(s) URL)
        language: en or zh, the language of the phrases
        k: how many phrases to list
        phrases: a phrase bank of your own (a text file, one phrase per line), else the server's
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        A table of phrases with their scores, a prompt line made of the best ones, and a summary.
    """
    if not image:
        raise InputError("Give an image to describe.")
    if language not in LANGUAGES:
        raise InputError(f"Choose a language: {', '.join(LANGUAGES)}.")
    result = studio.describe([studio.open_image(image)], phrases=phrases or None, language=language, k=int(k),
                             names=[Path(image).name], scorer=scorer)
    show_notices(result.notices)
    d = result.images[0]
    rows = [[rank, p.text, p.category, round(p.score, 4)] for rank, p in enumerate(d.phrases, 1)]
    summary = (f"Phrases from the **{result.bank}** bank ({result.language}), scored by "
               f"{display_name(result.scorer)}.") + notice_lines(result.notices)
    return rows, d.prompt, summary


def to_generate(prompt: str):
    if not (prompt or "").strip():
        raise InputError("Describe an image first: the prompt line is empty.")
    return prompt, gr.Tabs(selected="generate")


def build_search(studio, scorer_choice: gr.Radio, history: gr.State, gen_prompt: gr.Textbox, tabs: gr.Tabs) -> None:
    with gr.Tab("Search"):
        gr.Markdown("CLIP both ways: find the images that fit a text or look like an image, and find the words "
                    "that fit an image.")
        with gr.Row():
            with gr.Column():
                source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Search in")
                archive = gr.File(label="Zip of images (any folders inside)", file_types=[".zip"],
                                  elem_id="search-zip")
                text = gr.Textbox(label="Text query", placeholder="a red circle / 一只戴眼镜的狗",
                                  elem_id="search-text")
                image = gr.Image(label="…or an image query", type="filepath", sources=["upload"], height=160)
                k = gr.Slider(1, 100, value=DEFAULT_K, step=1, label="Results")
                go = gr.Button("Search", variant="primary", elem_id="search-button")
            with gr.Column(scale=2):
                summary = gr.Markdown(label="Search summary", elem_id="search-summary")
                gallery = gr.Gallery(label="Best first (cosine · file)", columns=6, height=360,
                                     elem_id="search-gallery")
                table = gr.Dataframe(headers=["rank", "file", "cosine"], label="Results", interactive=False,
                                     elem_id="search-table")
        go.click(user_errors(bind(search, studio)), [archive, text, image, source, k, scorer_choice, history],
                 [gallery, table, summary], api_name="search", concurrency_limit=2)

        gr.Markdown("### Describe an image")
        with gr.Row():
            with gr.Column():
                to_describe = gr.Image(label="Image", type="filepath", sources=["upload"], height=200,
                                       elem_id="describe-image")
                language = gr.Radio(list(LANGUAGES), value="en", label="Language of the phrases")
                n = gr.Slider(1, 30, value=8, step=1, label="Phrases")
                phrases = gr.File(label="Your phrases (optional: one per line, or a JSON bank)",
                                  file_types=[".txt", ".json"])
                describe_button = gr.Button("Describe", variant="primary", elem_id="describe-button")
            with gr.Column(scale=2):
                info = gr.Markdown(label="Description summary", elem_id="describe-summary")
                ranked = gr.Dataframe(headers=["rank", "phrase", "kind", "cosine"], label="Phrases (best first)",
                                      interactive=False,
                                      elem_id="describe-table")
                prompt = gr.Textbox(label="Described as a prompt", elem_id="describe-prompt")
                send = gr.Button("Send to Generate", elem_id="describe-send")
        describe_button.click(user_errors(bind(describe, studio)), [to_describe, language, n, phrases, scorer_choice],
                              [ranked, prompt, info], api_name="describe", concurrency_limit=2)
        send.click(user_errors(to_generate), prompt, [gen_prompt, tabs], api_visibility="private")
