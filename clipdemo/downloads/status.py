"""What a fetch reports: each model's state (waiting, downloading with bytes and time left, ready, failed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .plan import MODEL

WAITING, DOWNLOADING, READY, FAILED = "waiting", "downloading", "ready", "failed"


class DownloadError(Exception):
    """A model could not be fetched; the message says why in words and what happens next."""


# -- state shown to users ----------------------------------------------------------------------------------------
def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


@dataclass
class ModelDownload:
    """One repository's fetch as the page and the CLI show it."""

    role: str  # what the model does, in the page's words ("Stable Diffusion", "CLIP", ...)
    repo_id: str
    kind: str
    state: str = WAITING
    total: int = 0  # bytes the loader reads
    done: int = 0  # bytes on disk, finished files and the current partial file
    fetched: int = 0  # bytes that came over the network in this process
    reason: str = ""  # why it failed, or what happened on the way (a resume)
    path: Path | None = None  # the snapshot folder once ready
    started: float | None = None
    finished: float | None = None
    _partial: Path | None = field(default=None, repr=False)
    _done_files: int = field(default=0, repr=False)
    _rate: tuple[float, int] | None = field(default=None, repr=False)  # (time, bytes) a few seconds ago

    def refresh(self) -> None:
        """Count the bytes of the file being written."""
        partial = self._partial
        try:
            current = partial.stat().st_size if partial is not None else 0
        except OSError:
            current = 0
        self.done = self._done_files + current

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == READY else (self.done / self.total if self.total else 0.0)

    def eta(self) -> float | None:
        now = time.monotonic()
        if self._rate is None or now - self._rate[0] > 10:  # a rate over the last few seconds
            self._rate = (now, self.done)
            return None
        elapsed, fetched = now - self._rate[0], self.done - self._rate[1]
        return (self.total - self.done) * elapsed / fetched if fetched > 0 and elapsed > 0.5 else None

    def line(self) -> str:
        if self.state == READY:
            how = (f"{_size(self.fetched)} fetched in {_duration(self.finished - self.started)}"
                   if self.fetched and self.started and self.finished else "from the cache")
            return f"{self.role} ({self.repo_id}): ready ({how})" + (f". {self.reason}" if self.reason else "")
        if self.state == FAILED:
            return f"{self.role} ({self.repo_id}): not available. {self.reason}"
        if self.state == WAITING:
            return f"{self.role} ({self.repo_id}): waiting to download"
        if not self.total:
            return f"{self.role} ({self.repo_id}): reading the file list"
        self.refresh()
        eta = self.eta()
        left = f", about {_duration(eta)} left" if eta is not None else ""
        return (f"{self.role} ({self.repo_id}): downloading {_size(self.done)} of {_size(self.total)} "
                f"({self.fraction:.0%}){left}" + (f". {self.reason}" if self.reason else ""))


@dataclass(frozen=True)
class Need:
    """A repository a run will load, what it does, and how it is loaded."""

    role: str
    repo_id: str
    kind: str = MODEL
