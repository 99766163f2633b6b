"""The models a studio uses: the registry that loads and shares them, pipeline assembly, the prompt cache."""

from .registry import ModelRegistry, with_demo_fallback

__all__ = ["ModelRegistry", "with_demo_fallback"]
