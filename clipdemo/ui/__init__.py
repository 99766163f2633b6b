"""Gradio shell over clipdemo.Studio. Only this package imports gradio."""

from .app import build_app, launch

__all__ = ["build_app", "launch"]
