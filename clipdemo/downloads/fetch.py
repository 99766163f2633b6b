"""Steps 2 and 3 of a fetch: stream each missing file (resuming a partial one), check it, place it in the Hub cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .plan import MODEL, PIPELINE, select_files, weight_files
from .status import DownloadError, ModelDownload, Need, _size

CHUNK = 1 << 20  # bytes written at a time: the page's progress moves in these steps
ATTEMPTS = 3  # tries per model in one start, each resuming where the last one stopped


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


def is_transient(exc: BaseException) -> bool:
    """A dropped or timed-out connection is worth another try; a missing file or a bad checksum is not."""
    return type(exc).__module__.split(".")[0].startswith("httpx") or isinstance(exc, (ConnectionError, TimeoutError))


def describe_failure(exc: BaseException, status: ModelDownload) -> str:
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

    from ..hub import cached_conversion

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
        wanted = [w for w in wanted if w not in weight_files(set(sizes))]
    status.total = sum(sizes[w] for w in wanted)
    # 2. Fetch each file the cache lacks; 3. each is checked before it is placed.
    for path in wanted:
        _fetch_file(need.repo_id, path, commit, status)
    ref = cache_folder(need.repo_id) / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return cache_folder(need.repo_id) / "snapshots" / commit
