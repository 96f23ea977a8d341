"""The database goes away under a running API and comes back: JSON 503 + Retry-After meanwhile (never a 500,
never plain text), recovery without restarting the app, and no acknowledged (201) report lost.

The outage is simulated by a small asyncio TCP proxy between the app and PostgreSQL that the test cuts (every
open connection aborted, new ones closed at once) and restores: the shared cluster is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.services import auth
from gridmap.services.registry import Registry
from gridmap.storage.db import make_engine
from tests.servers import served

pytestmark = [pytest.mark.db]
PASSWORD = "correct horse battery staple"


class CuttableProxy:
    """TCP proxy 127.0.0.1:<port> -> 127.0.0.1:<target>, in its own thread and event loop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = True
        self.loop = asyncio.new_event_loop()
        self.transports: set[asyncio.Transport] = set()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self.transports |= pair

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.transports -= pair

    def cut(self) -> None:
        """PostgreSQL 'goes away': every open connection is reset, new ones are closed at once."""
        def _cut() -> None:
            self.up = False
            for t in list(self.transports):
                t.abort()
        self.loop.call_soon_threadsafe(_cut)

    def restore(self) -> None:
        self.loop.call_soon_threadsafe(setattr, self, "up", True)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def outage(sample_street_db, settings):
    direct = sample_street_db("db_down")
    with Session(direct) as s:
        for name, role in (("dd_admin", "admin"), ("dd_intake", "intake")):
            auth.create_user(s, username=name, password=PASSWORD, role=role)
    with direct.connect() as conn:
        spots = [tuple(r) for r in conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings "
            "WHERE grid_code IS NOT NULL ORDER BY code LIMIT 50"))]
    proxy = CuttableProxy(direct.url.port)
    via_proxy = make_engine(direct.url.set(port=proxy.port), pool_size=5, max_overflow=5, pool_timeout=5)
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(via_proxy, cfg))
    with served(app, log_level="error") as port:
        yield {"base": f"http://127.0.0.1:{port}", "proxy": proxy, "direct": direct, "spots": spots}
    proxy.close()
    via_proxy.dispose()
    direct.dispose()


def token(base: str, username: str) -> dict:
    r = httpx.post(f"{base}/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_the_database_going_away_is_a_503_and_the_api_recovers_without_losing_a_report(outage):
    base, proxy = outage["base"], outage["proxy"]
    intake, admin = token(base, "dd_intake"), token(base, "dd_admin")
    ids = itertools.count(1)
    results: list[tuple[str, dict, int, dict, dict]] = []  # (external id, body, status, json, headers)
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30, headers=intake) as c:
            while not stop.is_set():
                lon, lat = outage["spots"][next(ids) % len(outage["spots"])]
                body = {"channel": "hotline_12345", "external_id": f"DOWN-{n}-{next(ids):05d}",
                        "category": "neighbour_dispute", "location": {"lon": lon, "lat": lat}, "dispatch": False}
                r = c.post("/v1/events", json=body)
                results.append((body["external_id"], body, r.status_code, r.json(), dict(r.headers)))
                time.sleep(0.02)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(3)]
    for th in threads:
        th.start()
    time.sleep(1.0)
    proxy.cut()
    time.sleep(0.5)
    down: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=base, timeout=30, headers=admin) as c:
        for path in ("/health", "/v1/events", "/v1/metrics/overdue", "/dashboard/api/summary", "/dashboard/api/events.json",
                     "/layers/grids", "/v1/teams"):
            down[path] = c.get(path)
        time.sleep(1.5)
        proxy.restore()
        deadline = time.monotonic() + 60  # a timeout for the test, not a figure it checks
        while (h := c.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, f"no recovery: {h.status_code} {h.text[:200]}"
            time.sleep(0.05)
        assert h.json()["database"] == "up"
        time.sleep(1.0)
        stop.set()
        for th in threads:
            th.join(30)
        up_again = {p: c.get(p) for p in down}

    for path, r in down.items():
        assert r.status_code == 503, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json") and int(r.headers["retry-after"]) > 0, path
        assert r.json()["error"] == "DatabaseUnavailable" and r.json()["request_id"] == r.headers["x-request-id"], path
    assert down["/health"].json()["database"] == "down" and down["/health"].json()["status"] == "unavailable"
    assert all(r.status_code == 200 for r in up_again.values()), {p: r.status_code for p, r in up_again.items()}

    statuses = [s for _, _, s, _, _ in results]
    assert 503 in statuses, "the writers never saw the outage: the test did not test anything"
    assert statuses.count(201) >= 3
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    for _, _, s, body, headers in results:
        if s == 503:
            assert body["error"] == "DatabaseUnavailable" and int(headers["retry-after"]) > 0
    acknowledged = {xid: body["event"]["id"] for xid, _, s, body, _ in results if s == 201}
    with outage["direct"].connect() as conn:
        stored = dict(conn.execute(text("SELECT external_id, id FROM events WHERE external_id LIKE 'DOWN-%'")).all())
    missing = {x: i for x, i in acknowledged.items() if stored.get(x) != i}
    assert missing == {}, f"acknowledged (201) but not in the database: {missing}"
    # a client that retries what got a 503 gets the event (made now, or made before the answer was lost), once
    with httpx.Client(base_url=base, timeout=30, headers=intake) as c:
        for _, req, s, _, _ in results:
            if s == 503:
                again = c.post("/v1/events", json=req)
                assert again.status_code in (200, 201), again.text
    with outage["direct"].connect() as conn:
        n, distinct = conn.execute(text("SELECT count(*), count(DISTINCT external_id) FROM events "
                                        "WHERE external_id LIKE 'DOWN-%'")).one()
    assert n == distinct == len({x for x, *_ in results})
