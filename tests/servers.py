"""The tests' one way to serve an app for real: uvicorn in a thread on a free loopback port (the live feed,
the browser, a cut database connection and a worker crash all need a real server, not the TestClient)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
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


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until a server started as a process answers ``GET /health`` with 200; fail the test if the process
    exits first (with its stderr, when it was piped) or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the server exited with {proc.returncode}: {err}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server at {base} did not answer /health in {timeout:.0f} s")
