"""Index and search: clipdemo's batched, incremental index against embedding one image at a time, and exact
search over 10^5 and 10^6 embeddings against a full sort.

The CLIP is the default's architecture (ViT-B/32, random weights) in the dtype `--dtype auto` picks here,
with fp32 beside it. Images are 320x240 PNGs written for the run.

    python -m benchmarks retrieval [--images 256] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .common import interleaved_times, library_versions, machine, median_time, print_table, scratch_folder, write_result
from .models import save_clip_b32_architecture

SEARCH_SIZES = (100_000, 1_000_000)
DIM = 512  # ViT-B/32's embedding size


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"{i:05d}.png")
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def indexing(clip_dir: Path, images: Path, paths: list[Path], tmp: Path, dtype: str) -> dict:
    """Seconds to index the folder: one image at a time (the baseline), then clipdemo's index and its options."""
    from clipdemo import Studio, resolve_settings
    from clipdemo.images import load_image

    studio = Studio(resolve_settings(clip_model=str(clip_dir), dtype=dtype), allow_fallback=False)
    scorer = studio.scorer()
    scorer.embed_images([load_image(paths[0])])  # warm-up

    def one_at_a_time():
        return [scorer.embed_images([load_image(p)]) for p in paths]

    runs = {"workers": 0}

    def index(workers: int, batch: int = 32):
        def run():
            runs["workers"] += 1
            studio.index(images, tmp / f"index-{dtype}-{runs['workers']}", num_workers=workers, batch_size=batch)
        return run

    times = interleaved_times({"one image at a time": one_at_a_time, "index, 2 workers (CLI default)": index(2),
                               "index, no workers": index(0)}, rounds=2, warmup=0)
    studio.index(images, tmp / f"kept-{dtype}")
    times["index rerun, nothing changed"] = median_time(lambda: studio.index(images, tmp / f"kept-{dtype}"),
                                                        repeats=3, warmup=0)
    return {"dtype": str(scorer.dtype).removeprefix("torch."), "seconds": times,
            "images_per_s": {name: len(paths) / s for name, s in times.items()}}


def searching(tmp: Path) -> dict:
    """Milliseconds per query over n synthetic normalised embeddings: clipdemo's top-k against a full sort."""
    from clipdemo.retrieval.index import FileEntry, ImageIndex, load_index, save_index
    from clipdemo.retrieval.search import nearest

    out = {}
    for n in SEARCH_SIZES:
        generator = torch.Generator().manual_seed(0)
        embeddings = torch.randn(n, DIM, generator=generator)
        embeddings /= embeddings.norm(dim=1, keepdim=True)
        files = [FileEntry(f"{i:07d}.png", 1, 0.0, "0" * 64) for i in range(n)]
        index = ImageIndex(str(tmp), "synthetic", "float32", files, embeddings, embeddings[0].clone())
        query = embeddings[123]

        def full_sort():
            scores = (embeddings.numpy() @ query.numpy())
            return np.argsort(-scores)[:10]

        times = interleaved_times({"full sort (numpy argsort)": full_sort,
                                   "clipdemo nearest (top-k)": lambda: nearest(index, query, 10)}, rounds=5)
        assert nearest(index, query, 10)[0].file == files[123].file
        save_index(index, tmp / f"synthetic-{n}")
        times["load the index from disk"] = median_time(lambda: load_index(tmp / f"synthetic-{n}"), repeats=3)
        out[str(n)] = {"ms": {k: v * 1e3 for k, v in times.items()},
                       "index_mb": (embeddings.numel() * 4) / 2**20}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks retrieval", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON (default benchmarks/results)")
    args = parser.parse_args(argv)

    tmp = scratch_folder("clipdemo-retrievalbench-")
    clip_dir = save_clip_b32_architecture(tmp / "clip")
    paths = write_images(tmp / "images", args.images)
    started = time.perf_counter()
    figures = {"n_images": args.images, "image_size": "320x240", "indexing": {}}
    figures["search"] = searching(tmp)
    print(json.dumps(figures["search"], indent=2), flush=True)
    for dtype in ("auto", "fp32"):
        figures["indexing"][dtype] = indexing(clip_dir, tmp / "images", paths, tmp, dtype)
        print(json.dumps(figures["indexing"][dtype], indent=2), flush=True)
    figures["benchmark_minutes"] = (time.perf_counter() - started) / 60

    summary = {}
    for dtype, f in figures["indexing"].items():
        s = f["seconds"]
        summary[f"index_speedup_vs_one_at_a_time_{dtype}"] = s["one image at a time"] / s["index, 2 workers (CLI default)"]
        summary[f"rerun_share_of_full_index_{dtype}"] = (s["index rerun, nothing changed"]
                                                         / s["index, 2 workers (CLI default)"])
    for n, f in figures["search"].items():
        summary[f"search_speedup_vs_full_sort_{n}"] = f["ms"]["full sort (numpy argsort)"] / f["ms"]["clipdemo nearest (top-k)"]
    data = {"benchmark": "retrieval", "machine": machine(), "versions": library_versions(), "figures": figures,
            "summary": summary}
    path = write_result("retrieval", data, args.out)

    where = data["machine"]["cpu"]
    rows = []
    for dtype, f in figures["indexing"].items():
        base = f["seconds"]["one image at a time"]
        for name, s in f["seconds"].items():
            rows.append((f"index {args.images} images, {f['dtype']}: {name}",
                         f"{f['images_per_s'][name]:.1f} images/s  ({base / s:.2f}x the one-at-a-time loop)"))
    for n, f in figures["search"].items():
        base = f["ms"]["full sort (numpy argsort)"]
        for name, ms in f["ms"].items():
            rows.append((f"search {int(n):,} x {DIM}: {name}", f"{ms:.1f} ms  ({base / ms:.2f}x the full sort)"))
    print_table(f"retrieval benchmark ({where})", rows)
    print(f"\nwrote {path}")
    print(json.dumps(summary, indent=2))
