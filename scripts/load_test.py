"""Load test for the web app: many concurrent, mixed requests against a live server on 127.0.0.1.

    python scripts/load_test.py                          # starts `python app.py --preset demo` itself
    python scripts/load_test.py --requests 200 --concurrency 20 --json-out load.json
    python scripts/load_test.py --url http://127.0.0.1:7860/ --server-pid 1234

Fires --requests requests (generate, classify and similarity, round-robin by --mix) from a pool of
--concurrency threads, each thread with its own gradio_client session, and stops sending once
--max-seconds have passed (requests still running then are cancelled and counted as timeouts). Every
request ends as one of:

  completed   the endpoint answered with a well-formed result
  queue_full  the server's clean "queue is full" answer
  app_error   a clean error message from the app (gr.Error)
  timeout     no answer before the --max-seconds deadline
  bad_result  an answer that does not have the expected shape
  error       anything else (connection reset, protocol error, ...); its message is recorded
  not_sent    the deadline passed before the request could be sent

Prints latency percentiles per endpoint, the outcome counts, and the server's resident memory (RSS,
with its child processes) sampled before, during and after the load, then a JSON summary.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402 (after the path is set)

ENDPOINTS = ("generate", "classify", "similarity")
CLEAN = ("completed", "queue_full", "app_error")  # outcomes that are a proper answer from the server
OUTCOMES = ("completed", "queue_full", "app_error", "timeout", "bad_result", "error", "not_sent")
QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


# --- the server ---------------------------------------------------------------------------------
def start_server(port: int, preset: str = "demo", log_path: str | Path | None = None) -> subprocess.Popen:
    """`python app.py --preset PRESET --host 127.0.0.1 --port PORT` as a child process (its own RSS)."""
    env = {**os.environ, **QUIET_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for var in ("CLIPDEMO_SD_MODEL", "CLIPDEMO_CLIP_MODEL", "CLIPDEMO_PRESET", "CLIPDEMO_AUTH"):
        env.pop(var, None)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--preset", preset, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    finally:
        if log_path:
            log.close()


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 180.0) -> None:
    """Poll the page until it answers 200; fail early if the server process exits."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as exc:  # connection refused while it starts
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"the server at {url} did not answer within {timeout:.0f} s (last error: {last})")


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate the server we started (by its own handle), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


# --- memory ---------------------------------------------------------------------------------------
def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and its children, or None when it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return None


class RssSampler:
    """Samples rss_bytes(pid) every `interval` seconds on a background thread."""

    def __init__(self, pid: int | None, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self.pid) if self.pid else None
            if value is not None:
                self.samples.append((time.monotonic() - self._t0, value))
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.pid:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def summary(self) -> dict:
        values = [v for _, v in self.samples]
        if not values:
            return {"samples": 0}
        return {"samples": len(values), "min": min(values), "mean": int(statistics.fmean(values)), "max": max(values)}


# --- requests -------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """Files and parameters the requests send."""

    images: list[str]
    labels: str
    texts: str
    gen_prompt: str = "a red circle"
    gen_candidates: int = 4
    gen_steps: int = 20
    gen_guidance: float = 4.0
    gen_size: int = 64


def make_inputs(folder: str | Path, n_images: int = 4, **generation) -> Inputs:
    """Render a few demo-world images into `folder`; all 30 class names as the labels."""
    import numpy as np

    from demo_world import world

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_images):
        colour, shape = world.CLASSES[(7 * i + 3) % len(world.CLASSES)]
        image, _ = world.render(colour, shape, np.random.default_rng(100 + i))
        path = folder / f"{colour}-{shape}-{i}.png"
        image.save(path)
        paths.append(str(path))
    labels = ", ".join(world.class_name(c, s) for c, s in world.CLASSES)
    texts = "a red circle\na green star\na blue square"
    return Inputs([str(p) for p in paths], labels, texts, **generation)


def call(client, endpoint: str, inputs: Inputs, index: int):
    """Submit one request; returns (job, checker) where checker validates the result."""
    from gradio_client import handle_file

    if endpoint == "generate":
        n = inputs.gen_candidates
        job = client.submit(inputs.gen_prompt, "", n, inputs.gen_steps, inputs.gen_guidance, inputs.gen_size,
                            inputs.gen_size, str(1000 + index), "auto", api_name="/generate")

        def check(result):
            gallery, table = result[0], result[1]
            return len(gallery) == n and len(table["data"]) == n
    elif endpoint == "classify":
        files = [handle_file(p) for p in inputs.images[: 1 + index % 2]]
        job = client.submit(files, inputs.labels, "a photo of a {}.", 3, "auto", api_name="/classify")

        def check(result):
            label = result[0]
            return bool(label.get("label")) and len(label.get("confidences", [])) == 3
    elif endpoint == "similarity":
        files = [handle_file(p) for p in inputs.images[:2]]
        job = client.submit(files, inputs.texts, "auto", api_name="/similarity")

        def check(result):
            return len(result[1]["data"]) == 2 * len(inputs.texts.splitlines())
    else:
        raise ValueError(f"unknown endpoint {endpoint}")
    return job, check


def close_all(clients: list) -> None:
    """Stop the clients' heartbeat threads, in parallel (each close may wait about a second)."""

    def close(c):
        try:
            c.close()
        except Exception:  # noqa: BLE001 - best effort
            pass

    if clients:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(clients)) as pool:
            list(pool.map(close, clients))


def classify_exception(exc: BaseException) -> str:
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    if isinstance(exc, QueueError) or "queue is full" in str(exc).lower():
        return "queue_full"
    if isinstance(exc, AppError):
        return "app_error"
    return "error"


@dataclass
class Record:
    index: int
    endpoint: str
    outcome: str
    latency_s: float | None = None
    message: str = ""
    started_s: float | None = None  # since the start of the load


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    wall_s: float = 0.0


def run_load(url: str, inputs: Inputs, requests: int = 200, concurrency: int = 20, max_seconds: float = 600.0,
             mix: dict[str, int] | None = None, on_progress=None) -> LoadResult:
    """Send `requests` requests from `concurrency` threads; never raises for a failed request."""
    from gradio_client import Client

    mix = mix or {e: 1 for e in ENDPOINTS}
    cycle = [e for e in ENDPOINTS for _ in range(mix.get(e, 0))]
    if not cycle:
        raise ValueError("the mix sends no requests")
    # One client (one session) per worker, connected before the clock starts, so that latencies
    # measure the requests and not the clients' handshakes.
    def connect():
        try:
            return Client(url, verbose=False, download_files=False, analytics_enabled=False)
        except Exception:  # noqa: BLE001 - retried, and recorded, when a request needs it
            return None

    workers = max(1, min(concurrency, requests))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        clients = list(pool.map(lambda _: connect(), range(workers)))
    free: queue.SimpleQueue = queue.SimpleQueue()
    for c in clients:
        free.put(c)
    t0 = time.monotonic()
    deadline = t0 + max_seconds
    records: list[Record] = []

    def one(index: int) -> Record:
        slot = [free.get()]
        try:
            return send(slot, index)
        finally:
            free.put(slot[0])

    def send(slot: list, index: int) -> Record:
        endpoint = cycle[index % len(cycle)]
        start = time.monotonic()
        if start >= deadline:
            return Record(index, endpoint, "not_sent", message="the --max-seconds deadline had passed")
        job = None
        try:
            if slot[0] is None:  # its connection failed before: try again, and let a failure be recorded
                slot[0] = Client(url, verbose=False, download_files=False, analytics_enabled=False)
                clients.append(slot[0])
            job, check = call(slot[0], endpoint, inputs, index)
            result = job.result(timeout=max(0.1, deadline - time.monotonic()))
            latency = time.monotonic() - start
            if check(result):
                return Record(index, endpoint, "completed", latency, started_s=start - t0)
            return Record(index, endpoint, "bad_result", latency, f"unexpected result: {str(result)[:300]}",
                          start - t0)
        except (TimeoutError, concurrent.futures.TimeoutError) as exc:
            if job is not None:
                try:
                    job.cancel()
                except Exception:  # noqa: BLE001 - best effort
                    pass
            return Record(index, endpoint, "timeout", time.monotonic() - start,
                          f"{type(exc).__name__}: no answer before the deadline", start - t0)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none ends the run
            return Record(index, endpoint, classify_exception(exc), time.monotonic() - start,
                          f"{type(exc).__name__}: {exc}"[:500], start - t0)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        futures = [pool.submit(one, i) for i in range(requests)]
        for future in concurrent.futures.as_completed(futures):
            try:
                record = future.result()
            except BaseException as exc:  # noqa: BLE001 - should not happen; keep the run alive anyway
                record = Record(-1, "?", "error", message=f"{type(exc).__name__}: {exc}"[:500])
            records.append(record)
            if on_progress:
                on_progress(len(records), requests, record)
    wall = time.monotonic() - t0
    close_all([c for c in clients if c is not None])
    records.sort(key=lambda r: r.index)
    return LoadResult(records, wall)


# --- report ---------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(result: LoadResult, rss: dict | None = None, config: dict | None = None) -> dict:
    per_endpoint = {}
    for endpoint in sorted({r.endpoint for r in result.records}, key=lambda e: (e not in ENDPOINTS, e)):
        rs = [r for r in result.records if r.endpoint == endpoint]
        done = [r.latency_s for r in rs if r.outcome == "completed"]
        per_endpoint[endpoint] = {
            "sent": sum(r.outcome != "not_sent" for r in rs),
            **{o: sum(r.outcome == o for r in rs) for o in OUTCOMES},
            "p50_s": percentile(done, 50), "p95_s": percentile(done, 95),
            "mean_s": statistics.fmean(done) if done else None, "max_s": max(done) if done else None,
        }
    totals = {o: sum(r.outcome == o for r in result.records) for o in OUTCOMES}
    messages: dict[str, int] = {}
    for r in result.records:
        if r.outcome not in ("completed", "not_sent"):
            messages[f"{r.outcome}: {r.message}"] = messages.get(f"{r.outcome}: {r.message}", 0) + 1
    return {
        "config": config or {},
        "wall_s": result.wall_s,
        "requests": len(result.records),
        "throughput_per_s": (len(result.records) - totals["not_sent"]) / result.wall_s if result.wall_s else None,
        "totals": totals,
        "all_clean": all(r.outcome in CLEAN for r in result.records),
        "per_endpoint": per_endpoint,
        "failure_messages": messages,
        "rss": rss or {},
    }


def second_half_growth(by_progress: list[tuple[int, int | None]]) -> int | None:
    """RSS after the last request minus RSS at the half-way mark: a leak keeps climbing, a pool levels off."""
    values = [(done, v) for done, v in by_progress if v is not None]
    if len(values) < 2:
        return None
    total = values[-1][0]
    half = min(values, key=lambda item: abs(item[0] - total / 2))
    return values[-1][1] - half[1]


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def report(summary: dict) -> str:
    lines = []
    header = f"{'endpoint':<11} {'sent':>5} {'done':>5} {'q-full':>6} {'app-err':>7} {'timeout':>7} " \
             f"{'other':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7}"
    lines += [header, "-" * len(header)]
    for endpoint, s in summary["per_endpoint"].items():
        other = s["error"] + s["bad_result"]
        lines.append(f"{endpoint:<11} {s['sent']:>5} {s['completed']:>5} {s['queue_full']:>6} {s['app_error']:>7} "
                     f"{s['timeout']:>7} {other:>5} {_fmt_s(s['p50_s']):>7} {_fmt_s(s['p95_s']):>7} "
                     f"{_fmt_s(s['max_s']):>7}")
    t = summary["totals"]
    lines.append("-" * len(header))
    lines.append(f"{summary['requests']} requests in {summary['wall_s']:.1f} s "
                 f"({summary['throughput_per_s'] or 0:.2f}/s): " + ", ".join(f"{k} {v}" for k, v in t.items() if v))
    lines.append("every request completed or got a clean answer: " + ("yes" if summary["all_clean"] else "NO"))
    for message, count in summary["failure_messages"].items():
        lines.append(f"  {count} x {message}")
    rss = summary.get("rss") or {}
    if rss.get("pid"):
        during = rss.get("during") or {}
        lines.append(f"server RSS (pid {rss['pid']}, with children): started {_fmt_mb(rss.get('started'))}, "
                     f"before load {_fmt_mb(rss.get('before'))}, during mean {_fmt_mb(during.get('mean'))} / "
                     f"max {_fmt_mb(during.get('max'))} ({during.get('samples', 0)} samples), "
                     f"after {_fmt_mb(rss.get('after'))}, after settling {_fmt_mb(rss.get('after_settle'))}")
        steps = [f"{done}: {_fmt_mb(v)}" for done, v in rss.get("by_progress", [])]
        if steps:
            lines.append("server RSS by requests finished: " + ", ".join(steps))
            growth = rss.get("second_half_growth")
            lines.append(f"RSS growth over the second half of the requests: "
                         f"{'-' if growth is None else f'{growth / 2**20:+.0f} MiB'}")
    else:
        lines.append("server RSS: not measured (pass --server-pid with --url)")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------
def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in ENDPOINTS:
            raise argparse.ArgumentTypeError(f"unknown endpoint '{name}' (choose from {', '.join(ENDPOINTS)})")
        mix[name] = int(weight or 1)
    return mix


def warm_up(url: str, inputs: Inputs) -> None:
    """One request per endpoint so the models are loaded before 'before' is measured."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    try:
        for i, endpoint in enumerate(ENDPOINTS):
            job, _ = call(client, endpoint, inputs, 10_000 + i)
            job.result(timeout=300)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="an already running server (default: start `app.py --preset demo` on 127.0.0.1)")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, to sample its RSS")
    p.add_argument("--preset", default="demo", help="preset of the server this script starts (default demo)")
    p.add_argument("--port", type=int, default=0, help="port for the server this script starts (default: a free one)")
    p.add_argument("--requests", type=int, default=200, help="requests to send in all (default 200)")
    p.add_argument("--concurrency", type=int, default=20, help="threads sending at once (default 20)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="stop sending after this long; cancel what is still running (default 600)")
    p.add_argument("--mix", type=parse_mix, default=parse_mix("generate=1,classify=1,similarity=1"),
                   help="endpoint weights, e.g. generate=1,classify=2,similarity=1")
    p.add_argument("--candidates", type=int, default=4, help="images per generate request (default 4)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps per generate request (default 20)")
    p.add_argument("--no-warmup", action="store_true", help="measure 'before' without loading the models first")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait before the last RSS sample")
    p.add_argument("--json-out", help="also write the JSON summary here")
    p.add_argument("--server-log", help="append the started server's output to this file")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")
    os.environ.update(QUIET_ENV)

    proc = None
    pid = args.server_pid
    url = args.url
    work = tempfile.mkdtemp(prefix="clipdemo-load-")
    try:
        if url is None:
            port = args.port or free_port()
            url = f"http://127.0.0.1:{port}/"
            proc = start_server(port, args.preset, args.server_log or Path(work) / "server.log")
            pid = proc.pid
            print(f"started the server (pid {pid}) at {url}; waiting for it to answer...", file=sys.stderr)
            try:
                wait_ready(url, proc)
            except (RuntimeError, TimeoutError) as exc:
                log = Path(args.server_log or Path(work) / "server.log")
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                print(f"error: {exc}\n{tail}", file=sys.stderr)
                return 2
        rss = {"pid": pid, "started": rss_bytes(pid) if pid else None}
        inputs = make_inputs(Path(work) / "images", gen_candidates=args.candidates, gen_steps=args.steps)
        if not args.no_warmup:
            print("warming up (one request per endpoint)...", file=sys.stderr)
            try:
                warm_up(url, inputs)
            except Exception as exc:  # noqa: BLE001 - the load shows what is wrong; go on
                print(f"warning: the warm-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        rss["before"] = rss_bytes(pid) if pid else None
        print(f"sending {args.requests} requests, {args.concurrency} at a time...", file=sys.stderr)

        rss["by_progress"] = []  # (requests finished, RSS): flat means no climb from one tenth to the next

        def progress(done, total, record):
            if done % max(1, total // 10) == 0 or done == total:
                rss["by_progress"].append((done, rss_bytes(pid) if pid else None))
                print(f"  {done}/{total} finished", file=sys.stderr)

        with RssSampler(pid) as sampler:
            result = run_load(url, inputs, args.requests, args.concurrency, args.max_seconds, args.mix, progress)
        rss["during"] = sampler.summary()
        rss["second_half_growth"] = second_half_growth(rss["by_progress"])
        rss["after"] = rss_bytes(pid) if pid else None
        time.sleep(args.settle)
        rss["after_settle"] = rss_bytes(pid) if pid else None
        rss["alive_after"] = proc.poll() is None if proc else (rss["after_settle"] is not None if pid else None)
        config = {"url": url, "requests": args.requests, "concurrency": args.concurrency,
                  "max_seconds": args.max_seconds, "mix": args.mix, "candidates": args.candidates,
                  "steps": args.steps, "warmup": not args.no_warmup}
        summary = summarize(result, rss, config)
        summary["records"] = [asdict(r) for r in result.records]
        print(report(summary))
        compact = {k: v for k, v in summary.items() if k != "records"}
        print(json.dumps(compact, indent=2))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(summary, indent=2))
        return 0 if summary["all_clean"] else 1
    finally:
        if proc is not None:
            stop_server(proc)


if __name__ == "__main__":
    sys.exit(main())
