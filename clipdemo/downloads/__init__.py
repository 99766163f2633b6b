"""Fetch the Hub models a run loads before loading them: only the files the loaders read, resumable, with progress.

One model is fetched in three steps (`fetch`):
1. plan: read the repository's file list (one API call) and keep what the loader reads (`select_files`): configs,
   tokenizer and processor files, and one copy of the weights, safetensors when the folder has them, else the
   PyTorch checkpoint; never another precision, a .ckpt, ONNX, Flax or TF file, or a single-file checkpoint.
2. fetch: each missing file streams into `blobs/<etag>.incomplete` through huggingface_hub's own HTTP client (its
   endpoint, proxies and headers). A partial file left by an interrupted start is resumed with a byte range.
3. check and place: the size and the checksum (the file's ETag) must match, else the file is discarded; then it
   joins the Hub cache layout (blobs/, snapshots/<commit>/, refs/main) that every later load reads offline.

`DOWNLOADS` keeps each model's state (waiting, downloading with bytes and ETA, ready, failed with the reason) for
the page and the CLI; loaders call `DOWNLOADS.ensure`, which waits for a fetch already running or starts one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from .fetch import ATTEMPTS, cached_snapshot, describe_failure, fetch, is_transient
from .plan import MODEL, PIPELINE, PROCESSOR, select_files
from .status import DOWNLOADING, FAILED, READY, WAITING, DownloadError, ModelDownload, Need


class Downloads:
    """Each Hub model's fetch state in this process; one fetch per repository at a time."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._models: dict[str, ModelDownload] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.report: Callable[[ModelDownload], None] | None = None  # hears every fetch a caller did not follow
        self.log: Callable[[str], None] | None = None  # one line per model when its fetch ends (the server's log)

    def status(self) -> list[ModelDownload]:
        with self._guard:
            return list(self._models.values())

    def _entry(self, need: Need) -> ModelDownload:
        with self._guard:
            return self._models.setdefault(need.repo_id, ModelDownload(need.role, need.repo_id, need.kind))

    def _run(self, need: Need, status: ModelDownload) -> None:
        status.state, status.started = DOWNLOADING, time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            status._done_files = 0
            try:
                status.path = fetch(need, status)
                status.state, status.finished = READY, time.monotonic()
                break
            except Exception as exc:  # any failure becomes the reason the page shows
                status.reason = describe_failure(exc, status)
                if attempt == ATTEMPTS or not is_transient(exc):
                    status.state = FAILED
                    break
                time.sleep(1.0)
        if self.log is not None and (status.fetched or status.state == FAILED):
            self.log(status.line())

    def _start(self, need: Need) -> threading.Thread | None:
        """The thread fetching this repository, started now unless one runs or it is ready."""
        status = self._entry(need)
        with self._guard:
            thread = self._threads.get(need.repo_id)
            if status.state == READY or (thread is not None and thread.is_alive()):
                return thread
            thread = threading.Thread(target=self._run, args=(need, status), daemon=True,
                                      name=f"clipdemo-download-{need.repo_id}")
            self._threads[need.repo_id] = thread
            thread.start()
            return thread

    def start(self, needs: Sequence[Need]) -> threading.Thread:
        """Fetch these models one after another in the background (the server's start)."""
        for need in needs:
            self._entry(need)

        def run_all() -> None:
            for need in needs:
                thread = self._start(need)
                if thread is not None:
                    thread.join()

        thread = threading.Thread(target=run_all, daemon=True, name="clipdemo-downloads")
        thread.start()
        return thread

    def ensure(self, need: Need, report: Callable[[ModelDownload], None] | None = None) -> Path | str:
        """The folder to load `need` from: a local folder as is, else its snapshot once every file is cached.

        Offline (HF_HUB_OFFLINE), the cache is used as it is. Online, a fetch of this repository that is running
        is waited for, else one is started; `report` hears its progress about four times a second.
        Raises DownloadError with the reason when the model cannot be fetched.
        """
        from ..hub import is_local, offline

        if is_local(need.repo_id):
            return str(Path(need.repo_id).expanduser())
        if offline():
            snapshot = cached_snapshot(need.repo_id)
            if snapshot is None:  # said here: the libraries would ask the Hub anyway and name a missing config file
                raise DownloadError(f"{need.repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
            return str(snapshot)
        status, report = self._entry(need), report or self.report
        if status.state != READY:
            status.reason = "" if status.state == FAILED else status.reason
            if status.state == FAILED:
                status.state = WAITING
            thread = self._start(need)
            while thread is not None and thread.is_alive():
                if report is not None:
                    report(status)
                thread.join(0.25)
        if status.state != READY:
            raise DownloadError(status.reason)
        if report is not None:
            report(status)
        return str(status.path)

    def forget(self) -> None:
        """Drop every state (tests)."""
        with self._guard:
            self._models.clear()
            self._threads.clear()


DOWNLOADS = Downloads()

__all__ = ["DOWNLOADS", "DownloadError", "Downloads", "MODEL", "ModelDownload", "Need", "PIPELINE", "PROCESSOR",
           "cached_snapshot", "select_files"]
