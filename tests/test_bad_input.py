"""Every bad input, through every layer: the core, the CLI and a live Gradio server.

One table (CASES) lists each input once. Each row says which layers it applies to and what the user
must be told. Three tests walk the table:

* test_core: clipdemo.Studio / load_image / GenerationRequest.validated() / parse_labels / check_template
  raise clipdemo.errors.InputError with that message (or succeed, for inputs that must work);
* test_cli:  `clipdemo.cli.main` exits with code 2 and prints exactly one line on stderr, no traceback;
* test_ui:   a real Gradio server answers with gradio_client's AppError carrying the message, and
  afterwards (test_ui_still_answers_after_bad_input) still serves a good request.

A row's `error` is a regex for our message. Gradio checks sliders before our code runs and argparse
checks types before main() does: `ui_error` / `cli_error` give the wording those use (the UI accepts
either wording, since both are clear). Rows with error=None must work.
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from clipdemo import GenerationRequest, InputError
from clipdemo.cli import main
from clipdemo.generation import MAX_SEED, Candidate, check_output
from clipdemo.images import load_image
from clipdemo.generation.ranking import rank_candidates
from clipdemo.text import DEFAULT_TEMPLATE, check_template, parse_labels

# -- inputs ---------------------------------------------------------------------------------------

GOOD_GENERATE = dict(prompt="a red circle", n=1, steps=1, guidance=0.0, width=64, height=64, seed=7)
GOOD_LABELS = "cat, dog"
LONG_PROMPT = " ".join(["a small red circle next to a big blue square on a white table"] * 8)  # ~105 tokens
MANY_LABELS = ", ".join(f"label{i}" for i in range(1001))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of the given size, built row by row: a few KB on disk, no pixel buffer in memory."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _truncated_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(pixels), "PNG")
    return data[: len(data) // 2]


def _palette_png() -> bytes:
    image = Image.new("P", (40, 30), 1)
    image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)  # index 1 is green
    return _save(image, "PNG")


def _animated_gif() -> bytes:
    red, blue = Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (40, 30), (0, 0, 255))
    return _save(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)


# file name -> bytes; each is written once per module (see the `files` fixture)
UPLOADS = {
    "x.png": lambda: b"this is a text file, not a picture\n",
    "broken.png": _truncated_png,
    "bomb.png": lambda: blank_bilevel_png(20_000, 20_000),  # 400 Mpx: Pillow's own bomb limit
    "huge.png": lambda: blank_bilevel_png(8_000, 8_000),  # 64 Mpx: under Pillow's limit, over ours (40 Mpx)
    "cmyk.jpg": lambda: _save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95),
    "rgba.png": lambda: _save(Image.new("RGBA", (40, 30), (0, 0, 255, 0)), "PNG"),  # fully transparent
    "gray16.png": lambda: _save(Image.fromarray(np.full((30, 40), 65535, np.uint16)), "PNG"),
    "palette.png": _palette_png,
    "animated.gif": _animated_gif,
    "good.png": lambda: _save(Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 40, 3), np.uint8)), "PNG"),
}


# -- the table ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # generate | upload | labels | texts | rank
    value: dict  # what differs from a good input
    error: str | None  # regex of the message; None: the input must work
    layers: str = "core cli ui"
    cli_error: str | None = None  # argparse's wording, where it refuses the input before main() does
    ui_error: str | None = None  # gradio's wording, where it refuses the input before our code; either is fine
    expect: dict = field(default_factory=dict)  # for inputs that must work: what the result shows
    xfail: dict = field(default_factory=dict)  # layer -> reason (strict): a known gap, see the report


def slider(value, relation: str, bound) -> str:
    """Gradio's own slider message, e.g. 'Value 0 is less than minimum value 1.'"""
    word = "less than minimum" if relation == "<" else "greater than maximum"
    num = lambda v: re.escape(str(v)) + r"(\.0)?"  # noqa: E731
    return rf"Value {num(value)} is {word} value {num(bound)}\."


RANGE_N = r"Number of candidates must be between 1 and 8 \(got {}\)"
RANGE_STEPS = r"Steps must be between 1 and 100 \(got {}\)"
RANGE_GUIDANCE = r"Guidance must be between 0 and 30 \(got {}\)"
NOT_READABLE = r"not a readable image \(is it corrupt, or not an image at all\?\)"
TEMPLATE_ONCE = r"The template must contain '\{\}' exactly once, where the label goes"

CASES = [
    # id                          kind        value                                   error (regex) / extras
    # -- prompts ------------------------------------------------------------------------------------------------
    Case("prompt-empty", "generate", dict(prompt=""), r"The prompt is empty: type what the image should show\."),
    Case("prompt-whitespace", "generate", dict(prompt="  \t  "), r"The prompt is empty"),
    Case("prompt-over-77-tokens", "generate", dict(prompt=LONG_PROMPT), None,
         expect=dict(notice=r"The prompt is \d+ tokens long; CLIP reads only the first 77, so the rest was ignored")),
    # -- generation numbers (gradio sliders may refuse first: either message is fine) --------------------------
    Case("n-0", "generate", dict(n=0), RANGE_N.format(0), ui_error=slider(0, "<", 1)),
    Case("n-9", "generate", dict(n=9), RANGE_N.format(9), ui_error=slider(9, ">", 8)),
    Case("steps-0", "generate", dict(steps=0), RANGE_STEPS.format(0), ui_error=slider(0, "<", 1)),
    Case("steps-101", "generate", dict(steps=101), RANGE_STEPS.format(101), ui_error=slider(101, ">", 100)),
    Case("guidance-neg1", "generate", dict(guidance=-1), RANGE_GUIDANCE.format(-1), ui_error=slider(-1, "<", 0)),
    Case("guidance-31", "generate", dict(guidance=31), RANGE_GUIDANCE.format(31), ui_error=slider(31, ">", 30)),
    Case("width-100-not-multiple-of-8", "generate", dict(width=100),
         r"Width must be a multiple of 8 \(got 100; try 96\)"),
    Case("height-32-too-small", "generate", dict(height=32),
         r"Height must be between 64 and 2048 pixels \(got 32\)", ui_error=slider(32, "<", 64)),
    Case("width-4096-too-large", "generate", dict(width=4096),
         r"Width must be between 64 and 2048 pixels \(got 4096\)", ui_error=slider(4096, ">", 1024)),
    Case("seed-neg1", "generate", dict(seed=-1), rf"Seed must be between 0 and {MAX_SEED} \(got -1\)"),
    Case("seed-abc", "generate", dict(seed="abc"), r"The seed must be a whole number \(got 'abc'\)",
         cli_error=r"argument --seed: invalid int value: 'abc'"),
    # -- uploads -------------------------------------------------------------------------------------------------
    Case("upload-none", "upload", dict(file=None), r"Give at least one image to classify\.",
         cli_error=r"the following arguments are required: images", ui_error=r"Upload at least one image\."),
    Case("upload-text-file-named-png", "upload", dict(file="x.png"), r"x\.png: " + NOT_READABLE),
    Case("upload-truncated-png", "upload", dict(file="broken.png"), r"broken\.png: " + NOT_READABLE),
    Case("upload-bomb-20000x20000", "upload", dict(file="bomb.png"),
         r"bomb\.png: the image is too large \(over 40,000,000 pixels\)"),
    Case("upload-huge-8000x8000", "upload", dict(file="huge.png"),
         r"huge\.png: the image is too large \(8000x8000 pixels; the limit is 40,000,000 pixels\)"),
    Case("upload-cmyk-jpeg", "upload", dict(file="cmyk.jpg"), None, expect=dict(size=(40, 30), pixel=(255, 0, 0))),
    Case("upload-rgba-png", "upload", dict(file="rgba.png"), None,  # transparent -> white background
         expect=dict(size=(40, 30), pixel=(255, 255, 255))),
    Case("upload-gray16-png", "upload", dict(file="gray16.png"), None,
         expect=dict(size=(40, 30), pixel=(255, 255, 255))),
    Case("upload-palette-png", "upload", dict(file="palette.png"), None,
         expect=dict(size=(40, 30), pixel=(0, 128, 0))),
    Case("upload-animated-gif-first-frame", "upload", dict(file="animated.gif"), None,
         expect=dict(size=(40, 30), pixel=(255, 0, 0))),
    # -- labels and templates ------------------------------------------------------------------------------------
    Case("labels-none", "labels", dict(labels=""),
         r"Give at least 2 labels separated by commas or new lines \(got 0\)\."),
    Case("labels-one", "labels", dict(labels="cat"),
         r"Give at least 2 labels separated by commas or new lines \(got 1\)\."),
    Case("labels-duplicate", "labels", dict(labels="cat, dog, Cat"),
         r"Label 'Cat' appears more than once: each label must be different\."),
    Case("labels-1001", "labels", dict(labels=MANY_LABELS), r"Too many labels: 1001 \(the limit is 1000\)\."),
    Case("labels-only-punctuation", "labels", dict(labels="cat, ?!"),
         r"Label '\?!' has no letters or digits: use words as labels\."),
    Case("template-without-braces", "labels", dict(template="a photo"), TEMPLATE_ONCE),
    Case("template-braces-twice", "labels", dict(template="a {} next to a {}"), TEMPLATE_ONCE),
    # -- similarity texts ----------------------------------------------------------------------------------------
    Case("texts-blank", "texts", dict(texts=["   "]), r"Give at least one text\."),
    # -- broken generated outputs (core only: no user can send these) -------------------------------------------
    Case("output-nan", "rank", dict(pixels=np.nan), None, layers="core",
         expect=dict(problem="the model produced NaN values")),
    Case("output-all-black", "rank", dict(pixels=0.0), None, layers="core",
         expect=dict(problem="the model produced an all-black image")),
]


def params(layer: str):
    """The rows that apply to one layer, with readable ids and their strict xfails."""
    rows = []
    for case in CASES:
        if layer not in case.layers.split():
            continue
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail[layer])] if layer in case.xfail else []
        rows.append(pytest.param(case, id=case.id, marks=marks))
    return rows


def test_table_is_well_formed():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        assert case.kind in {"generate", "upload", "labels", "texts", "rank"}
        assert set(case.layers.split()) <= {"core", "cli", "ui"}
        assert set(case.xfail) <= set(case.layers.split())
        assert case.error is not None or case.expect, case.id


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> path of every upload in UPLOADS, written once."""
    folder = tmp_path_factory.mktemp("uploads")
    paths = {}
    for name, make in UPLOADS.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    return paths


def generate_params(case: Case) -> dict:
    return {**GOOD_GENERATE, **case.value}


def labels_params(case: Case) -> tuple[str, str]:
    return case.value.get("labels", GOOD_LABELS), case.value.get("template", DEFAULT_TEMPLATE)


# -- layer 1: the core ---------------------------------------------------------------------------------

def peak_rss_growth(fn) -> tuple[object, int]:
    """Run fn; return (its exception or result, the largest growth of resident memory seen meanwhile)."""
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    start, peak, done = rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss() - start)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = fn()
    except Exception as exc:  # noqa: BLE001 - handed back to the caller to check
        outcome = exc
    finally:
        done.set()
        sampler.join()
    return outcome, max(peak[0], rss() - start)


@pytest.mark.parametrize("case", params("core"))
def test_core(case: Case, studio, files):
    if case.kind == "generate":
        request = GenerationRequest(**generate_params(case))
        if case.error:
            with pytest.raises(InputError, match=case.error):
                request.validated()
            with pytest.raises(InputError, match=case.error):  # and before any model is touched
                studio.generate(request)
        else:
            result = studio.generate(request)
            assert len(result.images) == 1 and result.images[0].clip_score is not None
            assert any(re.search(case.expect["notice"], notice) for notice in result.notices), result.notices

    elif case.kind == "upload":
        name = case.value["file"]
        if name is None:
            with pytest.raises(InputError, match=case.error):
                studio.classify([], GOOD_LABELS)
            return
        if case.error:
            outcome, growth = peak_rss_growth(lambda: load_image(files[name]))
            assert isinstance(outcome, InputError), f"expected InputError, got {outcome!r}"
            assert re.search(case.error, str(outcome)), str(outcome)
            assert growth < 32 * 2**20, f"refusing {name} took {growth / 2**20:.0f} MiB"
            with pytest.raises(InputError, match=case.error):  # bytes in, same answer
                load_image(files[name].read_bytes(), name=name)
        else:
            image = load_image(files[name])
            assert image.mode == "RGB" and image.size == case.expect["size"]
            assert np.abs(np.subtract(image.getpixel((5, 5)), case.expect["pixel"])).max() <= 8
            result = studio.classify([image], GOOD_LABELS)
            assert sum(p.prob for p in result.images[0].predictions) == pytest.approx(1, abs=1e-5)

    elif case.kind == "labels":
        labels, template = labels_params(case)
        with pytest.raises(InputError, match=case.error):
            parse_labels(labels) if "labels" in case.value else check_template(template)
        good = load_image(files["good.png"])
        with pytest.raises(InputError, match=case.error):
            studio.classify([good], labels, template)

    elif case.kind == "texts":
        with pytest.raises(InputError, match=case.error):
            studio.similarity([load_image(files["good.png"])], case.value["texts"])

    elif case.kind == "rank":
        pixels = np.full((64, 64, 3), case.value["pixels"])
        problem = check_output(pixels)
        assert problem is not None and problem.startswith(case.expect["problem"])
        clean = (np.nan_to_num(pixels, nan=0.0).clip(0, 1) * 255).astype(np.uint8)
        good = load_image(files["good.png"])
        candidates = [Candidate(10, Image.fromarray(clean), problem), Candidate(11, good)]
        ranked = rank_candidates(candidates, "a red circle", [("clip", studio.scorer())])
        assert [item.seed for item in ranked] == [11, 10]  # the broken one is listed last
        best, broken = ranked
        assert best.clip_score is not None and "not ranked" not in best.caption()
        assert broken.scores == {} and broken.clip_score is None and broken.problem == problem
        assert broken.rank == 2 and broken.caption().startswith("#2 · not ranked: " + case.expect["problem"])


# -- layer 2: the CLI, in process ----------------------------------------------------------------------

def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) as `python -m clipdemo` would end: argparse refusals exit via SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def cli_argv(case: Case, files, tmp_path, tiny_sd_dir, tiny_clip_dir) -> list[str]:
    clip = ["--clip-model", str(tiny_clip_dir), "--dtype", "fp32"]
    if case.kind == "generate":
        p = generate_params(case)
        return ["generate", p["prompt"], "-n", str(p["n"]), "--steps", str(p["steps"]), "--guidance",
                str(p["guidance"]), "--width", str(p["width"]), "--height", str(p["height"]), "--seed", str(p["seed"]),
                "--out", str(tmp_path / "out"), "--sd-model", str(tiny_sd_dir), *clip]
    if case.kind == "upload":
        images = [] if case.value["file"] is None else [str(files[case.value["file"]])]
        return ["classify", *images, "--labels", GOOD_LABELS, *clip]
    if case.kind == "labels":
        labels, template = labels_params(case)
        return ["classify", str(files["good.png"]), "--labels", labels, "--template", template, *clip]
    if case.kind == "texts":
        return ["similarity", str(files["good.png"]), "--texts", *case.value["texts"], *clip]
    raise AssertionError(case.kind)


@pytest.mark.parametrize("case", params("cli"))
def test_cli(case: Case, files, tmp_path, tiny_sd_dir, tiny_clip_dir, capsys, monkeypatch):
    from clipdemo import loading

    # An empty model cache, so main() loads models as a fresh `python -m clipdemo` process would, and
    # anything loading prints on stderr (progress bars, warnings) is seen here too.
    monkeypatch.setattr(loading, "MODELS", loading.ModelCache())
    argv = cli_argv(case, files, tmp_path, tiny_sd_dir, tiny_clip_dir)
    code, out, err = run_main(argv, capsys)
    assert "Traceback" not in err
    if case.error:
        assert code == 2, (code, err)
        assert err.count("\n") == 1 and err.endswith("\n"), f"expected one line on stderr, got {err!r}"
        assert err.startswith(f"clipdemo {argv[0]}: error: "), err
        assert re.search(case.cli_error or case.error, err), err
        assert out == ""
    elif case.kind == "generate":
        assert code == 0, err
        notes = [line for line in err.splitlines() if line.startswith("note: ")]
        assert any(re.search(case.expect["notice"], line) for line in notes), err
        assert (tmp_path / "out" / "manifest.json").exists()
    else:  # an upload that must work
        assert code == 0, err
        assert out.splitlines()[-1].startswith(str(files[case.value["file"]]) + ": ")


# -- layer 3: a live Gradio server ------------------------------------------------------------------------

def ui_call(client, case: Case, files):
    from gradio_client import handle_file

    if case.kind == "generate":
        p = generate_params(case)
        return client.predict(p["prompt"], "", p["n"], p["steps"], p["guidance"], p["width"], p["height"],
                              str(p["seed"]), "auto", api_name="/generate")
    if case.kind == "upload":
        name = case.value["file"]
        uploads = [] if name is None else [handle_file(str(files[name]))]
        return client.predict(uploads, GOOD_LABELS, DEFAULT_TEMPLATE, 2, "auto", api_name="/classify")
    if case.kind == "labels":
        labels, template = labels_params(case)
        return client.predict([handle_file(str(files["good.png"]))], labels, template, 2, "auto",
                              api_name="/classify")
    if case.kind == "texts":
        return client.predict([handle_file(str(files["good.png"]))], "\n".join(case.value["texts"]), "auto",
                              api_name="/similarity")
    raise AssertionError(case.kind)


def test_ui_endpoints_are_as_documented(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = lambda endpoint: [p["parameter_name"] for p in api[endpoint]["parameters"]]  # noqa: E731
    assert names("/generate") == ["prompt", "negative_prompt", "num_candidates", "steps", "guidance", "width",
                                  "height", "seed", "scorer", "pickscore"]
    assert names("/classify") == ["images", "labels", "template", "top_k", "scorer"]
    assert names("/similarity") == ["images", "texts", "scorer"]


@pytest.mark.parametrize("case", params("ui"))
def test_ui(case: Case, client, files):
    from gradio_client.exceptions import AppError

    if case.error:
        with pytest.raises(AppError) as info:
            ui_call(client, case, files)
        message = str(info.value)
        accepted = [case.error] + ([case.ui_error] if case.ui_error else [])
        assert any(re.search(pattern, message) for pattern in accepted), message
        assert "Traceback" not in message
    elif case.kind == "generate":
        gallery, table, details, archive = ui_call(client, case, files)
        assert len(gallery) == 1 and archive
        assert re.search(case.expect["notice"], details), details
    else:  # an upload that must work
        label, table, _, info = ui_call(client, case, files)
        confidences = [c["confidence"] for c in label["confidences"]]
        assert sum(confidences) == pytest.approx(1, abs=1e-4)
        assert {row[0] for row in table["data"]} == {case.value["file"]}


def test_ui_still_answers_after_bad_input(client, files):
    """Runs after every test_ui case: the server survived them all."""
    from gradio_client import handle_file

    gallery, table, details, _ = client.predict("a red circle", "", 2, 1, 0, 64, 64, "3", "auto",
                                                api_name="/generate")
    assert len(gallery) == 2 and sorted(row[1] for row in table["data"]) == [3, 4]
    label, _, _, _ = client.predict([handle_file(str(files["good.png"]))], "cat, dog", DEFAULT_TEMPLATE, 2, "auto",
                                    api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"cat", "dog"}
