"""clipdemo: generate images with Stable Diffusion, rank them with CLIP, and explore CLIP zero-shot."""

import os as _os

# No Hub telemetry or gradio analytics unless the operator turns them back on.
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .version import __version__  # noqa: E402

from .config import Settings, resolve_settings  # noqa: E402
from .errors import InputError, ModelLoadError  # noqa: E402
from .generation import GenerationRequest  # noqa: E402
from .studio import Studio  # noqa: E402

__all__ = ["GenerationRequest", "InputError", "ModelLoadError", "Settings", "Studio", "resolve_settings", "__version__"]
