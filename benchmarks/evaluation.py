"""Evaluation throughput: clipdemo's batched evaluator against transformers' zero-shot pipeline.

Both use the same random-weight CLIP ViT-B/32 and 100 labels over 256 images. The pipeline is called
once per image, as its documentation shows; it encodes the labels on every call.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .common import library_versions, machine, print_table, write_result
from .models import save_clip_b32_architecture

N_IMAGES = 256
N_LABELS = 100


def write_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        cls = folder / f"class{i % N_LABELS:03d}"
        cls.mkdir(parents=True, exist_ok=True)
        path = cls / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def run() -> dict:
    from transformers import pipeline

    from clipdemo import Studio, resolve_settings
    from clipdemo.datasets import load_image_set

    tmp = Path(tempfile.mkdtemp(prefix="clipdemo-evalbench-"))
    clip_dir = save_clip_b32_architecture(tmp / "clip")
    paths = write_images(tmp / "images", N_IMAGES)
    labels = [f"class{i:03d}" for i in range(N_LABELS)]

    studio = Studio(resolve_settings(clip_model=str(clip_dir), dtype="fp32"), allow_fallback=False)
    image_set = load_image_set(tmp / "images")
    studio.evaluate(load_image_set(tmp / "images", limit=8), "single", batch_size=8)  # warm-up, not timed
    studio.scorer()._text_cache.clear()  # ours pays for its text encoding inside the timed run
    start = time.perf_counter()
    result = studio.evaluate(image_set, "single", batch_size=64, num_workers=1)
    ours = time.perf_counter() - start

    classifier = pipeline("zero-shot-image-classification", model=str(clip_dir), device="cpu")
    classifier(Image.open(paths[0]), candidate_labels=labels[:4])  # warm-up
    start = time.perf_counter()
    reference = [classifier(Image.open(p).convert("RGB"), candidate_labels=labels,
                            hypothesis_template="a photo of a {}.") for p in paths]
    theirs = time.perf_counter() - start
    agree = np.mean([ref[0]["label"] == labels[pred] for ref, pred in zip(reference, result.predictions)])

    figures = {"n_images": N_IMAGES, "n_labels": N_LABELS, "clipdemo_s": ours, "pipeline_s": theirs,
               "clipdemo_images_per_s": N_IMAGES / ours, "pipeline_images_per_s": N_IMAGES / theirs,
               "top1_agreement": float(agree)}
    summary = {"speedup_vs_transformers_pipeline": theirs / ours}
    return {"benchmark": "evaluation", "machine": machine(), "versions": library_versions(),
            "figures": figures, "summary": summary}


def main() -> None:
    data = run()
    path = write_result("evaluation", data)
    f, s = data["figures"], data["summary"]
    print_table(f"evaluation benchmark ({data['machine']['cpu']})", [
        ("images / s, clipdemo evaluate (batched)", f"{f['clipdemo_images_per_s']:.1f}"),
        ("images / s, transformers pipeline per image", f"{f['pipeline_images_per_s']:.2f}"),
        ("speed-up", f"{s['speedup_vs_transformers_pipeline']:.1f}x  (goal 20x)"),
        ("top-1 agreement between the two", f"{f['top1_agreement']:.3f}"),
    ])
    print(f"\nwrote {path}")
    print(json.dumps(s, indent=2))
