"""The API on the whole sample street, in its own PostGIS database, through HTTP (Starlette's TestClient).

The app runs with a simulated clock (``clock``), so offers time out and events become overdue when a
test moves the clock, not when the wall clock does. Each test that dispatches starts from a fresh field
(``field``): the clock moves on an hour, no assignment is open, teams are back to their loaded status and
every team reports its position at the current (simulated) time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.services import auth
from gridmap.services.registry import Registry
from tests.servers import served

pytestmark = [pytest.mark.db]
TZ = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=TZ)  # the day after the sample street's year of events
PASSWORD = "correct horse battery staple"
#: Cheap Argon2 for tests (hashes made with it take ~5 ms to check rather than ~130 ms); the cost is a setting.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}


class Clock:
    """A settable clock: ``clock()`` is now; ``clock.advance(minutes=...)`` moves it on."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, **kw) -> dt.datetime:
        with self._lock:
            self.now = self.now + dt.timedelta(**kw)
            return self.now


@pytest.fixture(scope="session")
def api_engine(sample_street_db):
    engine = sample_street_db("api", pool_size=10, max_overflow=20)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA testkit"))
        conn.execute(text("CREATE TABLE testkit.teams AS SELECT id, status FROM teams"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def api_settings(settings):
    return settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0, "token_ttl_s": 30 * 86400,
                                       "max_body_bytes": 200_000, **FAST_ARGON2})


@pytest.fixture(scope="session")
def clock() -> Clock:
    return Clock(START)


@pytest.fixture(scope="session")
def app(api_engine, api_settings, clock):
    return create_app(api_settings, Registry(api_engine, api_settings), clock=clock)


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def street(api_engine) -> str:
    """The sample's (first, larger) street; ``street_b`` is the second, smaller one of the same district."""
    with api_engine.connect() as conn:
        return conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                 "ORDER BY population DESC LIMIT 1")).scalar_one()


@pytest.fixture(scope="session")
def street_b(api_engine, street) -> str:
    with api_engine.connect() as conn:
        return conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL AND code <> :s "
                                 "ORDER BY code LIMIT 1"), {"s": street}).scalar_one()


@pytest.fixture(scope="session")
def users(api_engine, client, street) -> dict[str, dict]:
    """One user per role (the admin made directly, the others through POST /v1/users), logged in."""
    with Session(api_engine) as s:
        auth.create_user(s, username="admin", password=PASSWORD, role="admin")
    admin = login(client, "admin")
    with api_engine.connect() as conn:
        gw = conn.execute(text(
            "SELECT m.code, s.grid_code FROM grid_staff s JOIN team_members m ON m.id = s.member_id "
            "WHERE s.role = 'primary' AND m.team_id IS NOT NULL ORDER BY s.grid_code LIMIT 1")).one()
    specs = {"operator": {"role": "operator", "street_code": street}, "planner": {"role": "planner"},
             "intake": {"role": "intake"}, "gridworker": {"role": "grid_worker", "member_code": gw.code}}
    out = {"admin": admin}
    for name, spec in specs.items():
        r = client.post("/v1/users", json={"username": name, "password": PASSWORD, **spec}, headers=admin["headers"])
        assert r.status_code == 201, r.text
        out[name] = login(client, name)
    return out


def login(client, username: str, password: str = PASSWORD) -> dict:
    r = client.post("/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    return {"token": body["access_token"], "headers": {"Authorization": f"Bearer {body['access_token']}"}, **body}


_team_users: dict[str, dict] = {}


def team_user(client, engine, admin_headers, team: str) -> dict:
    """A volunteer user of ``team`` (created on first use), logged in."""
    if team not in _team_users:
        with engine.connect() as conn:
            member = conn.execute(text("SELECT m.code FROM team_members m JOIN teams t ON t.id = m.team_id "
                                       "WHERE t.code = :t ORDER BY m.code LIMIT 1"), {"t": team}).scalar_one()
        name = f"vol-{team.lower()}"
        r = client.post("/v1/users", json={"username": name, "password": PASSWORD, "role": "volunteer",
                                           "member_code": member}, headers=admin_headers)
        assert r.status_code == 201, r.text
        _team_users[team] = login(client, name)
    return _team_users[team]


@pytest.fixture
def field(api_engine, app, client, clock, users):
    """A fresh field: an hour later, no open assignment, teams as loaded, every team's position current."""
    now = clock.advance(hours=1)
    with api_engine.begin() as conn:
        conn.execute(text("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')"))
        conn.execute(text("UPDATE teams t SET status = b.status FROM testkit.teams b WHERE b.id = t.id"))
    app.state.dispatcher.rebuild(now)
    refresh_positions(client, api_engine, users["admin"]["headers"], now)
    return now


def refresh_positions(client, engine, headers, now: dt.datetime) -> None:
    """Every team reports where it is, at ``now`` (positions older than 5 minutes are stale for dispatch)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, ST_X(geom), ST_Y(geom) FROM teams ORDER BY code")).all()
    positions = [{"team": c, "lon": x, "lat": y, "at": now.isoformat()} for c, x, y in rows]
    r = client.post("/v1/teams/positions", json={"positions": positions}, headers=headers)
    assert r.status_code == 200 and r.json()["updated"] == len(rows), r.text


def new_user(client, admin: dict, name: str, **spec) -> dict:
    """Create a user through the API as ``admin`` (``spec``: role and scope) and log in as them."""
    r = client.post("/v1/users", json={"username": name, "password": PASSWORD, **spec}, headers=admin["headers"])
    assert r.status_code == 201, r.text
    return login(client, name)


_report_ids = itertools.count(1)


def report_by_phone(client, users, category: str, location: dict) -> dict:
    """A hotline report at ``location``, not dispatched, with a reporter; the event as stored."""
    body = {"channel": "hotline_12345", "external_id": f"TEL-{secrets.token_hex(3)}-{next(_report_ids):04d}",
            "category": category, "location": location, "dispatch": False,
            "reporter": {"name": "孙八", "phone": "13600002222"}}
    r = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert r.status_code == 201, r.text
    return r.json()["event"]


def query(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def recv(ws, timeout: float = 10.0):
    """ws.receive_json() that fails the test instead of hanging when nothing comes."""
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(ws.receive_json)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            ws.close()
            raise AssertionError(f"no message on the WebSocket within {timeout} s") from None


@pytest.fixture(scope="session")
def live_server(api_engine, api_settings, clock):
    """A second app instance served by uvicorn on a free loopback port (as another API process would be)."""
    app = create_app(api_settings, Registry(api_engine, api_settings), clock=clock)
    with served(app) as port:
        yield f"http://127.0.0.1:{port}"
