"""The benchmarks' API server: ``gridmap serve`` (or a peer server) on the app factory, started as a process
group on a loopback port and stopped (or SIGKILLed) as a whole."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVERS = ("gridmap", "gunicorn", "granian", "gunicorn-asgi", "uvicorn")


def server_cmd(kind: str, port: int, workers: int) -> list[str]:
    """The command that serves the app factory with ``workers`` processes on 127.0.0.1:``port``."""
    quiet = ["--log-level", "warning"]
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), *quiet, "--no-access-log"]
    if kind == "gunicorn":  # uvicorn's own gunicorn worker is deprecated in favour of the uvicorn-worker package
        return [sys.executable, "-m", "gunicorn", "api.app:create_app()", "-k", "uvicorn_worker.UvicornWorker",
                "-w", str(workers), "-b", f"127.0.0.1:{port}", *quiet, "--graceful-timeout", "30"]
    if kind == "gunicorn-asgi":  # gunicorn's own ASGI worker (gunicorn >= 25)
        return [sys.executable, "-m", "gunicorn", "api.app:create_app()", "-k", "gunicorn.workers.gasgi.ASGIWorker",
                "-w", str(workers), "-b", f"127.0.0.1:{port}", *quiet, "--graceful-timeout", "30"]
    if kind == "granian":  # a dead worker is respawned only when asked to
        return [str(Path(sys.executable).with_name("granian")), "--interface", "asgi", "--factory", "--host",
                "127.0.0.1", "--port", str(port), "--workers", str(workers), "--respawn-failed-workers",
                *quiet, "api.app:create_app"]
    return [sys.executable, "-m", "api.serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
            str(workers), *quiet, "--no-access-log"]


def children(pid: int) -> list[int]:
    """The worker processes of server ``pid``: its children, less multiprocessing's resource tracker."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmdline = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and b"resource_tracker" not in cmdline:
            out.append(int(d))
    return sorted(out)


class Server:
    """The API on ``db`` with ``workers`` processes; ``env``: more settings (e.g. ``GRIDMAP_ARGON2_CONCURRENCY``).
    ``with Server(...)`` starts and stops it."""

    def __init__(self, port: int, workers: int, secret: str, kind: str = "gridmap", *, db: str,
                 env: dict[str, str] | None = None) -> None:
        self.port, self.workers, self.secret, self.kind, self.db = port, workers, secret, kind, db
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.cold_s = float("nan")

    def start(self) -> None:
        """Start the server and wait for /health; ``cold_s``: seconds from the command to the first 200."""
        env = dict(os.environ, GRIDMAP_DB_NAME=self.db, GRIDMAP_SECRET_KEY=self.secret,
                   GRIDMAP_ESCALATION_INTERVAL_S="0", **self.env)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(server_cmd(self.kind, self.port, self.workers), cwd=ROOT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    self.cold_s = time.perf_counter() - t0
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"the API ({self.kind}) exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise SystemExit(f"the API ({self.kind}) did not come up in 600 s")

    def workers_now(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill9()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
