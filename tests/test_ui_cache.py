"""Gradio's cached copies of returned images: a file being served is never rewritten under its reader."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

READ_SECONDS = 1.0  # unguarded, about half of the reads in this window came back short


def test_a_cached_image_is_whole_whenever_it_is_read_while_others_return_it(tmp_path):
    from gradio import processing_utils

    from clipdemo.ui import cache

    cache.install()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    path = processing_utils.save_pil_to_cache(image, str(tmp_path), format="png")
    whole = Path(path).read_bytes()
    assert Image.open(path).size == (64, 64)
    stop = time.monotonic() + READ_SECONDS

    def return_it_again() -> set[str]:
        paths = set()
        while time.monotonic() < stop:
            paths.add(processing_utils.save_pil_to_cache(image, str(tmp_path), format="png"))
        return paths

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(return_it_again) for _ in range(4)]
        reads = short = 0
        while time.monotonic() < stop:
            reads += 1
            short += Path(path).read_bytes() != whole
        returned = set().union(*(w.result() for w in writers))
    assert reads > 100 and short == 0, f"{short} of {reads} reads were not the whole file"
    assert returned == {path}  # one content, one file
    assert not [p for p in Path(path).parent.iterdir() if p.name.startswith(".")]  # no staging file left


def test_cached_bytes_are_placed_whole_and_kept(tmp_path):
    from gradio import processing_utils

    from clipdemo.ui import cache

    cache.install()
    first = processing_utils.save_bytes_to_cache(b"RIFF....WAVEdata", "clip", str(tmp_path))
    assert first.endswith("clip.wav") and Path(first).read_bytes() == b"RIFF....WAVEdata"
    barrier = threading.Barrier(8)

    def place() -> str:
        barrier.wait()
        return processing_utils.save_bytes_to_cache(b"same bytes", "report.csv", str(tmp_path))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        paths = {f.result() for f in [pool.submit(place) for _ in range(8)]}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes() == b"same bytes"


def test_the_app_returns_images_through_it(client, tmp_path):
    """Eight visitors classify the same upload at once: each gets the whole image back, from one cached file."""
    from gradio import processing_utils
    from gradio_client import handle_file

    from clipdemo.ui import cache

    assert processing_utils.save_pil_to_cache is cache.save_pil_to_cache  # build_app installed it
    upload = tmp_path / "same.png"
    Image.fromarray(np.random.default_rng(9).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(upload)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.predict([handle_file(str(upload))], "cat, dog",
                                                               api_name="/classify"), range(8)))
    shown = [Image.open(answer[2][0]["image"]) for answer in answers]  # each gallery: [(image, caption)]
    assert all(image.size == (48, 48) for image in shown)
    assert all(np.array_equal(np.asarray(image.convert("RGB")), np.asarray(Image.open(upload))) for image in shown)
