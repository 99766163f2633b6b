"""python -m benchmarks soak [--rounds N]: a server that runs for a long time, its disk, files and memory.

Starts `python app.py --preset demo` on 127.0.0.1 with its log in a file and TMPDIR / GRADIO_TEMP_DIR in one fresh
folder, then drives rounds of four concurrent visitors (generate, classify an upload, similarity, search a zip),
with one burst of 64 visitors pressing Classify at once half way. A round starts every `--interval` seconds, so
the load is steady (Gradio's copies are bounded by age: what they hold follows the request rate). After each round
it reads the temp folder's bytes and files and the server's RSS. The retention bounds are scaled down
(`--min-age`, `--max-mb`) so that a run of minutes reaches them; the figure of merit is the growth over the last
half: the mean of the last twentieth of the rounds against the mean of the twentieth that ends half way (the
folder rises and falls as pruning runs, so single rounds are noisy).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tests.servers import free_port

from .common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from load_test import call, make_inputs, rss_bytes, wait_ready  # noqa: E402


def folder_usage(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def window_growth(rows: list[dict], key: str) -> float:
    """(mean of the last n/20 rounds - mean of the n/20 rounds ending half way) / the latter."""
    n = len(rows)
    w = max(1, n // 20)
    half = sum(r[key] for r in rows[n // 2 - w:n // 2]) / w
    return (sum(r[key] for r in rows[n - w:]) / w - half) / half


def visit(client, endpoint: str, inputs, index: int, zip_path: str) -> str:
    """One visitor's request: 'ok', or the kind of answer it got instead."""
    from gradio_client import handle_file

    try:
        if endpoint == "search":
            client.predict(handle_file(zip_path), "a red circle", k=4, api_name="/search")
            return "ok"
        job, check = call(client, endpoint, inputs, index)
        return "ok" if check(job.result(timeout=300)) else "wrong"
    except Exception as exc:  # noqa: BLE001 - every answer is counted, none is lost
        text = str(exc)
        return "queue full" if "Queue is full" in text else f"error: {text[:80]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--interval", type=float, default=4.5, help="seconds from one round's start to the next")
    parser.add_argument("--min-age", type=float, default=30.0, help="seconds a run is kept at least")
    parser.add_argument("--max-mb", type=float, default=20.0, help="the app's temp folders' size bound")
    parser.add_argument("--max-age", type=float, default=300.0, help="seconds after which Gradio's copies go")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    # 1. A server of its own, with its temp files in one fresh folder and its log in a file.
    work = Path(tempfile.mkdtemp(prefix="clipdemo-soak-"))
    temp = work / "tmp"
    temp.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio"),
           "CLIPDEMO_RUNS_MIN_AGE_HOURS": str(args.min_age / 3600), "CLIPDEMO_RUNS_MAX_GB": str(args.max_mb / 1024),
           "CLIPDEMO_RUNS_MAX_AGE_HOURS": str(args.max_age / 3600),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = work / "server.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--preset", "demo", "--host", "127.0.0.1",
                                   "--port", str(port)], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    rows, answers, overruns = [], {}, 0
    try:
        wait_ready(url, server)
        from gradio_client import Client

        inputs = make_inputs(work / "inputs", gen_candidates=4, gen_steps=20)
        zip_path = str(work / "images.zip")
        with zipfile.ZipFile(zip_path, "w") as zf:
            for path in inputs.images:
                zf.write(path, Path(path).name)
        clients = [Client(url, verbose=False) for _ in range(4)]
        burst = [Client(url, verbose=False) for _ in range(16)]  # 64 visitors at once, four pages per client
        endpoints = ("generate", "classify", "similarity", "search")
        start = time.monotonic()
        # 2. Rounds of four visitors at once; one burst of 64 half way.
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            for round_no in range(1, args.rounds + 1):
                due = start + (round_no - 1) * args.interval
                overruns += time.monotonic() > due + 0.5
                time.sleep(max(0.0, due - time.monotonic()))
                jobs = [pool.submit(visit, c, e, inputs, round_no, zip_path) for c, e in zip(clients, endpoints)]
                if round_no == args.rounds // 2:
                    jobs += [pool.submit(visit, burst[i % len(burst)], "classify", inputs, 1000 + i, zip_path)
                             for i in range(64)]
                for job in jobs:
                    answer = job.result()
                    answers[answer] = answers.get(answer, 0) + 1
                disk, files = folder_usage(temp)
                gradio_disk, gradio_files = folder_usage(temp / "gradio")
                rows.append({"round": round_no, "seconds": round(time.monotonic() - start, 1), "disk_bytes": disk,
                             "files": files, "gradio_bytes": gradio_disk, "gradio_files": gradio_files,
                             "rss_bytes": rss_bytes(server.pid)})
                print(f"round {round_no:4d}  disk {disk / 2**20:7.2f} MiB  files {files:5d}  "
                      f"rss {rows[-1]['rss_bytes'] / 2**20:7.1f} MiB", flush=True)
        for c in clients + burst:
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    # 3. Growth over the last half, as a share of the level half way.
    growth = {key: window_growth(rows, key) for key in ("disk_bytes", "files", "rss_bytes")}
    log_lines = log.read_text(errors="replace").splitlines()
    cpu = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:8] if ":" in line)
    family = {k.strip(): v.strip() for k, v in cpu.items() if k.strip() in ("cpu family", "model", "model name")}
    data = {"machine": {**machine(), **family}, "rounds": args.rounds, "interval_s": args.interval,
            "late_rounds": overruns,
            "bounds": {"min_age_s": args.min_age, "max_mb": args.max_mb, "max_age_s": args.max_age},
            "answers": answers, "growth_last_half": growth, "rows": rows,
            "log": {"lines": len(log_lines), "bytes": log.stat().st_size,
                    "progress_bar_lines": sum("it/s" in line for line in log_lines)}}
    print(f"answers {answers}; {overruns} rounds started late; growth over the last half: disk {growth['disk_bytes']:+.1%}, files "
          f"{growth['files']:+.1%}, RSS {growth['rss_bytes']:+.1%}; log {len(log_lines)} lines")
    write_result("soak", data, Path(args.out))
    return 0
