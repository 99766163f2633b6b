"""A stand-in Hugging Face Hub on 127.0.0.1 for download tests, and a plain HTTP forward proxy.

Point huggingface_hub at it with `HF_ENDPOINT=<hub.url>` (read once, when huggingface_hub is imported, into
`huggingface_hub.constants.ENDPOINT`, so set it in a child process's environment: `hub.child_env()` builds one).
Written against the installed huggingface_hub 2.4 (HTTP through httpx2, proxies from HTTP(S)_PROXY honoured); what it
sends was read from file_download.py, _snapshot_download.py, hf_api.py and utils/_http.py, and checked by
tests/test_local_hub.py. A download by hf_hub_download is HEAD then GET of the same /resolve URL (no GET when the blob
is already cached); snapshot_download is GET /api/models/{repo}/revision/{rev}, GET .../tree/{sha}?recursive=true, then
HEAD + GET /resolve/{sha}/{file} per file. In-process use is awkward (HF_HUB_OFFLINE, ENDPOINT and the module-level
`huggingface_hub.hf_api.api` are fixed at import), so run downloads in a child with `hub.child_env()`.

Requests answered, and why:
- HEAD /{repo}/resolve/{revision}/{path}: hf_hub_download's metadata call (get_hf_file_metadata); it needs
  X-Repo-Commit (else FileMetadataError), an ETag (X-Linked-Etag is preferred; the value names the cache blob, so it
  is the file's sha256 as for LFS files) and X-Linked-Size / Content-Length (the size the download is checked against).
- GET /{repo}/resolve/{revision}/{path}: the download itself (http_get), from the URL the HEAD answered for (no
  Location header is sent, so no redirect); `Range: bytes=N-` (or N-M) gets 206 + Content-Range: http_get sends it
  when it resumes in-process after a dropped connection. Bodies go out in 64 KiB pieces.
- The revision may be a branch ("main"), a URL-quoted ref ("refs%2Fpr%2F66": hf_hub_url quotes it with safe="") or
  the revision's 40-hex commit sha (snapshot_download downloads every file by commit sha).
- 404 answers carry X-Error-Code as the real Hub's do, which hf_raise_for_status turns into exceptions:
  RepoNotFound -> RepositoryNotFoundError, RevisionNotFound -> RevisionNotFoundError, EntryNotFound ->
  RemoteEntryNotFoundError (the EntryNotFound answer also carries X-Repo-Commit, so the client records the file under
  `.no_exist/<commit>/` as it does against the real Hub).
- GET /api/models/{repo} and /api/models/{repo}/revision/{revision}: model_info / repo_info (snapshot_download
  resolves a branch to its commit sha with it; diffusers lists a pipeline's files with it). JSON with id, modelId,
  sha and siblings [{rfilename}]; with ?blobs=true (files_metadata=True) also size, blobId and
  lfs {sha256, size, pointerSize}.
- GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=...: list_repo_tree (snapshot_download lists the commit's
  files with it, recursive=True; the path is quoted with safe="", so "/" arrives as %2F). A JSON list of
  {"type": "file", "path", "size", "oid", "lfs": {"oid", "size", "pointerSize"}} and {"type": "directory", "path",
  "oid"} entries, in one page (no Link header, so no pagination).
- Every file is described as an LFS file (ETag = sha256, lfs block present): consistent metadata for all files.
- Nothing ever sends X-Xet-Hash / X-Xet-Refresh-Route or a `Link: <...>; rel="xet-auth"` header, nor xetHash in the
  tree: without them huggingface_hub never takes its Xet download path, even with hf_xet installed.
- Anything else: 404 without an error code (plain HfHubHTTPError); methods other than HEAD/GET: 405.

Faults (for GET /resolve only): cut_after (headers claim the full length, part of the body, then the connection is
closed), truncate (a shorter body with a matching Content-Length: a wrong-size file); stall holds every request.
How huggingface_hub 2.4 takes them: a cut body is retried inside the same call up to 5 times (1 s apart), resuming
with `Range: bytes=N-` where N is what it had written, a multiple of its 10 MiB write chunk (so N is 0 for smaller
files); when the retries run out the call fails and its per-process temporary file is deleted, so a later run starts
again from byte 0 (no `.incomplete` is left to resume). A truncated body fails its size check at once.
Accounting (requests, bytes_served, files_served) is thread-safe. Nothing is logged.

LocalProxy is a forward proxy for plain http (absolute-form request URIs), with its own hostname table so a test can
use an endpoint like http://hub.test:PORT that only the proxy can resolve.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import os
import pathlib
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 64 * 1024
STALL_LIMIT_S = 300.0  # a stalled request gives up (without answering) after this long, whatever happens
SOCKET_TIMEOUT_S = 60.0  # idle keep-alive connections and stuck writes end after this long
_SHA_RE = re.compile(r"[0-9a-f]{40}")


@dataclass
class Request:
    """One request the hub handled (recorded when its answer is finished or abandoned)."""

    method: str
    path: str  # unquoted, without the query
    query: str
    range: str | None
    status: int  # 0 when no answer was sent (a stalled request released by stop())
    body_bytes: int  # body bytes actually written
    repo_id: str | None = None
    revision: str | None = None  # the revision's name ("main", "refs/pr/66") even when asked for by commit sha
    file: str | None = None  # path in the repository, for /resolve requests
    resolve: bool = False  # a /resolve request
    complete: bool = False  # the whole promised body was written
    fault: str | None = None  # "cut" or "truncate" when a fault was applied


@dataclass
class _File:
    size: int
    sha256: str
    data: bytes | None = None
    source: pathlib.Path | None = None

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def oid(self) -> str:  # git blob id of the LFS pointer, as the Hub reports for LFS files
        pointer = self.pointer
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()

    def chunks(self, start: int, end: int) -> Iterable[bytes]:
        """Bytes [start, end) in pieces of CHUNK."""
        if self.data is not None:
            view = memoryview(self.data)
            for pos in range(start, end, CHUNK):
                yield bytes(view[pos:min(pos + CHUNK, end)])
            return
        assert self.source is not None
        with open(self.source, "rb") as f:
            f.seek(start)
            pos = start
            while pos < end:
                piece = f.read(min(CHUNK, end - pos))
                if not piece:
                    raise OSError(f"{self.source} shrank while being served")
                yield piece
                pos += len(piece)


@dataclass
class _Fault:
    kind: str  # "cut" or "truncate"
    suffix: str
    nbytes: int
    times: int


def _file_from(data: bytes | pathlib.Path) -> _File:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        return _File(len(data), hashlib.sha256(data).hexdigest(), data=data)
    path = pathlib.Path(data)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return _File(path.stat().st_size, digest.hexdigest(), source=path)


def _directory_oid(path: str) -> str:
    return hashlib.sha1(f"tree {path}".encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, owner):
        self.owner = owner
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: HTTP/1.1 keep-alive, bounded sockets, connection tracking, no logging."""

    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server: _Server

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        pass

    def _drop_connection(self) -> None:
        """Close the connection now, whatever the client still expects."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:  # the client went away (reset, broken pipe, timeout)
            self.close_connection = True
            return False


class _ServerBase:
    """Start/stop of a threaded server bound to 127.0.0.1, remembering its port across restarts."""

    _handler_class: type[_Handler]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port, or the same port as before when restarted); returns the URL."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._before_start()
        server = _Server(("127.0.0.1", self._port), self._handler_class, self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self._port}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, release stalled requests and close open connections (keep-alive ones too)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        self._before_stop()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _before_start(self) -> None:
        pass

    def _before_stop(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _HubHandler(_Handler):
    server: _Server

    def do_HEAD(self):
        self.server.owner._handle(self, "HEAD")

    def do_GET(self):
        self.server.owner._handle(self, "GET")

    def _refuse(self):
        self.server.owner._handle(self, self.command)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class LocalHub(_ServerBase):
    """Serves repositories added with add_file / add_folder the way huggingface_hub downloads from the Hub."""

    _handler_class = _HubHandler

    def __init__(self) -> None:
        super().__init__()
        self._repos: dict[str, dict[str, dict[str, _File]]] = {}  # repo -> revision name -> path -> file
        self._shas: dict[tuple[str, str], str] = {}  # (repo, revision name) -> commit sha, reset on change
        self._faults: list[_Fault] = []
        self._stalled = False
        self._go = threading.Event()
        self._go.set()
        self._waiting = 0
        self._rate: float | None = None  # bytes per second for GET bodies (throttle), None: as fast as it goes
        self.requests: list[Request] = []

    # ----- content -----

    def add_file(self, repo_id: str, path: str, data: bytes | pathlib.Path, revision: str = "main") -> None:
        """Put a file on a revision ("main", "refs/pr/66", ...); a Path is read when served, not copied."""
        path = path.strip("/")
        if not path or repo_id.count("/") > 1 or not repo_id:
            raise ValueError(f"bad repo_id/path: {repo_id!r} {path!r}")
        entry = _file_from(data)
        with self._lock:
            self._repos.setdefault(repo_id, {}).setdefault(revision, {})[path] = entry
            self._shas.pop((repo_id, revision), None)

    def add_folder(self, repo_id: str, folder: pathlib.Path, revision: str = "main", skip: Iterable[str] = ()) -> None:
        """Every file under `folder` (relative posix paths), except those matching a `skip` glob (fnmatch on the
        relative path, or on the file's name)."""
        folder = pathlib.Path(folder)
        patterns = list(skip)
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = file.relative_to(folder).as_posix()
            if any(fnmatch.fnmatch(relative, pat) or fnmatch.fnmatch(file.name, pat) for pat in patterns):
                continue
            self.add_file(repo_id, relative, file, revision=revision)

    def commit_sha(self, repo_id: str, revision: str = "main") -> str:
        """The revision's commit sha: sha1 of the repository, revision name and files (so it changes with them)."""
        with self._lock:
            return self._sha_locked(repo_id, revision)

    def _sha_locked(self, repo_id: str, revision: str) -> str:
        key = (repo_id, revision)
        if key not in self._shas:
            digest = hashlib.sha1(f"{repo_id}\0{revision}\0".encode())
            for path, entry in sorted(self._repos[repo_id][revision].items()):
                digest.update(f"{path}\0{entry.sha256}\0".encode())
            self._shas[key] = digest.hexdigest()
        return self._shas[key]

    def _resolve_revision(self, repo_id: str, revision: str) -> str | None:
        """Revision name for a name or commit sha (caller holds the lock)."""
        revisions = self._repos[repo_id]
        if revision in revisions:
            return revision
        if _SHA_RE.fullmatch(revision):
            for name in revisions:
                if self._sha_locked(repo_id, name) == revision:
                    return name
        return None

    # ----- accounting -----

    def bytes_served(self, repo_id: str | None = None) -> int:
        """Body bytes actually written for GET /resolve requests (optionally of one repository)."""
        with self._lock:
            return sum(r.body_bytes for r in self.requests
                       if r.method == "GET" and r.resolve and (repo_id is None or r.repo_id == repo_id))

    def files_served(self, repo_id: str | None = None) -> list[str]:
        """"repo_id/revision/path" of each GET /resolve whose whole answer was written (a resumed download counts once
        per completed request); revision is the revision's name even when asked for by commit sha."""
        with self._lock:
            return [f"{r.repo_id}/{r.revision}/{r.file}" for r in self.requests
                    if r.method == "GET" and r.resolve and r.complete and r.status in (200, 206)
                    and (repo_id is None or r.repo_id == repo_id)]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # ----- faults -----

    def cut_after(self, path_suffix: str, nbytes: int, times: int = 1) -> None:
        """The next `times` GETs of a file whose repo path ends with `path_suffix`: headers promise the whole (range)
        body, `nbytes` of it are written (counted from the start of that answer's body), then the connection is
        closed (the client sees the connection end mid-body)."""
        with self._lock:
            self._faults.append(_Fault("cut", path_suffix, nbytes, times))

    def truncate(self, path_suffix: str, nbytes: int, times: int = 1) -> None:
        """The next `times` GETs of a matching file answer only its first `nbytes`, with Content-Length nbytes (HEAD
        still gives the full size in X-Linked-Size/Content-Length): a wrong-size file."""
        with self._lock:
            self._faults.append(_Fault("truncate", path_suffix, nbytes, times))

    def throttle(self, bytes_per_second: float | None) -> None:
        """Serve GET bodies at about this rate (a slow connection, so a test can watch a download progress)."""
        self._rate = bytes_per_second

    def clear_faults(self) -> None:
        """Forget every pending cut_after / truncate."""
        with self._lock:
            self._faults.clear()

    def stall(self, on: bool = True) -> None:
        """While on, every request waits unanswered (until stall(False), stop(), or STALL_LIMIT_S)."""
        with self._lock:
            self._stalled = on
            (self._go.clear if on else self._go.set)()

    def stalled_requests(self) -> int:
        """How many requests are waiting on a stall right now."""
        with self._lock:
            return self._waiting

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and path.endswith(fault.suffix):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _before_stop(self) -> None:
        self._go.set()  # release stalled requests; they see _stopping and answer nothing

    def _before_start(self) -> None:
        if self._stalled:
            self._go.clear()

    # ----- environment for child processes -----

    def child_env(self, base: dict[str, str] | None = None, home: str | os.PathLike | None = None) -> dict[str, str]:
        """An environment for a child process that downloads from this hub: HF_ENDPOINT set, HF_HUB_OFFLINE (and
        TRANSFORMERS_OFFLINE) removed, telemetry and Xet off, HF_HOME set when `home` is given."""
        env = dict(os.environ if base is None else base)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
            env.pop(name, None)
        env.update(HF_ENDPOINT=self.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1")
        if home is not None:
            env["HF_HOME"] = str(home)
        return env

    # ----- request handling -----

    def _handle(self, h: _HubHandler, method: str) -> None:
        raw = h.path
        if raw.startswith(("http://", "https://")):  # absolute-form sent straight to us
            parts = urlsplit(raw)
            raw = parts.path + (f"?{parts.query}" if parts.query else "")
        raw_path, _, query = raw.partition("?")
        record = Request(method, unquote(raw_path), query, h.headers.get("Range"), 0, 0)
        try:
            if self._stalled or not self._go.is_set():
                with self._lock:
                    self._waiting += 1
                try:
                    self._go.wait(timeout=STALL_LIMIT_S)
                finally:
                    with self._lock:
                        self._waiting -= 1
            if self._stopping.is_set() or not self._go.is_set():
                h._drop_connection()
                return
            if method not in ("HEAD", "GET"):
                self._send_error(h, record, 405, None, "Method not allowed")
            elif raw_path.startswith("/api/"):
                self._handle_api(h, record, raw_path, query)
            elif "/resolve/" in raw_path:
                self._handle_resolve(h, record, raw_path)
            else:
                self._send_error(h, record, 404, None, "Not found")
        except Exception:  # never let a handler error leak to stderr; answer 500 if nothing was sent yet
            if record.status == 0:
                try:
                    self._send_error(h, record, 500, None, "Internal error in LocalHub")
                except Exception:
                    h._drop_connection()
            else:
                h._drop_connection()
        finally:
            self._record(record)

    def _send_error(self, h: _HubHandler, record: Request, status: int, code: str | None, message: str,
                    commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-Error-Message", message)
        if code is not None:
            h.send_header("X-Error-Code", code)
        if commit is not None:
            h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        record.status = status
        if record.method != "HEAD" and h._write(body):
            record.body_bytes = len(body)
        record.complete = True

    def _send_json(self, h: _HubHandler, record: Request, payload, commit: str | None = None) -> None:
        body = json.dumps(payload).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        if commit is not None:
            h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        record.status = 200
        if record.method != "HEAD" and h._write(body):
            record.body_bytes = len(body)
        record.complete = True

    def _lookup(self, h, record: Request, repo_id: str, revision: str | None):
        """(revision name, commit sha, files) or None after answering the 404."""
        with self._lock:
            if repo_id not in self._repos:
                missing = ("RepoNotFound", f"Repository not found: {repo_id}")
            else:
                name = self._resolve_revision(repo_id, revision or "main")
                if name is None:
                    missing = ("RevisionNotFound", f"Invalid rev id: {revision}")
                else:
                    record.repo_id, record.revision = repo_id, name
                    return name, self._sha_locked(repo_id, name), dict(self._repos[repo_id][name])
        record.repo_id = repo_id
        self._send_error(h, record, 404, *missing)
        return None

    def _handle_resolve(self, h: _HubHandler, record: Request, raw_path: str) -> None:
        record.resolve = True
        repo_part, _, rest = raw_path.lstrip("/").partition("/resolve/")
        raw_revision, _, raw_file = rest.partition("/")
        repo_id, revision, path = unquote(repo_part), unquote(raw_revision), unquote(raw_file)
        record.file = path
        found = self._lookup(h, record, repo_id, revision)
        if found is None:
            return
        _, sha, files = found
        entry = files.get(path)
        if entry is None:
            self._send_error(h, record, 404, "EntryNotFound", f"Entry not found: {path}", commit=sha)
            return

        start, end, status = 0, entry.size, 200
        range_header = h.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if match is None or not match.group(1):
                match = None
            if match is not None:
                start = int(match.group(1))
                end = min(int(match.group(2)) + 1, entry.size) if match.group(2) else entry.size
                if start >= entry.size or end <= start:
                    h.send_response(416)
                    h.send_header("Content-Range", f"bytes */{entry.size}")
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    record.status = 416
                    record.complete = True
                    return
                status = 206

        fault = self._take_fault(path) if record.method == "GET" else None
        length = end - start
        claimed = length
        if fault is not None and fault.kind == "truncate":
            end = min(end, fault.nbytes) if status == 200 else min(end, start + fault.nbytes)
            end = max(end, start)
            claimed = length = end - start
        limit = length if fault is None or fault.kind != "cut" else min(length, max(fault.nbytes, 0))
        record.fault = fault.kind if fault else None

        etag = f'"{entry.sha256}"'
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(claimed))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", etag)
        h.send_header("X-Linked-Etag", etag)
        h.send_header("X-Linked-Size", str(entry.size))
        h.send_header("X-Repo-Commit", sha)
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{entry.size}")
        h.end_headers()
        record.status = status
        if record.method == "HEAD":
            record.complete = True
            return

        written = 0
        for piece in entry.chunks(start, start + limit):
            if not h._write(piece):
                break
            written += len(piece)
            record.body_bytes = written
            if self._rate:
                time.sleep(len(piece) / self._rate)
        if fault is not None and fault.kind == "cut" and limit < length:
            h._drop_connection()
            return
        record.complete = written == claimed

    def _handle_api(self, h: _HubHandler, record: Request, raw_path: str, query: str) -> None:
        match = re.fullmatch(r"/api/models/(?P<repo>[^/]+(?:/[^/]+)?)"
                             r"(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<rest>/.*)?)?", raw_path)
        if match is None or (match.group("kind") == "revision" and match.group("rest")):
            self._send_error(h, record, 404, None, "Not found")
            return
        repo_id = unquote(match.group("repo"))
        revision = unquote(match.group("rev")) if match.group("rev") else None
        found = self._lookup(h, record, repo_id, revision)
        if found is None:
            return
        _, sha, files = found
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if match.group("kind") == "tree":
            sub = unquote(match.group("rest") or "").strip("/")
            recursive = params.get("recursive", "").lower() in ("true", "1")
            entries = self._tree(files, sub, recursive)
            if entries is None:
                self._send_error(h, record, 404, "EntryNotFound", f"Entry not found: {sub}", commit=sha)
            else:
                self._send_json(h, record, entries, commit=sha)
            return
        blobs = params.get("blobs", "").lower() in ("true", "1")
        siblings = []
        for path, entry in sorted(files.items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.oid,
                               lfs={"sha256": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)})
            siblings.append(sibling)
        self._send_json(h, record, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None, "sha": sha, "private": False,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
            "siblings": siblings,
        }, commit=sha)

    @staticmethod
    def _tree(files: dict[str, _File], sub: str, recursive: bool) -> list[dict] | None:
        prefix = f"{sub}/" if sub else ""
        under = {p: e for p, e in files.items() if p.startswith(prefix)}
        if sub and not under:
            return None
        directories: set[str] = set()
        entries: list[dict] = []
        for path, entry in sorted(under.items()):
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                directories.add(prefix + "/".join(parts[:depth]))
            if len(parts) == 1 or recursive:
                entries.append({"type": "file", "oid": entry.oid, "size": entry.size, "path": path,
                                "lfs": {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}})
        folders = [{"type": "directory", "oid": _directory_oid(d), "size": 0, "path": d} for d in sorted(directories)]
        return folders + entries


# ---------------------------------------------------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
               "trailer", "trailers", "transfer-encoding", "upgrade"}


class _ProxyHandler(_Handler):
    server: _Server

    def do_GET(self):
        self.server.owner._forward(self)

    do_HEAD = do_GET


class LocalProxy(_ServerBase):
    """Plain HTTP forward proxy: takes absolute-form requests ("GET http://host:port/x HTTP/1.1"), forwards HEAD and
    GET (headers, Range included) to the origin, streams the answer back as is (redirects are passed on, never
    followed) and closes the client connection when the origin's body ends early. No CONNECT."""

    _handler_class = _ProxyHandler

    def __init__(self, resolve: dict[str, tuple[str, int]] | None = None) -> None:
        super().__init__()
        self.resolve = dict(resolve or {})
        self.requests: list[str] = []

    def _forward(self, h: _ProxyHandler) -> None:
        target = urlsplit(h.path)
        if target.scheme != "http" or not target.hostname:
            body = b"LocalProxy only forwards absolute http:// URLs"
            h.send_response(400)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h._write(body)
            return
        with self._lock:
            self.requests.append(h.path)
        host, port = self.resolve.get(target.hostname, (target.hostname, target.port or 80))
        upstream = http.client.HTTPConnection(host, port, timeout=SOCKET_TIMEOUT_S)
        try:
            path = target.path or "/"
            if target.query:
                path += f"?{target.query}"
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                upstream.request(h.command, path, headers=headers)
                response = upstream.getresponse()
            except OSError as error:
                body = f"LocalProxy could not reach {host}:{port}: {error}".encode()
                h.send_response(502)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h._write(body)
                return
            h.send_response(response.status, response.reason)
            length = response.getheader("Content-Length")
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    h.send_header(key, value)
            if length is None and h.command != "HEAD" and response.status not in (204, 304):
                h.send_header("Connection", "close")  # body ends when we close
                h.close_connection = True
            h.end_headers()
            if h.command == "HEAD":
                return
            expected = int(length) if length is not None else None
            sent = 0
            while True:
                try:
                    piece = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
                except (OSError, http.client.HTTPException):
                    piece = b""
                if not piece:
                    break
                if not h._write(piece):
                    return
                sent += len(piece)
            if expected is not None and sent < expected:
                h._drop_connection()  # the origin cut the body short: so do we
        finally:
            upstream.close()

    def proxy_env(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with HTTP_PROXY/HTTPS_PROXY (both cases) pointing here and NO_PROXY removed."""
        env = dict(env)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = self.url
        return env


__all__ = ["CHUNK", "LocalHub", "LocalProxy", "Request"]
