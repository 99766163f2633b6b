"""The malloc arena cap the server sets at launch (glibc only)."""

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from clipdemo.memory import limit_malloc_arenas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                                reason="glibc's mallopt is Linux-only")


def run_isolated(code: str, env_extra: dict | None = None) -> str:
    """In a fresh interpreter: mallopt changes the whole process, so the test process is left alone."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=Path(__file__).resolve().parent.parent).stdout


def test_arena_cap_is_applied_on_glibc():
    assert run_isolated("from clipdemo.memory import limit_malloc_arenas; print(limit_malloc_arenas())").strip() == "True"


def test_a_user_setting_wins(monkeypatch):
    out = run_isolated("from clipdemo.memory import limit_malloc_arenas; print(limit_malloc_arenas())",
                       {"MALLOC_ARENA_MAX": "4"})
    assert out.strip() == "False"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
