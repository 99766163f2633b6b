"""Evaluation throughput: clipdemo's batched evaluator against transformers' zero-shot pipeline.

Both use the same random-weight CLIP ViT-B/32 and 100 labels over 256 images. The pipeline is called
once per image, as its documentation shows; it encodes the labels on every call. On a GPU both run in fp16.

    python -m benchmarks eval [--device auto|cpu|cuda] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .common import gemm_peak_gflops, library_versions, machine, median_time, print_table, scratch_folder, write_result
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


def vision_tower_per_image(scorer, batch: int) -> tuple[float, int]:
    """(seconds, FLOPs) of the image tower per image, at the evaluator's batch size."""
    from torch.utils.flop_counter import FlopCounterMode

    pixels = torch.randn(batch, 3, 224, 224, device=scorer.device, dtype=scorer.dtype)

    def forward():
        with torch.inference_mode():
            scorer.model.get_image_features(pixel_values=pixels)
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        forward()
    return median_time(forward, repeats=2) / batch, counter.get_total_flops() // batch


def run(device: str) -> dict:
    from transformers import pipeline

    from clipdemo import Studio, resolve_settings
    from clipdemo.evaluation import load_image_set

    tmp = scratch_folder("clipdemo-evalbench-")
    clip_dir = save_clip_b32_architecture(tmp / "clip")
    paths = write_images(tmp / "images", N_IMAGES)
    labels = [f"class{i:03d}" for i in range(N_LABELS)]

    dtype = "fp16" if device == "cuda" else "fp32"
    studio = Studio(resolve_settings(clip_model=str(clip_dir), dtype=dtype, device=device), allow_fallback=False)
    image_set = load_image_set(tmp / "images")
    studio.evaluate(load_image_set(tmp / "images", limit=8), "single", batch_size=8)  # warm-up, not timed
    studio.scorer()._text_cache.clear()  # ours pays for its text encoding inside the timed run
    start = time.perf_counter()
    workers = max(1, min(4, (os.cpu_count() or 2) - 1))  # image decoding runs in DataLoader workers
    result = studio.evaluate(image_set, "single", batch_size=64, num_workers=workers)
    ours = time.perf_counter() - start

    classifier = pipeline("zero-shot-image-classification", model=str(clip_dir), device=device,
                          dtype=torch.float16 if device == "cuda" else torch.float32)
    classifier(Image.open(paths[0]), candidate_labels=labels[:4])  # warm-up
    start = time.perf_counter()
    reference = [classifier(Image.open(p).convert("RGB"), candidate_labels=labels,
                            hypothesis_template="a photo of a {}.") for p in paths]
    theirs = time.perf_counter() - start
    agree = np.mean([ref[0]["label"] == labels[pred] for ref, pred in zip(reference, result.predictions)])

    # The ceiling: ours cannot beat the vision tower's own time, which the pipeline pays as well.
    vision_s, vision_flops = vision_tower_per_image(studio.scorer(), batch=64)
    peak = gemm_peak_gflops(torch.float16 if device == "cuda" else torch.float32, device,
                            size=8192 if device == "cuda" else 2048)

    figures = {"device": device, "dtype": dtype, "dataloader_workers": workers, "n_images": N_IMAGES, "n_labels": N_LABELS, "clipdemo_s": ours, "pipeline_s": theirs,
               "clipdemo_images_per_s": N_IMAGES / ours, "pipeline_images_per_s": N_IMAGES / theirs,
               "top1_agreement": float(agree), "vision_s_per_image": vision_s,
               "vision_gflop_per_image": vision_flops / 1e9, "gemm_peak_gflops": peak}
    summary = {"speedup_vs_transformers_pipeline": theirs / ours,
               "vision_tower_peak_share": vision_flops / vision_s / 1e9 / peak,
               "speedup_ceiling_vision_bound": theirs / (N_IMAGES * vision_s)}
    return {"benchmark": "evaluation", "machine": machine(), "versions": library_versions(),
            "figures": figures, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks eval", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON (default benchmarks/results)")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    data = run(device)
    path = write_result("evaluation", data, args.out)
    f, s = data["figures"], data["summary"]
    where = data["machine"]["cuda"] if f["device"] == "cuda" else data["machine"]["cpu"]
    print_table(f"evaluation benchmark ({where}, {f['dtype']})", [
        ("images / s, clipdemo evaluate (batched)", f"{f['clipdemo_images_per_s']:.1f}"),
        ("images / s, transformers pipeline per image", f"{f['pipeline_images_per_s']:.2f}"),
        ("speed-up", f"{s['speedup_vs_transformers_pipeline']:.1f}x  (goal 20x)"),
        ("top-1 agreement between the two", f"{f['top1_agreement']:.3f}"),
        ("vision tower share of matmul peak", f"{s['vision_tower_peak_share']:.2f}"),
        ("ceiling: pipeline time / vision tower time", f"{s['speedup_ceiling_vision_bound']:.1f}x"),
    ])
    print(f"\nwrote {path}")
    print(json.dumps(s, indent=2))
