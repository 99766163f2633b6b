"""Gradio shell over clipdemo.Studio. Only this package imports gradio."""

import os

# No usage analytics or Hub telemetry leave this process unless the operator turns them back on.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Gradio keeps a record of each request for its monitoring page, 10,000 by default: a server that runs for
# weeks keeps the last thousand.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

from .app import build_app, launch  # noqa: E402

__all__ = ["build_app", "launch"]
