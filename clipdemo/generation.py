"""Generate N candidate images for one prompt, each reproducible from its own seed.

Candidate i uses seed + i with its own torch.Generator, so any single image can be regenerated alone
with n=1 and that seed. All N go through the UNet as one batch.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .errors import Cancelled, InputError
from .text import check_prompt

MAX_CANDIDATES = 8
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
MIN_SIZE, MAX_SIZE = 64, 2048
MAX_SEED = 2**32 - 1 - MAX_CANDIDATES

# Called as progress(step, total_steps) after each denoising step.
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    n: int = 4
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512
    seed: int | None = None  # None: pick one at random

    def validated(self) -> "GenerationRequest":
        """The same request with the seed filled in, or InputError naming the first bad field."""
        prompt = check_prompt(self.prompt)
        n, steps = _as_int(self.n, "number of candidates"), _as_int(self.steps, "steps")
        if not 1 <= n <= MAX_CANDIDATES:
            raise InputError(f"Number of candidates must be between 1 and {MAX_CANDIDATES} (got {n}).")
        if not 1 <= steps <= MAX_STEPS:
            raise InputError(f"Steps must be between 1 and {MAX_STEPS} (got {steps}).")
        try:
            guidance = float(self.guidance)
        except (TypeError, ValueError):
            raise InputError(f"Guidance must be a number (got {self.guidance!r}).") from None
        if not 0.0 <= guidance <= MAX_GUIDANCE:
            raise InputError(f"Guidance must be between 0 and {MAX_GUIDANCE:g} (got {guidance:g}).")
        for name, value in (("Width", self.width), ("Height", self.height)):
            value = _as_int(value, name.lower())
            if not MIN_SIZE <= value <= MAX_SIZE:
                raise InputError(f"{name} must be between {MIN_SIZE} and {MAX_SIZE} pixels (got {value}).")
            if value % 8:
                raise InputError(f"{name} must be a multiple of 8 (got {value}; try {value // 8 * 8}).")
        seed = secrets.randbelow(MAX_SEED) if self.seed is None else _as_int(self.seed, "seed")
        if not 0 <= seed <= MAX_SEED:
            raise InputError(f"Seed must be between 0 and {MAX_SEED} (got {seed}).")
        return GenerationRequest(
            prompt, (self.negative_prompt or "").strip(), n, steps, guidance,
            int(self.width), int(self.height), seed,
        )


def _as_int(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The {name} must be a whole number (got {value!r}).") from None
    if not np.isfinite(number) or number != int(number):
        raise InputError(f"The {name} must be a whole number (got {value!r}).")
    return int(number)


@dataclass
class Candidate:
    seed: int
    image: Image.Image
    problem: str | None = None  # e.g. "the model produced NaN values"; such images are not ranked


def check_output(pixels: np.ndarray) -> str | None:
    """Say what is wrong with a generated image, or None when it looks like a real picture."""
    if not np.isfinite(pixels).all():
        return "the model produced NaN values (try fp32 with --dtype fp32)"
    if pixels.max() <= 1.0 / 255:
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
            output_type="np",
            callback_on_step_end=on_step_end,
        )
    candidates = []
    for seed, pixels in zip(seeds, output.images):
        problem = check_output(pixels)
        clean = np.nan_to_num(pixels, nan=0.0).clip(0, 1)
        image = Image.fromarray((clean * 255).round().astype(np.uint8))
        candidates.append(Candidate(seed=seed, image=image, problem=problem))
    return candidates
