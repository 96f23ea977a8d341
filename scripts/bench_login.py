"""Benchmark: other users' latency while wrong passwords hammer the login (Argon2 bounded or not).

    .venv/bin/python scripts/bench_login.py [--seconds 10] [--attackers 16] [--readers 4] [--workers 2]

The outside probe found that sixteen parallel wrong logins pushed other users' p95 from 11 ms to 784 ms:
Argon2 is slow and memory-hungry on purpose, and sixteen of them at once took both cores and the request
threads. This script measures the p95 of a cheap authenticated endpoint (GET /v1/me, ``--readers`` keep-alive
clients in a closed loop) in five phases, each on a freshly started server (``python -m api.serve``, 2 worker
processes, the real Argon2 cost):

1. ``quiet``               nobody attacks (the peer of every other row)
2. ``spray, unbounded``    ``--attackers`` clients send wrong passwords as fast as they are answered, each
                           time for another name from another address (X-Forwarded-For from a trusted proxy,
                           so the throttle sees a distributed attack and never steps in); Argon2 unbounded
                           (GRIDMAP_ARGON2_CONCURRENCY=0: the old behaviour)
3. ``spray, bounded``      the same, with the bound (one Argon2 per process, two waiting, the rest 429)
4. ``probe, unbounded``    the probe's attack: one name, one address; the throttle stops it after 5 failures
5. ``probe, bounded``      the same with the bound (what ``gridmap serve`` does now)

``401`` counts the wrong passwords that were checked (each one Argon2 run), ``429`` the logins refused
without one (throttled, or the Argon2 queue full). The database is ``gridmap_bench_login`` in the embedded
cluster of GRIDMAP_DATA_DIR / GRIDMAP_DB_PORT (migrated; no sample street needed). The machine is shared:
the table shows the 1-minute load average when each phase started.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _benchdb import scratch_database  # noqa: E402
from _benchserver import Server, free_port  # noqa: E402
from _rawhttp import Conn  # noqa: E402

from gridmap.services import auth  # noqa: E402

DB = "gridmap_bench_login"
PASSWORD = secrets.token_urlsafe(16)


async def reader(port: int, token: str, stop: asyncio.Event, lat_ms: list[float], warm_s: float) -> None:
    conn = Conn(port)
    await conn.open()
    headers = {"Authorization": f"Bearer {token}"}
    t_start = time.perf_counter()
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            status, _ = await conn.request("GET", "/v1/me", headers=headers)
            if status != 200:
                raise SystemExit(f"GET /v1/me answered {status}")
            if t0 - t_start >= warm_s:
                lat_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()


async def attacker(port: int, mode: str, stop: asyncio.Event, codes: dict, ids) -> None:
    conn = Conn(port)
    await conn.open()
    try:
        while not stop.is_set():
            i = next(ids)
            if mode == "spray":  # another name from another address each time
                name = f"victim-{i}"
                headers = {"Content-Type": "application/json",
                           "X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
            else:  # the probe: one name, one address
                name, headers = "bench-reader-0", {"Content-Type": "application/json"}
            body = json.dumps({"username": name, "password": "wrong password, again"}).encode()
            try:
                status, _ = await conn.request("POST", "/v1/auth/token", body, headers)
            except (ConnectionError, asyncio.IncompleteReadError):
                await conn.open()
                status = -1
            codes[status] = codes.get(status, 0) + 1
    finally:
        conn.close()


async def phase(port: int, tokens: list[str], mode: str | None, attackers: int, seconds: float) -> dict:
    stop = asyncio.Event()
    lat_ms: list[float] = []
    codes: dict[int, int] = {}
    ids = itertools.count(random.randrange(1 << 20))
    tasks = [asyncio.create_task(reader(port, t, stop, lat_ms, warm_s=1.0)) for t in tokens]
    if mode is not None:
        tasks += [asyncio.create_task(attacker(port, mode, stop, codes, ids)) for _ in range(attackers)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    a = np.array(lat_ms)
    return {"n": len(a), "p50": np.percentile(a, 50), "p95": np.percentile(a, 95), "p99": np.percentile(a, 99),
            "logins_s": sum(codes.values()) / (seconds), "401": codes.get(401, 0), "429": codes.get(429, 0),
            "other": sum(v for k, v in codes.items() if k not in (401, 429))}


def prepare(readers: int) -> None:
    engine, _ = scratch_database(DB, load_sample=False)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE username LIKE 'bench-%'"))
        conn.execute(text("DELETE FROM login_throttle"))
    with Session(engine) as s:
        for i in range(readers):
            auth.create_user(s, username=f"bench-reader-{i}", password=PASSWORD, role="planner")
    engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--attackers", type=int, default=16)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    prepare(args.readers)
    secret = secrets.token_urlsafe(48)
    phases = [("quiet", None, "1"), ("spray, unbounded (old)", "spray", "0"), ("spray, bounded", "spray", "1"),
              ("probe, unbounded", "probe", "0"), ("probe, bounded", "probe", "1")]
    rows = []
    for label, mode, bound in phases:
        port = free_port()
        engine, _ = scratch_database(DB, load_sample=False)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM login_throttle"))
        engine.dispose()
        with Server(port, args.workers, secret, db=DB,
                    env={"GRIDMAP_ARGON2_CONCURRENCY": bound, "GRIDMAP_TRUSTED_PROXIES": "127.0.0.1"}):
            tokens = []
            for i in range(args.readers):
                r = httpx.post(f"http://127.0.0.1:{port}/v1/auth/token",
                               json={"username": f"bench-reader-{i}", "password": PASSWORD}, timeout=30)
                r.raise_for_status()
                tokens.append(r.json()["access_token"])
            load = os.getloadavg()[0]
            res = asyncio.run(phase(port, tokens, mode, args.attackers, args.seconds))
        rows.append((label, bound, load, res))
        print(f"{label}: done", flush=True)
    head = (f"{'phase':<24} {'Argon2 bound':>12} {'load':>5} {'/v1/me n':>9} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'p99 ms':>7} {'logins/s':>9} {'401':>6} {'429':>7}")
    print(f"\nGET /v1/me latency while {args.attackers} clients send wrong passwords ({args.readers} readers, "
          f"{args.workers} workers, {args.seconds:.0f} s per phase)\n")
    print(head)
    print("-" * len(head))
    for label, bound, load, r in rows:
        b = "per process 1" if bound == "1" else "none"
        print(f"{label:<24} {b:>12} {load:>5.1f} {r['n']:>9,} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f} "
              f"{r['logins_s']:>9.0f} {r['401']:>6,} {r['429']:>7,}" + (f"  (other: {r['other']})" if r["other"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
