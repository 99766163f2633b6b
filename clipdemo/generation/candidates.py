"""The seeded candidates of one request: one pipeline call for all N, halved on GPU out-of-memory.

Candidate i uses seed + i with its own torch.Generator, so any single image can be regenerated alone
with n=1 and that seed. All N go through the UNet as one batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from PIL import Image

from ..errors import Cancelled, InputError
from ..loading import QUIET
from .request import GenerationRequest, ProgressFn

if TYPE_CHECKING:
    from ..models.prompts import PromptCache

@dataclass
class Candidate:
    seed: int
    image: Image.Image
    problem: str | None = None  # e.g. "the model produced NaN values"; such images are not ranked
    pixels: torch.Tensor | None = None  # the same 8-bit image (3, H, W) on the generator's device, for scoring


def check_output(pixels: np.ndarray | torch.Tensor) -> str | None:
    """Say what is wrong with a generated image (values in [0, 1]), or None when it looks like a real picture."""
    x = torch.as_tensor(pixels)
    if not torch.isfinite(x).all():
        return "the model produced NaN values (try fp32 with --dtype fp32)"
    if x.max() <= 1.0 / 255:
        return "the model produced an all-black image"
    return None


def generate_candidates(
    pipe: Any,
    request: GenerationRequest,
    progress: ProgressFn | None = None,
    prompt_embeddings: tuple | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Candidate]:
    """Run the pipeline once for all N candidates. `request` must already be validated.

    `prompt_embeddings` is (prompt_embeds, negative_prompt_embeds) from pipe.encode_prompt, when the
    caller caches them; otherwise the pipeline encodes the prompt itself.
    """
    device = pipe.device if pipe.device.type != "mps" else torch.device("cpu")
    seeds = [request.seed + i for i in range(request.n)]
    generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]

    def on_step_end(pipeline, step, timestep, callback_kwargs):
        if should_stop is not None and should_stop():
            raise Cancelled("Generation stopped.")
        if progress is not None:
            progress(step + 1, request.steps)
        return callback_kwargs

    if QUIET.is_set():  # a pipeline loaded before the server went quiet keeps its own bar setting
        pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        if prompt_embeddings is None:
            text = dict(prompt=request.prompt, negative_prompt=request.negative_prompt or None)
        else:
            text = dict(prompt_embeds=prompt_embeddings[0], negative_prompt_embeds=prompt_embeddings[1])
        output = pipe(
            **text,
            num_images_per_prompt=request.n,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            width=request.width,
            height=request.height,
            generator=generators,
            output_type="pt",  # stays on the device: quantised and scored there
            callback_on_step_end=on_step_end,
        )
    return to_candidates(seeds, output.images)


def to_candidates(seeds: list[int], images: torch.Tensor) -> list[Candidate]:
    """The 8-bit images of a batch (N, 3, H, W) in [0, 1], quantised on its device: exactly the pixels each PNG holds.

    NaNs become black and are reported, not raised.
    """
    x = images.float()
    pixels = (x.nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    host = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return [Candidate(seed, Image.fromarray(host[i]), check_output(x[i]), pixels[i]) for i, seed in enumerate(seeds)]


def generate_within_memory(pipe: Any, request: GenerationRequest, lock: threading.Lock, prompts: PromptCache,
                           progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                           ) -> tuple[list[Candidate], str | None]:
    """Generate under the pipeline's lock; on GPU out-of-memory, retry with half the candidates until one fits.

    Returns (candidates, notice or None). The seeds stay seed, seed+1, ... so the kept images are the
    same ones a full run would have made.
    """
    n = request.n
    while True:
        attempt = replace(request, n=n)
        try:
            with lock:
                candidates = generate_candidates(pipe, attempt, progress, prompts.embeddings(pipe, attempt), should_stop)
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if n == 1:
                raise InputError("The GPU ran out of memory even for one image: try a smaller size.") from None
            n = max(1, n // 2)
            continue
        if n < request.n:
            return candidates, f"The GPU ran out of memory for {request.n} candidates, so {n} were generated."
        return candidates, None
