"""The simulator's side of the HTTP API (httpx): who is logged in, every call it makes, and how long each took.

Each simulated user (a team's phone, the intake gateway, the command room) logs in once, on first use, and
reuses its token; a 401 (the session ended) logs it in again once. A 503 (the database restarting) is retried
after its ``Retry-After``. Latencies are kept per kind of call for the load test (``scripts/bench_simulation.py``);
they never reach the run log.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np


class ApiError(Exception):
    """The API answered something the simulator did not expect."""

    def __init__(self, kind: str, response: httpx.Response) -> None:
        self.kind, self.status = kind, response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text[:500]
        super().__init__(f"{kind}: HTTP {self.status}: {self.body}")


@dataclass
class CallStats:
    """Latency (ms) and count of each kind of call."""

    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    items: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, kind: str, seconds: float, items: int = 1) -> None:
        self.ms[kind].append(seconds * 1000.0)
        self.items[kind] += items

    def summary(self) -> list[dict]:
        out = []
        for kind in sorted(self.ms):
            v = np.asarray(self.ms[kind])
            out.append({"call": kind, "n": len(v), "items": self.items[kind], "p50_ms": float(np.percentile(v, 50)),
                        "p99_ms": float(np.percentile(v, 99)), "max_ms": float(v.max()), "total_s": float(v.sum() / 1000)})
        return out


class Driver:
    """Calls the API as the simulation's users."""

    def __init__(self, client: httpx.Client, credentials: dict[str, str], *, stats: CallStats | None = None,
                 retries: int = 5) -> None:
        self.client = client
        self.credentials = credentials
        self.tokens: dict[str, str] = {}
        self.stats = stats or CallStats()
        self.retries = retries
        self.logins = 0

    def login(self, user: str) -> str:
        t0 = time.perf_counter()
        for attempt in range(self.retries + 1):
            r = self.client.post("/v1/auth/token", json={"username": user, "password": self.credentials[user]})
            if r.status_code == 429 or r.status_code == 503:  # Argon2 queue full, or the database restarting
                time.sleep(min(float(r.headers.get("Retry-After", "1")), 5.0) if attempt < self.retries else 0)
                continue
            break
        if r.status_code != 200:
            raise ApiError(f"login {user}", r)
        self.stats.add("login", time.perf_counter() - t0)
        self.logins += 1
        self.tokens[user] = r.json()["access_token"]
        return self.tokens[user]

    def call(self, user: str, kind: str, method: str, url: str, *, ok: tuple[int, ...] = (200, 201),
             items: int = 1, **kw: Any) -> httpx.Response:
        """One request as ``user``; returns the response when its status is in ``ok`` (else raises
        :class:`ApiError`, after re-logging in on a 401 and retrying a 503)."""
        token = self.tokens.get(user) or self.login(user)
        relogged = False
        for attempt in range(self.retries + 1):
            t0 = time.perf_counter()
            r = self.client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
            self.stats.add(kind, time.perf_counter() - t0, items)
            if r.status_code == 401 and not relogged:
                token, relogged = self.login(user), True
                continue
            if r.status_code == 503 and attempt < self.retries:
                time.sleep(min(float(r.headers.get("Retry-After", "1")), 5.0))
                continue
            break
        if r.status_code not in ok:
            raise ApiError(kind, r)
        return r
