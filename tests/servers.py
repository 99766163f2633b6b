"""Live Gradio servers for the tests: 127.0.0.1 only, on a free port."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(demo, port: int | None = None, **kwargs) -> str:
    """Start `demo` in the background on 127.0.0.1 (a free port unless named) and return its URL; the caller
    closes it."""
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port or free_port(), prevent_thread_lock=True,
                            quiet=True, **kwargs)
    return url
