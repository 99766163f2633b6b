"""Faults: a model that will not load, Stop, GPU out-of-memory retry, and a CLI killed mid-run."""

import json
import os
import re
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


def test_gpu_out_of_memory_even_for_one_image_tells_the_user(tiny_sd_dir, tiny_clip_dir):
    """The real UNet raises out-of-memory at every batch size (a bounded number of times, so a retry loop ends)."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from clipdemo.errors import InputError
    from clipdemo.ui import build_app
    from tests.servers import launch_local

    studio = make(tiny_sd_dir, tiny_clip_dir)
    batch_sizes = []
    message = "The GPU ran out of memory even for one image: try a smaller size."

    def out_of_memory(module, args):
        batch_sizes.append(args[0].shape[0])
        if len(batch_sizes) <= 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    hook = studio.pipeline().unet.register_forward_pre_hook(out_of_memory)
    demo = build_app(studio).queue(max_size=4)
    try:
        with pytest.raises(InputError) as info:
            studio.generate(GenerationRequest("a cat", n=2, steps=1, width=64, height=64, seed=3))
        assert str(info.value) == message and batch_sizes == [2, 1]  # halved once, then gave up
        batch_sizes.clear()
        url = launch_local(demo)
        with pytest.raises(AppError) as shown:  # the page's message box
            Client(url, verbose=False).predict("a cat", "", 2, 1, 0.0, 64, 64, "3", api_name="/generate")
        assert message in str(shown.value) and "Traceback" not in str(shown.value) and batch_sizes == [2, 1]
    finally:
        hook.remove()
        demo.close()


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
    # Wait until a denoising step is done (tqdm prints the step count to stderr), then kill it hard.
    deadline = time.monotonic() + 120
    seen = b""
    while time.monotonic() < deadline and not re.search(rb"\b([1-9]\d?)/100\b", seen):
        chunk = victim.stderr.read1(4096)
        if not chunk:  # it exited before denoising got under way
            break
        seen += chunk
    assert re.search(rb"\b([1-9]\d?)/100\b", seen), seen.decode(errors="replace")[-2000:]
    assert victim.poll() is None, seen.decode(errors="replace")[-2000:]  # still mid-run when the kill lands
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing written earlier was touched
    manifest = json.loads(after["manifest.json"])
    assert [entry["seed"] for entry in manifest["images"]] in ([1, 2], [2, 1])  # the first run's manifest
    for entry in manifest["images"]:
        Image.open(tmp_path / entry["file"]).verify()
    assert not [name for name in after if name.endswith(".partial") and name not in before]


def test_concurrent_first_requests_share_one_load_per_model(tiny_sd_dir, tiny_clip_dir, tmp_path, monkeypatch):
    """Generates on two studios at once, on models no earlier test loaded: one load of each model, CLIP and
    Stable Diffusion loading side by side, and the shared pipeline never runs two calls at once."""
    import shutil
    import threading

    from diffusers import AutoPipelineForText2Image

    model = shutil.copytree(tiny_sd_dir, tmp_path / "fresh-sd")
    clip = shutil.copytree(tiny_clip_dir, tmp_path / "fresh-clip")
    loads = []
    real_load = AutoPipelineForText2Image.from_pretrained

    def counting_load(*args, **kwargs):
        loads.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", counting_load)
    studios = [make(model, clip), make(model, clip)]
    start = threading.Barrier(6)
    results, errors = [], []

    def work(studio, seed):
        try:
            start.wait(timeout=60)
            if seed == -1:  # a first request that needs CLIP alone, racing the pipeline's load
                studio.classify([Image.new("RGB", (32, 32), "red")], "red, blue")
                return
            if seed == -2:  # the pipeline alone, on the studio whose CLIP is not loading
                studio.pipeline()
                return
            results.append(studio.generate(GenerationRequest("a cat", n=2, steps=2, width=64, height=64, seed=seed)))
        except Exception as exc:  # recorded, then asserted empty
            errors.append(exc)

    jobs = [(studios[0], 0), (studios[1], 10), (studios[0], 20), (studios[1], 30), (studios[0], -1), (studios[1], -2)]
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert sorted(min(i.seed for i in r.images) for r in results) == [0, 10, 20, 30]
    assert loads == [str(model)]
    assert studios[0].pipeline() is studios[1].pipeline()  # decoder="full": the loaded pipeline itself
    alone = studios[0].generate(GenerationRequest("a cat", n=2, steps=2, width=64, height=64, seed=10))
    together = next(r for r in results if min(i.seed for i in r.images) == 10)
    by_seed = {i.seed: i.image.tobytes() for i in together.images}
    assert all(by_seed[i.seed] == i.image.tobytes() for i in alone.images)  # no call disturbed another
