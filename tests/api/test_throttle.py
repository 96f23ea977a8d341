"""Login throttling and the bound on Argon2: the probe's 50 wrong passwords in a row (50 x 401, never a 429)
and its 16 parallel wrong logins (other users' p95 from 11 ms to 784 ms), as tests.

Each test logs in from its own client address (Starlette's test client lets us choose the peer), and the
throttle's counters are emptied before and after each test, so no other test inherits a lock. Argon2 is
instrumented, never timed: a wrapper counts the checks that run, how many run at once, and whether one ever
runs on an event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from gridmap.services.auth import PasswordGate
from tests.api.conftest import PASSWORD, query

pytestmark = [pytest.mark.db]
_n = itertools.count(1)
WRONG = "not the password at all"


@pytest.fixture(autouse=True)
def no_throttle_left(api_engine, app):
    def empty():
        with api_engine.begin() as conn:
            conn.execute(text("DELETE FROM login_throttle"))
        app.state.auth.throttle.forget_hints()

    empty()
    yield
    empty()


class WatchedHasher:
    """The app's Argon2 hasher, watched: checks run, at most how many at once, any on an event loop.

    With ``wait_s`` set, each check waits (at most that long) for a second one to start, so that checks which
    *may* overlap do."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.wait_s = 0.0
        self.cond = threading.Condition()
        self.running = self.peak = self.calls = 0
        self.on_loop = False

    def verify(self, password_hash, password):
        try:
            asyncio.get_running_loop()
            self.on_loop = True
        except RuntimeError:
            pass
        with self.cond:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
            self.cond.notify_all()
            if self.wait_s:
                self.cond.wait_for(lambda: self.running > 1, timeout=self.wait_s)
        try:
            return self.inner.verify(password_hash, password)
        finally:
            with self.cond:
                self.running -= 1

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def argon(app, monkeypatch) -> WatchedHasher:
    watched = WatchedHasher(app.state.auth.passwords.hasher)
    monkeypatch.setattr(app.state.auth.passwords, "hasher", watched)
    return watched


def peer(app, address: str) -> TestClient:
    """A client whose TCP peer address is ``address`` (a test client of its own; shares the running app)."""
    return TestClient(app, client=(address, 40000))


def new_user(client, users, role: str = "planner") -> str:
    name = f"t-{role}-{next(_n)}"
    r = client.post("/v1/users", json={"username": name, "password": PASSWORD, "role": role},
                    headers=users["admin"]["headers"])
    assert r.status_code == 201, r.text
    return name


def token(c, name: str, password: str, **headers):
    return c.post("/v1/auth/token", json={"username": name, "password": password}, headers=headers)


def assert_429(r, field: str = "username/password") -> int:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["error"] == "TooManyRequests" and body["field"] == field and body["fix"]
    wait = int(r.headers["Retry-After"])
    assert wait >= 1 and (f"try again in {wait} s" in body["message"] or "busy" in body["message"])
    return wait


def test_the_sixth_wrong_password_for_a_name_gets_429_and_the_lock_grows(app, client, users, clock, argon):
    name = new_user(client, users)
    c = peer(app, "10.20.0.1")
    for _ in range(5):
        assert token(c, name, WRONG).status_code == 401
    assert argon.calls == 5
    first = assert_429(token(c, name, WRONG))
    assert first == 60
    assert_429(token(c, name, PASSWORD))  # locked: even the right password waits
    assert_429(token(peer(app, "10.20.0.2"), name, PASSWORD))  # from any address: the name is locked
    assert argon.calls == 5  # a throttled login runs no Argon2 at all
    # the lock ends; the next failure locks for twice as long
    clock.advance(seconds=first + 1)
    assert token(c, name, WRONG).status_code == 401
    second = assert_429(token(c, name, WRONG))
    assert second == 2 * first
    clock.advance(seconds=second + 1)
    # a success clears the name's counter: five more tries before the next lock
    assert token(c, name, PASSWORD).status_code == 200
    for _ in range(5):
        assert token(c, name, WRONG).status_code == 401
    assert_429(token(c, name, WRONG))


def test_unknown_names_are_throttled_like_known_ones(app, argon):
    c = peer(app, "10.21.0.1")
    statuses = [token(c, "t-nobody-by-that-name", WRONG).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2  # the same as for a real name: nothing to learn about who exists
    assert argon.calls == 5


def test_an_address_is_locked_after_20_failures_whatever_the_names(app, client, users, argon):
    name = new_user(client, users)
    c = peer(app, "10.22.0.1")
    for i in range(20):
        assert token(c, f"t-guess-{i}", WRONG).status_code == 401
    assert_429(token(c, name, PASSWORD))  # the address is locked, even for a right password
    assert argon.calls == 20
    assert token(peer(app, "10.22.0.2"), name, PASSWORD).status_code == 200  # elsewhere, it works


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(app, client, users, api_engine):
    name = new_user(client, users)
    c = peer(app, "10.23.0.1")
    for i in range(20):  # a new forged address each time: they all count against the real peer
        assert token(c, f"t-spoof-{i}", WRONG, **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code == 401
    assert_429(token(c, name, PASSWORD, **{"X-Forwarded-For": "198.51.100.7"}))
    assert token(peer(app, "10.23.0.2"), name, PASSWORD, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    assert query(api_engine, "SELECT s.client_address FROM sessions s JOIN users u ON u.id = s.user_id "
                             "WHERE u.username = :u", u=name)[0][0] == "10.23.0.2"


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(app, client, users, api_engine, monkeypatch):
    trusted = app.state.settings.model_copy(update={"trusted_proxies": ["10.24.0.0/24"]})
    monkeypatch.setitem(app.state._state, "settings", trusted)  # State keeps its attributes in _state
    name = new_user(client, users)
    proxy = peer(app, "10.24.0.5")
    for i in range(20):  # one client behind the proxy fails 20 times
        r = token(proxy, f"t-behind-{i}", WRONG, **{"X-Forwarded-For": "198.51.100.20"})
        assert r.status_code == 401
    assert_429(token(proxy, name, PASSWORD, **{"X-Forwarded-For": "198.51.100.20"}))
    # ... and cannot escape by writing another address in front: the proxy appended the real one
    assert_429(token(proxy, name, PASSWORD, **{"X-Forwarded-For": "192.0.2.99, 198.51.100.20"}))
    # another client behind the same proxy is not locked out
    assert token(proxy, name, PASSWORD, **{"X-Forwarded-For": "198.51.100.21"}).status_code == 200
    assert query(api_engine, "SELECT s.client_address FROM sessions s JOIN users u ON u.id = s.user_id "
                             "WHERE u.username = :u", u=name)[0][0] == "198.51.100.21"
    # the header of an untrusted peer is still ignored
    for i in range(20):
        token(peer(app, "10.25.0.9"), f"t-outside-{i}", WRONG, **{"X-Forwarded-For": "198.51.100.22"})
    assert token(proxy, name, PASSWORD, **{"X-Forwarded-For": "198.51.100.22"}).status_code == 200


def test_the_dashboard_login_is_throttled_too(app, client, users, argon):
    name = new_user(client, users)
    c = peer(app, "10.26.0.1")
    form = {"username": name, "password": WRONG}
    for _ in range(5):
        r = c.post("/dashboard/login", data=form)
        assert r.status_code == 401 and 'id="gm-login-error"' in r.text
    r = c.post("/dashboard/login", data=form)  # an HTML form: the form again, with the message
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 60
    assert 'id="gm-login-error"' in r.text and "too many failed logins" in r.text and "set-cookie" not in r.headers
    r = c.post("/dashboard/login", json={"username": name, "password": PASSWORD})  # the page's script: JSON
    assert_429(r)
    assert token(c, name, PASSWORD).status_code == 429  # one counter for the API and the screen
    assert argon.calls == 5 and not argon.on_loop


def test_argon2_never_runs_more_than_the_bound_at_once(app, argon):
    """Twelve wrong logins at once (different names and addresses: no throttle applies). With the bound (one
    check per process, two waiting), never two checks at once, and the logins beyond the queue get 429 busy.
    Without it (the old behaviour), they overlap: the instrument can tell."""

    def burst(tag: str) -> list:
        with ThreadPoolExecutor(12) as ex:
            return list(ex.map(lambda i: token(peer(app, f"10.27.{tag}.{i}"), f"t-burst-{tag}-{i}", WRONG), range(12)))

    argon.wait_s = 0.3
    gate = app.state.auth.passwords.gate
    assert gate.concurrency == 1
    refused = gate.refused
    out = burst("1")
    assert argon.peak == 1 and not argon.on_loop
    assert {r.status_code for r in out} <= {401, 429}
    busy = [r for r in out if r.status_code == 429]
    assert argon.calls + len(busy) == 12 and gate.refused - refused == len(busy)
    for r in busy:
        assert assert_429(r, field="password") == 1 and "busy" in r.json()["message"]
    # the control: the bound lifted, the same burst overlaps
    argon.peak = 0
    original = app.state.auth.passwords.gate
    app.state.auth.passwords.gate = PasswordGate(0, 0)
    try:
        out = burst("2")
    finally:
        app.state.auth.passwords.gate = original
    assert all(r.status_code == 401 for r in out) and argon.peak > 1
