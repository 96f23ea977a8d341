"""Serve the API from several uvicorn worker processes, with the connections dealt out evenly among them.

    python -m api.serve --host 127.0.0.1 --port 8000 --workers 2

Why not ``uvicorn --workers N``: its workers share one listening socket, and the worker that wakes up first
accepts every connection waiting in the queue (uvloop accepts until the queue is empty). A burst of
keep-alive connections therefore lands on one process — 16 connections opened at once went 16/0, 15/1,
13/3 over two workers — and that process, one core at most because of the GIL, serves all of them while the
other idles: its requests queue (the tail of ``scripts/bench_api.py``). A socket per worker
(``SO_REUSEPORT``) leaves it to a hash of the client's address: 12/4, 11/5 and 8/8 in the same test.

Compared again with maintained servers on 2026-12-06 (``scripts/bench_api.py --compare``, 3 interleaved
rounds on the shared 2-core machine at load 6-12; the table is in docs/benchmarks.md). gunicorn with
uvicorn-worker's workers shares one socket and stacks connections the same way (16:0 in three of nine
phases): half the reads per second, twice the tail, and a worker's death cut all 16 connections (here: 8).
granian was 10-16 % ahead on reads and intake and level on intake + dispatch, within the noise, but: its
socket per worker loses a dead worker's queued connections (26-32 requests cut; here the queue is the
supervisor's, and a connection goes only to a live worker), it replaces a dead worker only when asked
(``--respawn-failed-workers``) and then respawns forever a worker whose start fails later than 5.5 s in
(here: exit 1, and ``make demo`` says why), and it reports no start-up stages. So this stays, about 300
lines; re-measure when granian keeps queued connections and stops on a late start failure.

Here the supervisor process accepts, and hands each new connection (its file descriptor, over a Unix
socket) to the next worker in turn that is up; the worker serves it with uvicorn's own HTTP protocol, as if
it had accepted it. A connection costs the supervisor one accept and one ``sendmsg``; requests do not pass
through it. The supervisor listens only once every worker has built its app (the lifespan: road graph,
connection pool, compiled kernels), replaces a worker that dies, and stops them all, gracefully, on SIGTERM
or SIGINT.

Start-up: before it starts the workers, the supervisor compiles the routing kernels once, in a child process
(:func:`gridmap.services.warmup.compile_kernels`; numba caches them on disk, so later starts load them in a
second), instead of every worker compiling the same kernels at the same time on the first start; when they
are compiled already (``gridmap setup`` did it, or an earlier start) it starts the workers at once. It reports
each stage of the start ("compiling the routing kernels", "starting 2 workers", "worker 1 of 2 ready",
"ready") on stderr and, when ``GRIDMAP_PROGRESS_FILE`` names a file, as JSON lines appended to it:
``scripts/serve_background.py`` follows them to wait as long as the start makes progress.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("gridmap.api.serve")
APP = "api.app:create_app"
#: The workers' pids, shared with them: multiprocessing's Array("i", n, lock=False) (typeshed types it Any)
SharedPids = Any
BACKLOG = 2048
PROGRESS_ENV = "GRIDMAP_PROGRESS_FILE"


class Progress:
    """Start-up stages, on stderr and (``path``) as JSON lines ``{"t", "pid", "state", "stage"}``.

    ``state`` is "starting", then "ready" or "failed". Each line is one ``write`` in append mode, shorter than
    PIPE_BUF, so lines from several processes never interleave.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path if path is not None else os.environ.get(PROGRESS_ENV) or None

    def __call__(self, stage: str, state: str = "starting") -> None:
        print(f"gridmap serve: {stage}", file=sys.stderr, flush=True)
        if not self.path:
            return
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "state": state, "stage": stage},
                          ensure_ascii=False)
        with contextlib.suppress(OSError), open(self.path, "a", encoding="utf-8") as f:
            f.write(line[:3000] + "\n")


def _compile(progress_path: str | None) -> None:
    """Child process: compile (or load from the disk cache) the routing kernels, and say how it went."""
    from gridmap.services.warmup import compile_kernels

    Progress(progress_path)(compile_kernels().message)


def compile_kernels_first(progress: Progress, ctx: SpawnContext | None = None,
                          should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Compile the routing kernels in a child process before any worker starts; False if it failed (the
    workers then compile what they need themselves, as before) or ``should_stop()`` became true."""
    from gridmap.services.warmup import kernels_cached

    if kernels_cached():
        progress("routing kernels: compiled already (numba's disk cache)")
        return True
    ctx = ctx or mp.get_context("spawn")
    progress("compiling the routing kernels (first start only: a minute or more on a busy machine; "
             "later starts load them from the disk cache)")
    p = ctx.Process(target=_compile, args=(progress.path,), name="gridmap-compile")
    p.start()
    while p.is_alive():
        if should_stop():
            p.terminate()
            p.join()
            return False
        p.join(0.2)
    if p.exitcode != 0:
        log.warning("compiling the routing kernels failed (exit code %s); the workers will compile them",
                    p.exitcode)
        progress(f"compiling the routing kernels failed (exit code {p.exitcode}); the workers compile them")
        return False
    return True


class _Worker(uvicorn.Server):
    """A uvicorn server without a listening socket of its own: it serves the connections it is handed."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, ready: SharedPids, slot: int) -> None:
        super().__init__(config)
        self.channel, self.ready, self.slot = channel, ready, slot

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no listener
        loop = asyncio.get_running_loop()
        config = self.config

        def protocol() -> asyncio.Protocol:  # what uvicorn's own listener would build for each connection
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]  # typed as asyncio.Protocol; uvicorn's HTTP protocols take these
                                              app_state=self.lifespan.state, _loop=loop)

        def receive() -> None:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.channel, 1, 1)
            except (BlockingIOError, InterruptedError):
                return
            if not msg and not fds:  # the supervisor is gone
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                loop.create_task(loop.connect_accepted_socket(protocol, socket.socket(fileno=fd)))

        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), receive)
        self.ready[self.slot] = os.getpid()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=sockets)


def _work(app: str, channel: socket.socket, ready: SharedPids, slot: int, options: dict[str, Any]) -> None:
    config = uvicorn.Config(app, factory=True, **options)
    _Worker(config, channel, ready, slot).run()


class Supervisor:
    """Accepts on (host, port) and deals the connections out to ``workers`` worker processes in turn.

    ``app`` is the app factory (``module:callable``) each worker runs.
    """

    def __init__(self, host: str, port: int, workers: int, options: dict, app: str = APP,
                 progress: Progress | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.host, self.port, self.n, self.options, self.app = host, port, workers, options, app
        self.progress = progress or Progress()
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Array("i", workers, lock=False)  # a worker's pid once it serves, else 0
        self.procs: list = [None] * workers
        self.channels: list[socket.socket | None] = [None] * workers
        self.next = 0
        self.stopping = False

    def _spawn(self, slot: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ready[slot] = 0
        p = self.ctx.Process(target=_work, args=(self.app, theirs, self.ready, slot, self.options), name=f"gridmap-api-{slot}")
        p.start()
        theirs.close()
        old = self.channels[slot]
        if old is not None:
            old.close()
        self.procs[slot], self.channels[slot] = p, mine

    def _hand_over(self, conn: socket.socket) -> bool:
        for _ in range(self.n):
            slot, self.next = self.next, (self.next + 1) % self.n
            channel = self.channels[slot]  # (a ready slot has one)
            if channel is not None and self.ready[slot] and self.procs[slot].is_alive():
                try:
                    socket.send_fds(channel, [b"c"], [conn.fileno()])
                    return True
                except OSError:  # that worker just went away
                    continue
        return False

    def run(self) -> int:
        """Listen, start the workers, deal connections out until SIGTERM/SIGINT; returns the exit status."""
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))  # fails here, at once, if the address is taken
        except OSError:
            listener.close()
            raise
        wake_r, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())

        def stop(_signum: int, _frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            compile_kernels_first(self.progress, self.ctx, lambda: self.stopping)
            if self.stopping:
                return 0
            if not self._start_workers():
                return 1
            listener.listen(BACKLOG)
            self.progress(f"ready: listening on http://{self.host}:{self.port}", "ready")
            self._serve(listener, wake_r)
        finally:
            listener.close()
            status = self._stop_workers()
            signal.set_wakeup_fd(-1)
        return status

    def _start_workers(self) -> bool:
        """Start every worker and wait until each has built its app; False if one died while starting."""
        self.progress(f"starting {self.n} worker process(es): road graph, teams, connection pool")
        for slot in range(self.n):
            self._spawn(slot)
        announced: set[int] = set()

        def announce() -> None:
            for slot in range(self.n):
                if self.ready[slot] and slot not in announced:
                    announced.add(slot)
                    self.progress(f"worker {len(announced)} of {self.n} ready (pid {self.ready[slot]})")

        while not self.stopping and not all(self.ready):
            dead = [p for p in self.procs if not p.is_alive()]
            if dead:
                log.error("worker %s exited with %s while starting; stopping", dead[0].name, dead[0].exitcode)
                self.progress(f"worker {dead[0].name} exited with {dead[0].exitcode} while starting; see the "
                              "log", "failed")
                return False
            announce()
            time.sleep(0.05)
        announce()
        return True

    def _serve(self, listener: socket.socket, wake_r: socket.socket) -> None:
        """Deal the accepted connections out until stopped, replacing any worker that exits."""
        listener.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "accept")
        sel.register(wake_r, selectors.EVENT_READ, "signal")
        while not self.stopping:
            for slot, p in enumerate(self.procs):
                if not p.is_alive():
                    log.warning("worker %s exited with %s; starting a new one", p.name, p.exitcode)
                    self._spawn(slot)
            for key, _ in sel.select(timeout=0.5):
                if key.data == "signal":
                    with contextlib.suppress(BlockingIOError):
                        wake_r.recv(64)
                    continue
                self._accept_all(listener)

    def _accept_all(self, listener: socket.socket) -> None:
        """Accept every waiting connection and hand each to a worker (closed here if none can take it)."""
        while True:
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            with conn:
                if not self._hand_over(conn):
                    log.error("no worker is up to take a connection; closing it")

    def _stop_workers(self) -> int:
        """SIGTERM every worker, wait up to 30 s each (then kill it: exit status 1), close the channels."""
        status = 0
        for p in self.procs:
            if p is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            if p is not None:
                p.join(30)
                if p.is_alive():
                    p.kill()
                    p.join()
                    status = 1
        for c in self.channels:
            if c is not None:
                c.close()
        return status


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 2, *, app: str = APP, **options: Any) -> int:
    """Serve the app factory ``app`` with ``workers`` processes until SIGTERM/SIGINT; returns the exit status.

    ``options`` go to :class:`uvicorn.Config` (``log_level``, ``access_log``, ...). uvicorn's own
    X-Forwarded-For handling is off (it believes any request from 127.0.0.1): the app decides whom to
    believe, from GRIDMAP_TRUSTED_PROXIES (api/deps.py).
    """
    options.setdefault("proxy_headers", False)
    progress = Progress()
    if workers == 1:
        compile_kernels_first(progress)
        progress("starting the API in this process: road graph, teams, connection pool")
        uvicorn.run(app, factory=True, host=host, port=port, **options)
        return 0
    return Supervisor(host, port, workers, options, app, progress).run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", default=APP, help=f"the app factory, module:callable (default {APP})")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--no-access-log", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    return serve(args.host, args.port, args.workers, app=args.app, log_level=args.log_level,
                 access_log=not args.no_access_log)


if __name__ == "__main__":
    sys.exit(main())
