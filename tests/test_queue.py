"""The server's queue: a burst is served whatever its count; a refusal comes only past the wait bound, in words."""

import concurrent.futures
import re
import time

import gradio as gr
import pytest

from clipdemo.ui.queue import WaitBoundQueue, install
from tests.servers import launch_local

RUN_S = 0.25  # one request's work


def slow_echo(text: str) -> str:
    time.sleep(RUN_S)
    return text.upper()


@pytest.fixture()
def served():
    with gr.Blocks() as demo:
        box, out = gr.Textbox(label="text"), gr.Textbox(label="upper")
        box.submit(slow_echo, box, out, api_name="echo", concurrency_limit=1)
    demo.queue()
    install(demo, max_wait_s=60.0)
    url = launch_local(demo)
    yield demo, url
    demo.close()


def burst(url: str, n: int) -> list[str]:
    """n requests at once from n visitors; each one's answer or error text."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(n)]
    jobs = [c.submit(f"v{i}", api_name="/echo") for i, c in enumerate(clients)]

    def answer(job):
        try:
            return job.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - the refusal is the answer under test
            return f"error: {exc}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(answer, jobs))
    for c in clients:
        c.close()
    return answers


def test_the_queue_is_the_servers_own(served):
    demo, _ = served
    assert isinstance(demo._queue, WaitBoundQueue) and demo._queue.max_wait_s == 60.0


def test_a_burst_within_the_wait_bound_is_answered_in_full(served):
    _, url = served
    answers = burst(url, 24)  # about 6 s of work on one worker: a count-bounded queue of 16 refuses some
    assert answers == [f"V{i}" for i in range(24)]


def test_past_the_wait_bound_a_visitor_is_told_the_expected_wait(served):
    demo, url = served
    assert burst(url, 1) == ["V0"]  # one run, so the endpoint has an average run time
    demo._queue.max_wait_s = 2.5 * RUN_S  # two runs' worth
    answers = burst(url, 8)
    served_ok = [a for a in answers if not a.startswith("error")]
    refused = [a for a in answers if a.startswith("error")]
    assert 1 <= len(served_ok) <= 3 and refused
    for text in refused:
        found = re.search(r"The server is busy: the expected wait is about (\d+) seconds?, over this server's "
                          r"limit of 1 second\b", text)  # 0.625 s, rounded
        assert found, text
        assert int(found.group(1)) >= 1
