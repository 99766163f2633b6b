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

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence


PIPELINE, MODEL, PROCESSOR = "pipeline", "model", "processor"  # what a repository is loaded as
TEXT_SUFFIXES = (".json", ".txt", ".model", ".spm")  # configs, vocabularies, sentencepiece models
COMPONENT_CONFIGS = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
# Weight names the loaders read, best first: safetensors (both libraries prefer them), then PyTorch checkpoints.
SAFETENSORS_STEMS = ("model", "diffusion_pytorch_model")
PYTORCH_STEMS = ("pytorch_model", "diffusion_pytorch_model")
WAITING, DOWNLOADING, READY, FAILED = "waiting", "downloading", "ready", "failed"
CHUNK = 1 << 20  # bytes written at a time: the page's progress moves in these steps
ATTEMPTS = 3  # tries per model in one start, each resuming where the last one stopped


class DownloadError(Exception):
    """A model could not be fetched; the message says why in words and what happens next."""


# -- 1. plan ---------------------------------------------------------------------------------------------------
def _weights(names: set[str]) -> list[str]:
    """The one set of weight files a from_pretrained reads in a folder (no variants such as .fp16)."""
    for suffix, stems in ((".safetensors", SAFETENSORS_STEMS), (".bin", PYTORCH_STEMS)):
        for stem in stems:
            if stem + suffix in names:
                return [stem + suffix]
            index = f"{stem}{suffix}.index.json"
            if index in names:
                shards = sorted(n for n in names if re.fullmatch(rf"{stem}-\d+-of-\d+\{suffix}", n))
                return [index, *shards]
    return []


def _is_weight_index(name: str) -> bool:
    return name.endswith((".safetensors.index.json", ".bin.index.json"))


def _folder(files: Iterable[str], folder: str, with_weights: bool) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    names = {f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]}
    keep = sorted(n for n in names if n.endswith(TEXT_SUFFIXES) and not _is_weight_index(n))
    if with_weights:
        keep += _weights(names)
    return [prefix + n for n in keep]


def pipeline_components(files: Iterable[str], model_index: dict | None = None) -> list[str]:
    """The component folders a diffusers pipeline loads: model_index.json's non-empty entries, or else every
    top-level folder holding a config."""
    if model_index is not None:
        return sorted(k for k, v in model_index.items()
                      if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None)
    return sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.split("/")[1] in COMPONENT_CONFIGS})


def select_files(kind: str, files: Sequence[str], model_index: dict | None = None) -> list[str]:
    """The files of a repository that clipdemo's loader reads, for a repository loaded as `kind`."""
    if kind == PIPELINE:
        chosen = ["model_index.json"] if "model_index.json" in files else []
        for component in pipeline_components(files, model_index):
            chosen += _folder(files, component, with_weights=True)
        return chosen
    return _folder(files, "", with_weights=kind == MODEL)


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


# -- 2. fetch and 3. check and place --------------------------------------------------------------------------
def cache_folder(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str) -> Path | None:
    """main's snapshot folder in the Hub cache, if the cache has one."""
    ref = cache_folder(repo_id) / "refs" / "main"
    if not ref.is_file():
        return None
    snapshot = cache_folder(repo_id) / "snapshots" / ref.read_text().strip()
    return snapshot if snapshot.is_dir() else None


def _checksum_ok(path: Path, etag: str) -> bool:
    """An LFS file's ETag is its sha256; a small file's is its git blob sha1. Anything else: size only."""
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        digest = hashlib.sha256()
    elif re.fullmatch(r"[0-9a-f]{40}", etag):
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        return True
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == etag


def _link(blob: Path, pointer: Path) -> None:
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # no symlinks (some Windows setups): a copy, as huggingface_hub does
        import shutil

        shutil.copyfile(blob, pointer)


def _stream(url: str, partial: Path, resume: int) -> None:
    """GET `url` into `partial`, from byte `resume` on (a byte range), through huggingface_hub's HTTP session."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers()
    if resume:
        headers["Range"] = f"bytes={resume}-"
    with get_session().stream("GET", url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                              follow_redirects=True) as response:
        hf_raise_for_status(response)
        # 206: the rest of the file follows; 200: the server sent it all again, so start over
        with partial.open("ab" if resume and response.status_code == 206 else "wb") as f:
            for chunk in response.iter_bytes(CHUNK):
                f.write(chunk)
                f.flush()  # the bytes on disk are the progress the page shows


def _fetch_file(repo_id: str, path: str, commit: str, status: ModelDownload) -> None:
    """One file into the cache under `commit`, resuming a partial download, checked before it is placed."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock

    repo = cache_folder(repo_id)
    pointer = repo / "snapshots" / commit / path
    meta = get_hf_file_metadata(hf_hub_url(repo_id, path, revision=commit), timeout=10)
    etag, size = (meta.etag or "").strip('"'), meta.size
    if not etag:
        raise DownloadError(f"the server sent no checksum for {path}")
    blob = repo / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(str(blob) + ".lock"):  # two processes never append to one partial file
        if not blob.exists():
            partial = blob.with_name(etag + ".incomplete")  # kept when a fetch fails: the next one resumes it
            resume = partial.stat().st_size if partial.exists() else 0
            if size is not None and resume > size:
                partial.unlink()
                resume = 0
            if resume:
                status.reason = f"Resumed {path} at {_size(resume)} of {_size(size or 0)}"
            status._partial = partial
            try:
                _stream(meta.location, partial, resume)
            finally:
                status._partial = None
            got = partial.stat().st_size if partial.exists() else 0
            if size is not None and got != size:
                raise DownloadError(f"{path} arrived with {_size(got)} of its {_size(size)}")
            if not _checksum_ok(partial, etag):
                partial.unlink()
                raise DownloadError(f"{path} did not match its checksum and was discarded")
            partial.replace(blob)
            status.fetched += size - resume if size is not None else 0
    _link(blob, pointer)
    status._done_files += blob.stat().st_size


def _transient(exc: BaseException) -> bool:
    """A dropped or timed-out connection is worth another try; a missing file or a bad checksum is not."""
    return type(exc).__module__.split(".")[0].startswith("httpx") or isinstance(exc, (ConnectionError, TimeoutError))


def _describe(exc: BaseException, status: ModelDownload) -> str:
    """An interrupted fetch in words: what failed, what was kept, what happens next."""
    status.refresh()
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    if isinstance(exc, DownloadError):
        what = f"The download failed: {detail}."
    else:
        what = f"The download stopped ({type(exc).__name__}: {detail})."
    kept = f" {_size(status.done)} of {_size(status.total)} are kept" if status.done and status.total else ""
    return what + (kept + "; the next try resumes from there." if kept else " The next try starts it again.")


def fetch(need: Need, status: ModelDownload) -> Path:
    """The repository's snapshot folder with every file the loader reads, fetching what the cache lacks."""
    from huggingface_hub import HfApi

    from .hub import cached_conversion

    # 1. Plan: the file list of main, and the files the loader reads from it.
    info = HfApi().model_info(need.repo_id, revision="main", files_metadata=True, timeout=10)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    commit = info.sha
    model_index = None
    if need.kind == PIPELINE and "model_index.json" in sizes:
        _fetch_file(need.repo_id, "model_index.json", commit, status)
        snapshot = cache_folder(need.repo_id) / "snapshots" / commit
        model_index = json.loads((snapshot / "model_index.json").read_text())
        status._done_files = 0
    wanted = select_files(need.kind, list(sizes), model_index)
    if need.kind == MODEL and cached_conversion(need.repo_id):  # weights already cached from the conversion revision
        wanted = [w for w in wanted if w not in _weights(set(sizes))]
    status.total = sum(sizes[w] for w in wanted)
    # 2. Fetch each file the cache lacks; 3. each is checked before it is placed.
    for path in wanted:
        _fetch_file(need.repo_id, path, commit, status)
    ref = cache_folder(need.repo_id) / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return cache_folder(need.repo_id) / "snapshots" / commit


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
                status.reason = _describe(exc, status)
                if attempt == ATTEMPTS or not _transient(exc):
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
        from .hub import is_local, offline

        if is_local(need.repo_id):
            return str(Path(need.repo_id).expanduser())
        if offline():
            return str(cached_snapshot(need.repo_id) or need.repo_id)  # a missing model fails in the loader, as before
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
