"""Faults: a model that will not load, Stop, GPU out-of-memory retry, and a CLI killed mid-run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipdemo import GenerationRequest, ModelLoadError, Studio, resolve_settings
from clipdemo.errors import Cancelled

ROOT = Path(__file__).resolve().parent.parent


def make(tiny_sd_dir, tiny_clip_dir, **kwargs):
    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                   pick_model="none", moderation="off", decoder="full", **kwargs))


def test_a_model_that_fails_disables_only_its_tab(tiny_clip_dir, tmp_path):
    studio = Studio(resolve_settings(sd_model=str(tmp_path / "no-sd"), clip_model=str(tiny_clip_dir), dtype="fp32"))
    with pytest.raises(ModelLoadError, match="no-sd"):
        studio.generate(GenerationRequest("a cat", n=1, steps=1, width=64, height=64, seed=1))
    image = Image.new("RGB", (32, 32), "red")
    assert len(studio.classify([image], "cat, dog").images) == 1  # the other tabs still work
    assert studio.similarity([image], ["a cat"]).cosine.shape == (1, 1)


def test_stop_ends_the_generation_early(tiny_sd_dir, tiny_clip_dir):
    studio = make(tiny_sd_dir, tiny_clip_dir)
    steps = []
    with pytest.raises(Cancelled):
        studio.generate(GenerationRequest("a cat", n=1, steps=50, width=64, height=64, seed=1),
                        progress=lambda step, total: steps.append(step), should_stop=lambda: len(steps) >= 3)
    assert len(steps) == 3  # it stopped at the next step, not after all 50


def test_gpu_out_of_memory_retries_with_fewer_candidates(tiny_sd_dir, tiny_clip_dir):
    """A real pipeline run; the fault is injected at a step callback whenever the batch is larger than 2."""
    studio = make(tiny_sd_dir, tiny_clip_dir)
    batch_sizes = []

    def progress(step, total):
        if batch_sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    pipe = studio.pipeline()
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    try:
        result = studio.generate(GenerationRequest("a cat", n=8, steps=1, width=64, height=64, seed=40), progress)
    finally:
        hook.remove()
    assert batch_sizes[:3] == [8, 4, 2]
    assert [i.seed for i in sorted(result.images, key=lambda i: i.seed)] == [40, 41]
    assert any("ran out of memory for 8 candidates, so 2" in n for n in result.notices)


def test_killing_the_cli_mid_run_loses_no_file_already_written(tiny_sd_dir, tiny_clip_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "clipdemo", "generate", "a red circle", "--out", str(tmp_path), "--width", "64",
            "--height", "64", "--sd-model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir), "--dtype", "fp32",
            "--moderation", "off", "--pick-model", "none", "--decoder", "full"]
    first = subprocess.run(base + ["-n", "2", "--seed", "1", "--steps", "1"], env=env, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    victim = subprocess.Popen(base + ["-n", "4", "--seed", "100", "--steps", "100"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Wait until it is denoising (tqdm prints to stderr), then kill it hard.
    deadline = time.monotonic() + 120
    seen = b""
    while time.monotonic() < deadline and b"%|" not in seen:
        seen += victim.stderr.read1(4096) if hasattr(victim.stderr, "read1") else victim.stderr.read(64)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing written earlier was touched
    manifest = json.loads(after["manifest.json"])
    for entry in manifest["images"]:
        Image.open(tmp_path / entry["file"]).verify()
    assert not [name for name in after if name.endswith(".partial") and name not in before]


def test_concurrent_generate_calls_share_one_model_load(tiny_sd_dir, tiny_clip_dir):
    import threading

    studio = make(tiny_sd_dir, tiny_clip_dir)
    results, errors = [], []

    def work(seed):
        try:
            results.append(studio.generate(GenerationRequest("a cat", n=1, steps=1, width=64, height=64, seed=seed)))
        except Exception as exc:  # recorded, then asserted empty
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4
    assert len({id(studio.pipeline())}) == 1
