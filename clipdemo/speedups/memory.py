"""glibc malloc settings: a server's resident memory kept level, and big tensor buffers reused.

glibc gives every thread that allocates its own malloc arena (up to 8 per core). A web server runs each
request on a pool thread, so freed tensor buffers end up spread over many arenas and the process's RSS
keeps creeping up under load. Capping the arenas makes threads share them, and the server's RSS levels off
(README, Under load).

glibc also maps every block over 32 MB afresh and unmaps it on free. A 512² decode makes dozens of
64 MB activations, so each one faults in fresh zeroed pages on every call, a large share of the decode's
time on the CPU. Keeping freed blocks for reuse removes that (benchmarks/README.md has the figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from glibc's malloc.h
SERVER_ARENAS = 2


# mallopt takes a C int: the largest threshold it accepts, far above any single activation.
KEEP_BLOCKS_BELOW = 2**31 - 1


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Apply glibc mallopt settings; False where that is not possible (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return all(libc.mallopt(option, int(value)) for option, value in settings)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads started from now on. False where that is not possible.

    A MALLOC_ARENA_MAX the user set in the environment wins: glibc has applied it already.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    return _mallopt((M_ARENA_MAX, arenas))


def keep_freed_buffers() -> bool:
    """Let glibc keep freed big blocks for reuse instead of unmapping them. False where not possible.

    The process then holds on to its peak memory between calls (it would need it again on the next
    one) instead of returning it to the OS. Blocks allocated by other threads than the main one
    still come from their own arenas, which map blocks over 64 MB directly. MALLOC_MMAP_THRESHOLD_ or
    MALLOC_TRIM_THRESHOLD_ set in the environment win (MALLOC_TRIM_THRESHOLD_=131072 restores glibc's
    behaviour).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    return _mallopt((M_MMAP_THRESHOLD, KEEP_BLOCKS_BELOW), (M_TRIM_THRESHOLD, KEEP_BLOCKS_BELOW))
