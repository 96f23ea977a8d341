"""``python -m api.serve``: the supervisor deals connections out evenly to its workers (uvicorn's, gunicorn's
shared socket lets one worker take a whole burst), replaces a worker that dies, loses no acknowledged report
when one does, stops when a worker cannot start, and stops cleanly on SIGTERM. These are the behaviours for
which it was kept over gunicorn and granian (scripts/bench_api.py --compare, docs/benchmarks.md)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.api.conftest import PASSWORD
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.db]


def _children(pid: int) -> list[int]:
    """The worker processes of supervisor ``pid`` (not multiprocessing's resource tracker)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                cmdline = Path(f"/proc/{d}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and b"spawn_main" in cmdline:
                out.append(int(d))
    return out


def _established(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01":
                inodes.add(int(f[9]))
    return inodes


def _held(pid: int, inodes: set[int]) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and int(link[8:-1]) in inodes:
            n += 1
    return n


def _get_health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def served(api_engine, api_settings):
    port = free_port()
    env = dict(os.environ, GRIDMAP_DATABASE_URL=api_engine.url.render_as_string(hide_password=False),
               GRIDMAP_SECRET_KEY=secrets.token_urlsafe(48), GRIDMAP_ESCALATION_INTERVAL_S="0")
    proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--port", str(port), "--workers", "2",
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env,
                            start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_connections_are_dealt_out_evenly_and_a_dead_worker_is_replaced(served):
    """16 connections opened at once are held 8 and 8 by the two workers; a SIGKILLed worker is replaced, and
    the new one is handed connections once it is up."""
    proc, port = served
    workers = _children(proc.pid)
    assert len(workers) == 2
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # a burst, all at once
    try:
        assert all(b" 200 " in _get_health(c).split(b"\r\n")[0] for c in conns)
        held = sorted(_held(w, _established(port)) for w in workers)
        assert held == [8, 8]
    finally:
        for c in conns:
            c.close()
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = _children(proc.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no replacement worker: {_children(proc.pid)}")
    replacement = next(w for w in now if w != workers[1])
    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while time.monotonic() < deadline and replacement not in seen:  # it gets connections once it is up
        with socket.create_connection(("127.0.0.1", port)) as c:
            assert b" 200 " in _get_health(c).split(b"\r\n")[0]
            seen |= {w for w in now if _held(w, _established(port))}
        time.sleep(0.1)
    assert replacement in seen


def test_sigterm_stops_the_supervisor_and_its_workers(served):
    """SIGTERM to the supervisor: it exits 0, its workers are gone, and nothing listens on the port."""
    proc, port = served
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    for w in workers:
        assert not Path(f"/proc/{w}").exists() or "zombie" in Path(f"/proc/{w}/status").read_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_worker_that_cannot_start_stops_the_supervisor(api_engine, tmp_path):
    """A worker whose app refuses to start (a weak secret) stops the supervisor with a non-zero exit and the
    reason on its output, instead of being respawned forever."""
    port = free_port()
    env = dict(os.environ, GRIDMAP_DATABASE_URL=api_engine.url.render_as_string(hide_password=False),
               GRIDMAP_SECRET_KEY="changeme")  # a weak secret: the app refuses to start
    proc = subprocess.run([sys.executable, "-m", "api.serve", "--port", str(port), "--workers", "2",
                           "--log-level", "warning"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0
    assert "secret" in (proc.stderr + proc.stdout).lower()


def test_no_acknowledged_event_is_lost_when_a_worker_is_killed(served, api_engine, users):
    """Reports pour in over 6 connections; one worker is SIGKILLed mid-way. Every report answered 201/200 is in
    the database; a report whose answer was lost, sent again with its external id, is there exactly once."""
    proc, port = served
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/v1/auth/token", json={"username": "intake", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    with api_engine.connect() as conn:
        points = [tuple(r) for r in conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings ORDER BY code "
            "LIMIT 300"))]
    run = secrets.token_hex(4)
    acknowledged: dict[str, int] = {}
    lost: list[dict] = []
    lock = threading.Lock()
    killed = threading.Event()

    def body(i: int) -> dict:
        x, y = points[i % len(points)]
        return {"channel": "hotline_12345", "external_id": f"KILL-{run}-{i:04d}", "category": "environment",
                "location": {"lon": x, "lat": y}}

    def sender(k: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for i in range(k, 240, 6):
                b = body(i)
                try:
                    r = http.post("/v1/events", json=b)
                except httpx.HTTPError:
                    with lock:
                        lost.append(b)
                    continue
                if r.status_code in (200, 201):
                    with lock:
                        acknowledged[b["external_id"]] = r.json()["event"]["id"]
                else:
                    with lock:
                        lost.append(b)
                if i == 60 + k and k == 0:  # a quarter in: kill a worker while the others keep sending
                    os.kill(_children(proc.pid)[0], signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert killed.is_set() and len(acknowledged) > 100
    with api_engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT external_id, id FROM events WHERE external_id LIKE :p"),
                                   {"p": f"KILL-{run}-%"}).all())
    missing = {e: i for e, i in acknowledged.items() if stored.get(e) != i}
    assert not missing, f"acknowledged but not stored: {missing}"
    # the reports whose answer never came: sent again, each is stored once (committed before the kill, or now)
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for b in lost:
            while True:
                try:
                    r = http.post("/v1/events", json=b)
                    if r.status_code != 503:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the API did not recover from the killed worker"
                time.sleep(0.2)
            assert r.status_code in (200, 201), r.text
    with api_engine.connect() as conn:
        counts = conn.execute(text("SELECT count(*), count(DISTINCT external_id) FROM events "
                                   "WHERE external_id LIKE :p"), {"p": f"KILL-{run}-%"}).one()
    assert counts[0] == counts[1] == 240
