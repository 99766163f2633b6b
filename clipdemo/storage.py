"""The server's disk over weeks: temp folders bounded by age and by total size, and free space kept in reserve.

Runs, reports and unpacked zips live in folders under the temp directory, and Gradio keeps a copy of every file
it serves. `prune` removes the least recently used entries of such folders: any older than the maximum age,
then the oldest until the total fits the size bound, but never one younger than the minimum age (a page that
just showed a run can still download it). `ensure_space` runs before a run is written: below the headroom it
prunes first, and if that is not enough it refuses the work in one sentence instead of failing half way.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import InputError

GB, MB, HOUR = 1 << 30, 1 << 20, 3600.0


class DiskFullError(InputError):
    """There is not enough free space for the work asked; the message says where and how much."""


@dataclass(frozen=True)
class DiskPolicy:
    min_age_s: float = 1 * HOUR  # never prune an entry younger than this
    max_age_s: float = 24 * HOUR  # prune every entry older than this
    max_bytes: int = 2 * GB  # all bounded folders together
    headroom_bytes: int = 300 * MB  # free space kept on the filesystem a run is written to

    def by_age_only(self) -> "DiskPolicy":
        """Everything past the maximum age goes; nothing goes for size."""
        return DiskPolicy(self.max_age_s, self.max_age_s, 1 << 62, self.headroom_bytes)

    @classmethod
    def from_settings(cls, settings) -> "DiskPolicy":
        return cls(min_age_s=settings.runs_min_age_hours * HOUR, max_age_s=settings.runs_max_age_hours * HOUR,
                   max_bytes=int(settings.runs_max_gb * GB), headroom_bytes=int(settings.disk_headroom_mb * MB))


@dataclass
class PruneReport:
    removed: int = 0
    freed_bytes: int = 0
    kept_bytes: int = 0


def entry_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


def _entries(folders: Iterable[Path]) -> list[tuple[float, int, Path]]:
    """(last used, bytes, path) of every entry directly under the folders, least recently used first."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            try:
                found.append((path.lstat().st_mtime, entry_size(path), path))
            except OSError:
                pass
    return sorted(found, key=lambda entry: entry[0])


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def prune(folders: Iterable[Path], policy: DiskPolicy, now: float | None = None, extra_bytes: int = 0) -> PruneReport:
    """Remove entries older than the maximum age, then the least recently used until the folders' total plus
    `extra_bytes` fits the size bound; entries younger than the minimum age always stay."""
    now = time.time() if now is None else now
    entries = _entries([Path(f) for f in folders])
    total = sum(size for _, size, _ in entries) + extra_bytes
    report = PruneReport()
    for used, size, path in entries:
        age = now - used
        if age < policy.min_age_s:
            break  # the rest are younger still
        if age > policy.max_age_s or total > policy.max_bytes:
            _remove(path)
            total -= size
            report.removed += 1
            report.freed_bytes += size
    report.kept_bytes = max(total - extra_bytes, 0)
    return report


def free_bytes(folder: Path) -> int:
    """Free space on the filesystem that holds `folder` (or its nearest existing parent)."""
    path = Path(folder).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def ensure_space(folder: str | Path, needed_bytes: int, policy: DiskPolicy, prunable: Iterable[Path] = ()) -> None:
    """Make room for `needed_bytes` in `folder` and the headroom beside it, pruning `prunable` folders oldest
    first (down to the minimum age); DiskFullError when the space is still not there. A server passes its
    temp folders; the CLI passes none (it never deletes a user's files)."""
    folder = Path(folder)
    if free_bytes(folder) - needed_bytes >= policy.headroom_bytes:
        return
    prunable = [Path(p) for p in prunable]
    if prunable:  # tighten the size bound to what the disk can take now, then prune to it
        short = policy.headroom_bytes + needed_bytes - free_bytes(folder)
        held = sum(size for _, size, _ in _entries(prunable))
        prune(prunable, DiskPolicy(policy.min_age_s, policy.max_age_s, max(held - short, 0), policy.headroom_bytes))
    free = free_bytes(folder)
    if free - needed_bytes < policy.headroom_bytes:
        who = "The server's disk" if prunable else "The disk"
        raise DiskFullError(
            f"{who} is full: {_mb(max(free, 0))} free where "
            f"{folder} needs {_mb(needed_bytes)} plus "
            f"{_mb(policy.headroom_bytes)} in reserve. Free some space (or lower --disk-headroom-mb) and try again.")


def _mb(n: float) -> str:
    return f"{n / MB:,.0f} MB" if n >= MB else f"{n / 1024:,.0f} KB"


def run_bytes(n: int, width: int, height: int) -> int:
    """An upper bound on a run's files: each PNG at most its raw pixels, once more in the zip, and the manifest."""
    return 2 * n * width * height * 3 + MB


def no_space(exc: OSError, folder: str | Path) -> DiskFullError | None:
    """The user's sentence for a write that ran out of space (the disk filled up meanwhile), else None."""
    if exc.errno != errno.ENOSPC:
        return None
    return DiskFullError(f"The disk filled up while writing to {folder}: nothing there claims to be complete "
                         f"(no manifest.json was written). Free some space and try again.")
