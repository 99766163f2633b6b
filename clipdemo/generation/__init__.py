"""Generate N candidate images for one prompt, each reproducible from its own seed.

request: what a generate asks for; candidates: the seeded batch through the pipeline (assembled by
`clipdemo.models.pipeline`); translate: zh→en prompts; run: one whole generate, step by step (imported on its own, as
`clipdemo.generation.run`, since it draws on scoring and moderation too).
"""

from .candidates import Candidate, check_output, generate_candidates, generate_within_memory
from .request import (MAX_CANDIDATES, MAX_GUIDANCE, MAX_SEED, MAX_SIZE, MAX_STEPS, MIN_SIZE, PAGE_MAX_SIZE,
                      GenerationRequest, ProgressFn, gpu_seconds)

__all__ = ["Candidate", "GenerationRequest", "MAX_CANDIDATES", "MAX_GUIDANCE", "MAX_SEED", "MAX_SIZE", "MAX_STEPS",
           "MIN_SIZE", "PAGE_MAX_SIZE", "ProgressFn", "check_output", "generate_candidates", "generate_within_memory",
           "gpu_seconds"]
