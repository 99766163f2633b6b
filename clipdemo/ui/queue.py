"""Gradio's queue, refusing a request only when the wait it would face passes a bound, and saying that wait.

Gradio refuses by count (`max_size`), whatever the work: 64 visitors pressing Classify at once (a few seconds of
work) would be turned away while two long generations would not. Here a request is admitted unless the time until
its answer, estimated from the average run time Gradio keeps per endpoint, passes `max_wait_s`. A refused visitor
gets one sentence with the expected wait, as an error of that request (a bare 503 reaches both the page and
gradio_client as "busy" with no figure). FLOOD_SIZE still caps the waiting requests, to bound the memory a flood
of requests could hold before any has run.
"""

from __future__ import annotations

import sys
import time
from asyncio import Queue as AsyncQueue

from gradio import queueing, route_utils
from gradio.server_messages import ProcessCompletedMessage

FLOOD_SIZE = 4096  # waiting requests at most, whatever their expected wait


def wait_words(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} second" + ("" if round(seconds) == 1 else "s")
    return f"{seconds / 60:.0f} minutes"


class WaitBoundQueue(queueing.Queue):
    """A queue.Queue whose push admits by expected wait (set `max_wait_s` after construction)."""

    max_wait_s: float = 600.0

    def expected_wait(self, fn) -> float | None:
        """Seconds until a request for `fn` pushed now would be answered; None before `fn` has run once."""
        times = self.process_time_per_fn
        if fn not in times:
            return None
        waiting = self.event_queue_per_concurrency_id.get(fn.concurrency_id)
        limit = waiting.concurrency_limit if waiting is not None else None
        if waiting is None or not limit:
            return times[fn].avg_time  # no queue in front of it
        now = time.time()
        # 1. What the running requests still need, 2. the waiting ones, shared by the workers, 3. its own run.
        running = sum(max(start + times[f].avg_time - now, 0.0) if f in times else 0.0
                      for f, starts in waiting.start_times_per_fn.items() for start in starts)
        queued = sum(times[event.fn].avg_time for event in waiting.queue if event.fn in times)
        return (running + queued) / limit + times[fn].avg_time

    async def push(self, body, request, username):
        fn = route_utils.get_fn(self.blocks, None, body) if body.fn_index is not None else None
        wait = self.expected_wait(fn) if fn is not None else None
        if wait is None or wait <= self.max_wait_s:
            return await super().push(body, request, username)
        print(f"clipdemo: /{fn.api_name} refused, expected wait {wait:.0f} s", file=sys.stderr, flush=True)
        return await self.refuse(body, request, username, fn, busy_message(wait, self.max_wait_s))

    async def refuse(self, body, request, username, fn, message: str):
        """Answer the request at once with `message` as its error, without queueing it."""
        event = queueing.Event(body.session_hash, fn, request, username)
        body.session_hash = body.session_hash or event.session_hash
        async with self.pending_message_lock:
            if body.session_hash not in self.pending_messages_per_session:
                self.pending_messages_per_session[body.session_hash] = AsyncQueue()
            self.pending_event_ids_session.setdefault(body.session_hash, set()).add(event._id)
        self.send_message(event, ProcessCompletedMessage(output={"error": message, "visible": True,
                                                                 "title": "Server busy"},
                                                         title="Server busy", success=False))
        return True, event._id, "success"


def busy_message(wait_s: float, max_wait_s: float) -> str:
    return (f"The server is busy: the expected wait is about {wait_words(wait_s)}, over this server's limit of "
            f"{wait_words(max_wait_s)}. Please try again in a few minutes.")


def install(demo, max_wait_s: float) -> None:
    """Give `demo` (after demo.queue()) a WaitBoundQueue with the same settings."""
    from gradio.utils import is_zero_gpu_space

    old = demo._queue
    flood = old.max_size if is_zero_gpu_space() else FLOOD_SIZE  # ZeroGPU's own bound (one waiting) stands
    queue = WaitBoundQueue(live_updates=old.live_updates, concurrency_count=old.max_thread_count,
                           update_intervals=old.update_intervals, max_size=flood, blocks=demo,
                           default_concurrency_limit=old.default_concurrency_limit)
    queue.max_wait_s = max_wait_s
    demo._queue = queue
