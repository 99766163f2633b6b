"""Command-line shell over clipdemo.Studio: `python -m clipdemo {generate,classify,similarity,serve}`."""

from .main import main

__all__ = ["main"]
