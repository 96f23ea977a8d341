"""The tests' one way to serve an app for real: uvicorn in a thread on a free loopback port (the live feed,
the browser, a cut database connection and a worker crash all need a real server, not the TestClient)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    """A loopback port nobody listens on (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app: Any, *, port: int | None = None, log_level: str = "warning", start_s: float = 60.0) -> Iterator[int]:
    """Serve ``app`` (on ``port``, or a free one) until the block ends; yields the port. Fails the test if
    uvicorn does not start."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_s
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
