"""What every tab shares: error display, binding handlers to the studio, uploads, temp folders, run files."""

from __future__ import annotations

import errno
import functools
import inspect
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..errors import InputError, ModelLoadError
from ..studio import Studio

MAX_UPLOADS = 16  # images per request in the classify and similarity tabs


def user_errors(fn):
    """Show InputError and ModelLoadError as a message box instead of a stack trace, a full disk in one sentence,
    and log one line per request (endpoint, seconds, outcome) on stderr."""

    @functools.wraps(fn)  # keeps the signature: gradio reads parameter names and gr.Request/gr.Progress from it
    def wrapper(*args, **kwargs):
        start, outcome = time.monotonic(), "error"
        try:
            answer = fn(*args, **kwargs)
            outcome = "ok"
            return answer
        except (InputError, ModelLoadError) as exc:
            outcome = "refused"
            raise gr.Error(str(exc), print_exception=False) from None
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            outcome = "disk full"
            raise gr.Error("The server's disk is full: this request could not be written. Try again later.",
                           print_exception=False) from None
        finally:
            print(f"clipdemo: /{fn.__name__} {time.monotonic() - start:.1f} s {outcome}", file=sys.stderr, flush=True)

    return wrapper


def bind(fn: Callable, *leading: Any) -> Callable:
    """fn with its first arguments fixed, keeping its name, docstring and the rest of its signature.

    Not functools.partial: gradio names API parameters and finds gr.Request/gr.Progress from the
    signature and type hints, and spaces.GPU and the tests read the handler's __name__.
    """

    @functools.wraps(fn)
    def bound(*args, **kwargs):
        return fn(*leading, *args, **kwargs)

    signature = inspect.signature(fn)
    dropped = list(signature.parameters)[:len(leading)]
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[len(leading):])
    bound.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in dropped}
    return bound


def show_notices(notices: list[str]) -> None:
    """Each notice as a toast, besides its line in the result's summary."""
    for notice in notices:
        gr.Warning(notice)


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


class StopFlags:
    """One threading.Event per browser session: Stop sets it, the diffusion callback checks it.

    The page's Generate click calls `submit` before its run is queued, so a Stop pressed while the run
    still waits in the queue cancels it when it starts; a run with no submit (an API call) starts unstopped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str | None, threading.Event] = {}
        self._submitted: set[str | None] = set()

    def _flag(self, session: str | None) -> threading.Event:
        if len(self._flags) > 10_000:  # bounded: forget old sessions
            self._flags.clear()
            self._submitted.clear()
        return self._flags.setdefault(session, threading.Event())

    def submit(self, session: str | None) -> None:
        with self._lock:
            self._flag(session).clear()
            self._submitted.add(session)

    def arm(self, session: str | None) -> threading.Event:
        with self._lock:
            flag = self._flag(session)
            if session in self._submitted:
                self._submitted.discard(session)  # a Stop since the click still counts
            else:
                flag.clear()
            return flag

    def stop(self, session: str | None) -> None:
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()


def on_gpu(fn, duration: Callable[..., int] | None = None):
    """On ZeroGPU Spaces, run fn with a GPU attached (spaces.GPU) for `duration(*fn's inputs)` seconds, or the
    platform's default; elsewhere, fn unchanged."""
    try:
        import spaces
    except ImportError:
        return fn
    if duration is None:
        return spaces.GPU(fn)
    return spaces.GPU(duration=with_inputs_of(fn, duration))(fn)


def with_inputs_of(fn: Callable, estimate: Callable[..., int]) -> Callable[..., int]:
    """`estimate` called with the inputs of a call to fn that it names (spaces.GPU passes all of them)."""
    signature, wanted = inspect.signature(fn), set(inspect.signature(estimate).parameters)

    def seconds(*args, **kwargs) -> int:
        given = signature.bind_partial(*args, **kwargs).arguments
        return estimate(**{name: value for name, value in given.items() if name in wanted})

    return seconds


def auth_from_env(value: str | None) -> tuple[str, str] | None:
    """CLIPDEMO_AUTH=user:password turns on basic auth; unset means none."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("CLIPDEMO_AUTH must look like user:password.")
    return user, password


def upload_paths(files: list[Any] | None) -> list[str]:
    """Server paths of gr.File values (paths, or file objects from older clients)."""
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files or []]


def read_uploads(files: list[Any] | None) -> tuple[list, list[str]]:
    """PIL images and display names from gr.File values (paths)."""
    files = files or []
    if not files:
        raise InputError("Upload at least one image.")
    if len(files) > MAX_UPLOADS:
        raise InputError(f"Too many images: {len(files)} (the limit is {MAX_UPLOADS} per request).")
    paths = upload_paths(files)
    names = [Path(p).name for p in paths]
    return [Studio.open_image(p, name=n) for p, n in zip(paths, names)], names


TEMP_FOLDERS = ("clipdemo-runs", "clipdemo-evals", "clipdemo-search", "clipdemo-bench")  # under the temp dir


def temp_folders() -> list[Path]:
    """The app's own folders under the temp directory, pruned by age and by size."""
    return [Path(tempfile.gettempdir()) / name for name in TEMP_FOLDERS]


def gradio_cache() -> Path:
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def make_room(studio) -> None:
    """Before new files: drop what is past the maximum age, then the least recently used past the size bound.
    Gradio's copies of what it served go by age only: Gradio reuses a cached upload of the same content, which
    a pruning by size could pull from under a request reading it."""
    policy = studio.disk_policy
    Studio.prune(temp_folders(), policy)
    Studio.prune([gradio_cache()], policy.by_age_only())


def new_run(studio) -> tuple[Path, Path]:
    """A fresh folder for a run's files and the path of its zip; the least recently used runs make room."""
    make_room(studio)
    out = Path(tempfile.gettempdir()) / "clipdemo-runs" / uuid.uuid4().hex
    return out, out.parent / f"{out.name}.zip"


def gallery_of(result) -> list[tuple[str, str]]:
    """The written run's images as gallery items (path, caption), best first."""
    return [(str(path), item.caption()) for path, item in zip(result.files.images, result.images)]


def write_run_files(studio, result) -> list[tuple[str, str]]:
    """Write a run that came back without files (Compare's two sides); its gallery items."""
    out, _ = new_run(studio)
    result.files = studio.write_run(result, out, prunable=temp_folders())
    return gallery_of(result)
