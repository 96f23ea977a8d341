"""Benchmark the events API over loopback: intake + dispatch under load, and no acknowledged event lost on SIGKILL.

    .venv/bin/python scripts/bench_api.py [--events 2000] [--concurrency 16 | --rate 200] [--workers 2] [--fresh]

It uses its own database (``gridmap_bench_api`` in the embedded cluster, the sample street loaded once),
starts the API as a separate process — ``python -m api.serve`` (uvicorn workers with a listening socket
each), or with ``--server uvicorn`` plain ``uvicorn --workers N`` (one shared socket) — and drives it with a
lean asyncio HTTP/1.1 load generator (closed loop, N concurrent keep-alive connections). Each row says how
the connections were spread over the worker processes (from ``ss``). Phases:

1. ``intake``          POST /v1/events with dispatch=false           (the peer: intake alone)
2. ``intake+dispatch`` POST /v1/events, dispatched to the nearest team before the answer
3. ``kill -9``         the same load; the server's process group is SIGKILLed mid-run, restarted, and every
                       event that was acknowledged with 201 is looked up in the database.

The server is restarted before each phase (fresh caches); timing starts once /health answers, i.e. after
the app's start-up (road graph, connection pool, compiled kernels). The machine is shared: each phase's
row shows the 1-minute load average when it started (other processes' load included).

Every team reports its position (batched) before each phase, as the phones would. Target on the
2-core machine: >= 200 events/s with p99 <= 100 ms for phase 2, and zero acknowledged events lost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _benchdb import scratch_database  # noqa: E402

from gridmap.services import auth  # noqa: E402

DB = "gridmap_bench_api"
PASSWORD = secrets.token_urlsafe(16)
CATEGORIES = ["parking", "environment", "road_facility", "neighbour_dispute", "public_security", "fraud",
              "consumer_dispute", "food_drug_safety", "elderly_care", "fire_hazard"]
CHANNELS = ["hotline_12345", "chat_group", "patrol"]


def prepare(fresh: bool):
    engine, _ = scratch_database(DB, fresh=fresh)
    with engine.begin() as conn:  # a clean field: no open offers, every team on duty
        conn.execute(text("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')"))
        conn.execute(text("UPDATE teams SET status = 'available'"))
        conn.execute(text("DELETE FROM users WHERE username LIKE 'bench-%'"))
    with Session(engine) as s:
        auth.create_user(s, username="bench-admin", password=PASSWORD, role="admin")
    with Session(engine) as s:
        auth.create_user(s, username="bench-intake", password=PASSWORD, role="intake")
    with engine.connect() as conn:
        spots = conn.execute(text("SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                                  "FROM buildings ORDER BY code")).all()
        teams = conn.execute(text("SELECT code, ST_X(geom), ST_Y(geom) FROM teams WHERE geom IS NOT NULL")).all()
    return engine, [tuple(s) for s in spots], [tuple(t) for t in teams]


class Server:
    def __init__(self, port: int, workers: int, secret: str, kind: str = "gridmap") -> None:
        self.port, self.workers, self.secret, self.kind = port, workers, secret, kind
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, GRIDMAP_DB_NAME=DB, GRIDMAP_SECRET_KEY=self.secret, GRIDMAP_ESCALATION_INTERVAL_S="0")
        if self.kind == "uvicorn":
            cmd = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning",
                   "--no-access-log"]
        else:
            cmd = [sys.executable, "-m", "api.serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers), "--log-level", "warning", "--no-access-log"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"the API exited with {self.proc.returncode}")
            time.sleep(0.3)
        raise SystemExit("the API did not come up in 120 s")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def token(base: str, user: str) -> dict:
    r = httpx.post(f"{base}/v1/auth/token", json={"username": user, "password": PASSWORD}, timeout=10)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def refresh_positions(base: str, admin: dict, teams) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    body = {"positions": [{"team": c, "lon": x, "lat": y, "at": now} for c, x, y in teams]}
    r = httpx.post(f"{base}/v1/teams/positions", json=body, headers=admin, timeout=30)
    r.raise_for_status()


class Conn:
    """A minimal HTTP/1.1 keep-alive client (the load generator must not eat the cores it measures: httpx
    spends ~2 ms of CPU per request, this ~0.05 ms)."""

    def __init__(self, host: str, port: int, headers: dict) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n{self.extra}\r\n").encode()
        self.writer.write(head + payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        body = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def spread(port: int, after_s: float = 0.5) -> list[int]:
    """How many of the server's established connections each worker process holds (``ss``), after ``after_s``."""
    await asyncio.sleep(after_s)
    try:
        out = (await asyncio.to_thread(subprocess.run, ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                                       capture_output=True, text=True, timeout=10)).stdout
    except (OSError, subprocess.SubprocessError):  # no ss (iproute2) on this machine
        return []
    pids = Counter(line.split("pid=")[1].split(",")[0] for line in out.splitlines() if "pid=" in line)
    return sorted(pids.values(), reverse=True)


async def drive(base: str, headers: dict, bodies: list[dict], concurrency: int, *,
                stop_after_s: float | None = None) -> dict:
    """Closed loop: ``concurrency`` keep-alive connections send ``bodies`` as fast as answers come back."""
    host, port = base.split("//")[1].split(":")
    lat_ms: list[float] = []
    codes: dict[int, int] = {}
    acked: list[str] = []
    errors = 0
    waiting: Counter = Counter()
    queue: asyncio.Queue = asyncio.Queue()
    for b in bodies:
        queue.put_nowait((b["external_id"], json.dumps(b, ensure_ascii=False).encode()))
    t0 = time.perf_counter()

    async def client() -> None:
        nonlocal errors
        conn = Conn(host, int(port), headers)
        try:
            await conn.open()
        except OSError:
            errors += 1
            return
        try:
            while not queue.empty():
                xid, payload = queue.get_nowait()
                t = time.perf_counter()
                try:
                    code, body = await asyncio.wait_for(conn.post("/v1/events", payload), 30)
                except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                    errors += 1
                    return  # the server is gone (phase 3): this client stops
                lat_ms.append((time.perf_counter() - t) * 1000)
                codes[code] = codes.get(code, 0) + 1
                if code == 201:
                    acked.append(xid)
                    d = json.loads(body).get("dispatch")
                    if d and d["waiting"]:
                        waiting[d["message"].split("waiting", 1)[-1].strip(" :")[:70]] += 1
        finally:
            conn.close()

    per_worker = asyncio.create_task(spread(int(port)))
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    per_worker = per_worker.result() if per_worker.done() else []
    a = np.array(lat_ms) if lat_ms else np.array([np.nan])
    return {"n": len(lat_ms), "wall_s": wall, "rps": len(lat_ms) / wall, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "codes": codes, "acked": acked,
            "errors": errors, "waiting": waiting, "spread": per_worker}


async def drive_rate(base: str, headers: dict, bodies: list[dict], rate: float, pool: int) -> dict:
    """Open loop: requests start at ``rate`` per second whatever the answers do; latency counts from the
    scheduled start (so time spent queued for a free connection is counted: no coordinated omission)."""
    host, port = base.split("//")[1].split(":")
    conns: asyncio.Queue = asyncio.Queue()
    for _ in range(pool):
        c = Conn(host, int(port), headers)
        await c.open()
        conns.put_nowait(c)
    lat_ms: list[float] = []
    codes: dict[int, int] = {}
    waiting: Counter = Counter()
    errors = 0

    async def one(at: float, payload: bytes) -> None:
        nonlocal errors
        c = await conns.get()
        try:
            code, body = await asyncio.wait_for(c.post("/v1/events", payload), 30)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            errors += 1
            return
        lat_ms.append((time.perf_counter() - at) * 1000)
        codes[code] = codes.get(code, 0) + 1
        if code == 201:
            d = json.loads(body).get("dispatch")
            if d and d["waiting"]:
                waiting[d["message"].split("waiting", 1)[-1].strip(" :")[:70]] += 1
        conns.put_nowait(c)

    t0 = time.perf_counter()
    per_worker = asyncio.create_task(spread(int(port), after_s=0.1))
    tasks = []
    for i, b in enumerate(bodies):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at, json.dumps(b, ensure_ascii=False).encode())))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    per_worker = await per_worker
    while not conns.empty():
        conns.get_nowait().close()
    a = np.array(lat_ms) if lat_ms else np.array([np.nan])
    return {"n": len(lat_ms), "wall_s": wall, "rps": len(lat_ms) / wall, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "codes": codes, "acked": [],
            "errors": errors, "waiting": waiting, "spread": per_worker}


def bodies_for(run: str, n: int, spots, dispatch: bool, rng: random.Random) -> list[dict]:
    """Reports at random buildings, ``reported_at`` two minutes apart going back in time: a burst of thousands
    of reports within half an hour in one street would mostly be near-duplicates of each other (linked, not
    dispatched), and this measures dispatch."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    out = []
    for i in range(n):
        lon, lat = rng.choice(spots)
        out.append({"channel": rng.choice(CHANNELS), "external_id": f"{run}-{i:06d}",
                    "category": rng.choice(CATEGORIES), "location": {"lon": lon, "lat": lat},
                    "reported_at": (now - dt.timedelta(minutes=2 * (i % 20_000))).isoformat(),
                    "title": "压测事件", "dispatch": dispatch})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000, help="requests per phase")
    ap.add_argument("--concurrency", type=int, default=16, help="closed loop: concurrent connections")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop: start this many requests per second (phases 1-2), whatever the answers do")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--server", choices=["gridmap", "uvicorn"], default="gridmap",
                    help="gridmap: python -m api.serve (a socket per worker); uvicorn: uvicorn --workers (shared)")
    ap.add_argument("--kill-after", type=float, default=3.0, help="seconds into phase 3 to SIGKILL the server")
    ap.add_argument("--fresh", action="store_true", help="rebuild the benchmark database")
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rng = random.Random(args.seed)
    engine, spots, teams = prepare(args.fresh)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = Server(port, args.workers, secrets.token_urlsafe(48), args.server)
    run = uuid.uuid4().hex[:8]
    rows = []
    try:
        server.start()
        admin, intake = token(base, "bench-admin"), token(base, "bench-intake")
        # warm-up (JIT of the router's search, connection pools), not measured
        refresh_positions(base, admin, teams)
        asyncio.run(drive(base, intake, bodies_for(f"{run}w", 100, spots, True, rng), args.concurrency))
        for name, dispatch in (("intake", False), ("intake+dispatch", True)):
            with engine.begin() as conn:  # every team free and every event closed, as at the start of a shift
                conn.execute(text("UPDATE assignments SET status = 'completed' WHERE status IN ('offered', 'accepted')"))
                conn.execute(text("UPDATE teams SET status = 'available'"))
                conn.execute(text("UPDATE events SET status = 'closed', closed_at = now() WHERE status <> 'closed'"))
            server.stop()
            server.start()  # fresh caches, after the reset
            refresh_positions(base, admin, teams)
            bodies = bodies_for(f"{run}{name[-1]}", args.events, spots, dispatch, rng)
            load_at_start = os.getloadavg()[0]
            if args.rate:
                res = asyncio.run(drive_rate(base, intake, bodies, args.rate, max(args.concurrency, 64)))
            else:
                res = asyncio.run(drive(base, intake, bodies, args.concurrency))
            with engine.connect() as conn:
                assigned, dups = conn.execute(text(
                    "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM assignments a WHERE a.event_id = e.id)), "
                    "count(*) FILTER (WHERE e.duplicate_of IS NOT NULL) FROM events e WHERE e.external_id LIKE :p"),
                    {"p": f"{run}{name[-1]}-%"}).one()
            rows.append((name, res, assigned, dups, load_at_start))
        # phase 3: SIGKILL mid-run
        bodies = bodies_for(f"{run}k", args.events * 5, spots, True, rng)

        async def kill_later() -> None:
            await asyncio.sleep(args.kill_after)
            server.kill9()

        async def phase3():
            killer = asyncio.create_task(kill_later())
            res = await drive(base, intake, bodies, args.concurrency, stop_after_s=args.kill_after)
            await killer
            return res

        load_kill = os.getloadavg()[0]
        killed = asyncio.run(phase3())
        server.start()
        acked = killed["acked"]
        with engine.connect() as conn:
            found = conn.execute(text("SELECT count(*) FROM events WHERE external_id = ANY(:x)"),
                                 {"x": acked}).scalar_one()
            stored = conn.execute(text("SELECT count(*) FROM events WHERE external_id LIKE :p"),
                                  {"p": f"{run}k-%"}).scalar_one()
        r = httpx.get(f"{base}/health", timeout=10)
        assert r.status_code == 200
    finally:
        server.stop()
        engine.dispose()

    load = f"open loop at {args.rate:.0f} requests/s" if args.rate else f"closed loop, {args.concurrency} connections"
    serving = "api.serve" if args.server == "gridmap" else "uvicorn --workers"
    print(f"\nevents API over loopback: {args.workers} uvicorn worker(s) ({serving}), {load}, {args.events} requests per phase, "
          f"{os.cpu_count()} CPUs, load average at the start of the run: {load_before:.1f}\n")
    print(f"{'phase':<18}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  {'answers':<14}{'to a team':>10}"
          f"{'duplicates':>11}{'load':>6}  connections per worker")
    for name, res, assigned, dups, load_at_start in rows:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(res["codes"].items()))
        print(f"{name:<18}{res['rps']:>10.0f}{res['p50']:>9.1f}{res['p99']:>9.1f}{res['max']:>9.1f}  {codes:<14}"
              f"{assigned:>10}{dups:>11}{load_at_start:>6.1f}  {'/'.join(map(str, res['spread'])) or '?'}")
    for name, res, *_ in rows:
        if res["errors"]:
            print(f"  {name}: {res['errors']} requests failed (connection error or no answer in 30 s)")
        for why, n in res["waiting"].most_common(3):
            print(f"  {name}: {n} answered 'waiting' ({why.strip()})")
    res = rows[1][1]
    if args.rate:  # open loop: the throughput is the offered rate, if the server keeps up with it
        ok = args.rate >= 200 and res["n"] == args.events and res["rps"] >= 0.98 * args.rate and res["p99"] <= 100
        what = f"keeps up with {args.rate:.0f} events/s offered (>= 200), p99 <= 100 ms"
    else:
        ok = res["rps"] >= 200 and res["p99"] <= 100
        what = "intake+dispatch >= 200 events/s, p99 <= 100 ms"
    print(f"\ntarget ({what}): {'met' if ok else 'NOT met'}")
    lost = len(acked) - found
    print(f"kill -9 after {args.kill_after:.1f} s: {len(acked)} events acknowledged with 201, {found} of them in the "
          f"database after restart, {lost} lost; {stored - found} more were committed but their answer never "
          f"arrived (a client retry with the same external_id gets them); {killed['errors']} requests cut off "
          f"(load {load_kill:.1f})")
    if lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
