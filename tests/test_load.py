"""A short load test: concurrent mixed requests against `python app.py --preset demo` in a subprocess.

Every request must either complete or get a clean answer from the server (its queue-full message or an
app error), and the server must still be alive and answer afterwards. No timing assertions.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from clipdemo.config import PRESETS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (Path(PRESETS["demo"].sd_model).is_dir() and Path(PRESETS["demo"].clip_model).is_dir()),
    reason="the demo models are not in assets/models (run scripts/train_demo_models.py)",
)


def _load_script():
    spec = importlib.util.spec_from_file_location("clipdemo_load_test", ROOT / "scripts" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


load = _load_script()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("load-server") / "server.log"
    port = load.free_port()
    proc = load.start_server(port, "demo", log)
    url = f"http://127.0.0.1:{port}/"
    try:
        load.wait_ready(url, proc, timeout=120)
        yield url, proc, log
    finally:
        load.stop_server(proc)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    # Small generate requests keep the test short; the full script uses the preset's defaults.
    return load.make_inputs(tmp_path_factory.mktemp("load-images"), n_images=2, gen_candidates=2, gen_steps=8)


def test_concurrent_mixed_requests_all_get_an_answer(server, inputs):
    url, proc, log = server
    rss_before = load.rss_bytes(proc.pid)
    with load.RssSampler(proc.pid) as sampler:
        result = load.run_load(url, inputs, requests=24, concurrency=20, max_seconds=150)
    summary = load.summarize(result, {"pid": proc.pid, "before": rss_before, "during": sampler.summary(),
                                      "after": load.rss_bytes(proc.pid)})
    print(load.report(summary))

    assert len(result.records) == 24
    assert {r.endpoint for r in result.records} == {"generate", "classify", "similarity"}
    unclean = [r for r in result.records if r.outcome not in load.CLEAN]
    assert not unclean, f"requests without a clean answer: {unclean}\nserver log:\n{log.read_text()[-3000:]}"
    for r in result.records:
        if r.outcome != "completed":
            assert r.message, r  # a clean error carries its message
    assert summary["totals"]["completed"] > 0

    # The server survived and still answers.
    assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    try:
        label, *_ = client.predict([handle_file(inputs.images[0])], inputs.labels, "a photo of a {}.", 3,
                                   api_name="/classify")
    finally:
        client.close()
    assert label["label"] and len(label["confidences"]) == 3


def test_percentiles_and_report_shape():
    assert load.percentile([], 50) is None
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    records = [load.Record(0, "generate", "completed", 1.0), load.Record(1, "classify", "queue_full", 0.1, "QueueError: Queue is full!"),
               load.Record(2, "similarity", "error", 0.2, "ConnectError: refused")]
    summary = load.summarize(load.LoadResult(records, 2.0))
    assert summary["totals"]["completed"] == 1 and summary["totals"]["queue_full"] == 1
    assert not summary["all_clean"]
    assert summary["per_endpoint"]["generate"]["p50_s"] == 1.0
    text = load.report(summary)
    assert "generate" in text and "error: ConnectError: refused" in text


def test_second_half_growth_separates_a_levelled_pool_from_a_climb():
    levelled = [(20, 700), (100, 850), (120, 860), (200, 855)]
    climbing = [(20, 700), (100, 800), (200, 900)]
    assert load.second_half_growth(levelled) == 5
    assert load.second_half_growth(climbing) == 100
    assert load.second_half_growth([(100, None), (200, 5)]) is None
