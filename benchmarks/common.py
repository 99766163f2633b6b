"""Helpers shared by the benchmarks: timing, machine facts, result files."""

from __future__ import annotations

import atexit
import gc
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import psutil
import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def scratch_folder(prefix: str) -> Path:
    """A temp folder for the saved models, removed when the process exits, failed runs included: the
    sd-turbo architecture alone takes 5.4 GB, and left behind it filled this machine's disk."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(fns: dict[str, Callable[[], object]], rounds: int = 3, warmup: int = 1,
                      prepare: dict[str, Callable[[], object]] | None = None) -> dict[str, float]:
    """Median wall time of each fn, timed in alternating rounds (order reversed every other round).

    On a shared machine whose speed drifts by ~10% over minutes, timing A's repeats then B's would put
    the drift into the ratio; alternating slows both alike. `prepare[name]`, if given, runs untimed
    before each of that fn's calls (e.g. switching a model to that contender's setting).
    """
    prepare = prepare or {}

    def ready(name: str) -> None:
        if name in prepare:
            prepare[name]()

    for name, fn in fns.items():
        for _ in range(warmup):
            ready(name)
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(rounds):
        for name in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            ready(name)
            gc.collect()
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def machine() -> dict:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from clipdemo.loading import cpu_has_native_bf16

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "native_bf16": cpu_has_native_bf16(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def library_versions() -> dict:
    names = ["torch", "diffusers", "transformers", "accelerate", "gradio", "numpy", "pillow"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # gradio is not needed to benchmark, e.g. on a bare GPU machine
            found[name] = None
    return found


def gemm_peak_gflops(dtype: torch.dtype, device: str = "cpu", size: int = 2048, repeats: int = 5) -> float:
    """Achieved GFLOP/s of one square matmul: this machine's practical peak in that dtype."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)

    def run():
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / median_time(run, repeats=repeats) / 1e9


def write_result(name: str, data: dict, folder: Path | None = None) -> Path:
    folder = folder or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    suffix = data.get("figures", {}).get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    path = folder / f"{name}-{suffix}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}\n" + "-" * (width + 30))
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
