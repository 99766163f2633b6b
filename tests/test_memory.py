"""glibc malloc settings: the server's arena cap, and reuse of freed big blocks (glibc only)."""

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from clipdemo.speedups.memory import limit_malloc_arenas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                                reason="glibc's mallopt is Linux-only")


def run_isolated(code: str, env_extra: dict | None = None) -> str:
    """In a fresh interpreter: mallopt changes the whole process, so the test process is left alone."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | (env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=Path(__file__).resolve().parent.parent).stdout


def test_arena_cap_is_applied_on_glibc():
    assert run_isolated("from clipdemo.speedups.memory import limit_malloc_arenas; print(limit_malloc_arenas())").strip() == "True"


def test_a_user_setting_wins(monkeypatch):
    out = run_isolated("from clipdemo.speedups.memory import limit_malloc_arenas; print(limit_malloc_arenas())",
                       {"MALLOC_ARENA_MAX": "4"})
    assert out.strip() == "False"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


# Allocates and frees a 64 MB tensor (the size of one 512² decoder activation) over and over, and prints
# the page faults and the RSS growth of the last ten rounds. With glibc's defaults every allocation maps
# fresh pages, which fault again; with the kept buffers the heap settles and then reuses its blocks.
FAULTS = """
import resource, sys, psutil, torch
from clipdemo.speedups.memory import keep_freed_buffers
applied = keep_freed_buffers() if MODE == "keep" else None
for _ in range(20):  # glibc's bins settle in a few rounds
    torch.ones(16 * 2**20)
faults, rss = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, psutil.Process().memory_info().rss
for _ in range(10):
    torch.ones(16 * 2**20)
faults, rss = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, psutil.Process().memory_info().rss - rss
print(applied, faults, rss // 2**20)
"""


def run_faults(mode: str, env_extra: dict | None = None) -> tuple[str, int, int]:
    applied, faults, growth_mb = run_isolated(FAULTS.replace("MODE", repr(mode)), env_extra).split()
    return applied, int(faults), int(growth_mb)


def test_kept_buffers_are_reused_without_new_page_faults():
    _, default_faults, _ = run_faults("default")
    applied, kept_faults, growth_mb = run_faults("keep")
    assert applied == "True"
    pages = 64 * 2**20 // 4096
    assert default_faults >= 5 * pages  # glibc's default really refaults (else this test shows nothing)
    assert kept_faults <= pages // 4  # the blocks are reused
    assert growth_mb <= 16  # and memory stays level


def test_a_user_threshold_wins():
    applied, _, _ = run_faults("keep", {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert applied == "False"
