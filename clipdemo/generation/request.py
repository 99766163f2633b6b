"""What one generate asks for, and its validation: bad input fails here, before any model loads."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..text import check_prompt

MAX_CANDIDATES = 8
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
MIN_SIZE, MAX_SIZE = 64, 2048
PAGE_MAX_SIZE = 1024  # the page's sliders and its links stop here; the CLI and API go to MAX_SIZE
MAX_SEED = 2**32 - 1 - MAX_CANDIDATES

# ZeroGPU: a call asks for the GPU time it may need; the Space's platform caps a request at two minutes.
GPU_SECONDS_MIN, GPU_SECONDS_MAX = 20, 120
GPU_SECONDS_FIXED = 15.0  # moving the models in, encoding the prompt, scoring, writing the PNGs
GPU_SECONDS_PER_STEP_MEGAPIXEL = 2.0  # one UNet step of one image, per million pixels, with room to spare
GPU_SECONDS_PER_DECODE_MEGAPIXEL = 2.0

# Called as progress(step, total_steps) after each denoising step.
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationDefaults:
    """What the Generate form and the CLI start from (a preset may set its own); sd-turbo's recommended settings."""

    n: int = 4
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512


SD_TURBO = GenerationDefaults()


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    n: int = SD_TURBO.n
    steps: int = SD_TURBO.steps
    guidance: float = SD_TURBO.guidance
    width: int = SD_TURBO.width
    height: int = SD_TURBO.height
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
        return replace(self, prompt=prompt, negative_prompt=(self.negative_prompt or "").strip(), n=n, steps=steps,
                       guidance=guidance, width=int(self.width), height=int(self.height), seed=seed)


def _as_int(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The {name} must be a whole number (got {value!r}).") from None
    if not np.isfinite(number) or number != int(number):
        raise InputError(f"The {name} must be a whole number (got {value!r}).")
    return int(number)


def gpu_seconds(n: Any, steps: Any, width: Any, height: Any) -> int:
    """The GPU time a ZeroGPU call asks for: grows with candidates, steps and pixels, within the platform's range.

    Takes the raw inputs of a form (invalid ones count as the largest allowed); validation happens inside.
    """
    def number(value: Any, largest: int) -> float:
        try:
            return min(max(float(value), 1.0), largest)
        except (TypeError, ValueError):
            return largest

    n, steps = number(n, MAX_CANDIDATES), number(steps, MAX_STEPS)
    megapixels = number(width, MAX_SIZE) * number(height, MAX_SIZE) / 1e6
    work = n * megapixels * (steps * GPU_SECONDS_PER_STEP_MEGAPIXEL + GPU_SECONDS_PER_DECODE_MEGAPIXEL)
    return int(min(max(GPU_SECONDS_FIXED + work, GPU_SECONDS_MIN), GPU_SECONDS_MAX))
