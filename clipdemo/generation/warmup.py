"""A compiled UNet is slow on its first call: the server makes that call once at start, not a visitor."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..models.pipeline import compile_enabled
from .request import GenerationRequest

if TYPE_CHECKING:
    from ..models import ModelRegistry


@dataclass
class WarmUp:
    state: str = "idle"  # idle | running | done | failed
    line: str = ""  # what the page shows while it runs, and how it ended


def start_warm_up(models: ModelRegistry, status: WarmUp) -> threading.Thread | None:
    """With compile on, one generate at the preset's defaults in the background; None when there is nothing to do."""
    if not compile_enabled(models.settings, models.device) or status.state != "idle":
        return None
    thread = threading.Thread(target=warm_up, args=(models, status), name="warm-up", daemon=True)
    thread.start()
    return thread


def warm_up(models: ModelRegistry, status: WarmUp) -> None:
    """Compile for the page's default size and number of candidates; a failure is shown, never raised."""
    from .run import generate

    d = models.settings.defaults
    status.state, status.line = "running", (f"Warming up: compiling the UNet for {d.width}×{d.height}, "
                                            f"{d.n} candidates (once, at start); a click now waits for it.")
    start = time.monotonic()
    try:
        models.await_models("a photo")  # a first start downloads them first
        generate(models, GenerationRequest("a photo", "", d.n, d.steps, d.guidance, d.width, d.height, 0))
    except Exception as exc:  # the server runs on uncompiled speed rather than dying
        status.state, status.line = "failed", f"Warm-up failed ({type(exc).__name__}: {exc}); the first click compiles."
        return
    status.state, status.line = "done", f"Warmed up in {time.monotonic() - start:.0f} s."
