"""Sessions that end: a token is honoured only while its session is open and its user is as it was.

Each finding of the outside probe, as a test: a deactivated, demoted, re-scoped, re-passworded or deleted
user's old token gets 401 on the API (personal data included) and on the dashboard; logout ends the token
(API and dashboard); a revocation reaches a second app instance at once (LISTEN/NOTIFY, not the cache's
TTL); the live feed ends with the session. Every test makes its own users: the shared ones of conftest
keep their sessions.
"""

from __future__ import annotations

import itertools
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from api.app import create_app
from gridmap.cli import app as cli_app
from gridmap.config import get_settings
from gridmap.services.registry import Registry
from tests.api.conftest import PASSWORD, login, query, recv

pytestmark = [pytest.mark.db]
_n = itertools.count(1)
COOKIE = "gridmap_dashboard"


@pytest.fixture(scope="module")
def grid(api_engine, street) -> str:
    """A grid of the operators' street (personal data of its residents is what a stale token must not read)."""
    return query(api_engine, "SELECT code FROM areas WHERE level = 'grid' AND valid_to IS NULL AND code LIKE :s "
                             "ORDER BY code LIMIT 1", s=f"{street}%")[0][0]


def new_user(client, users, role: str = "operator", **scope) -> str:
    name = f"s-{role.replace('_', '')}-{next(_n)}"
    body = {"username": name, "password": PASSWORD, "role": role, **scope}
    r = client.post("/v1/users", json=body, headers=users["admin"]["headers"])
    assert r.status_code == 201, r.text
    return name


def browser(app, name: str, password: str = PASSWORD) -> TestClient:
    """A browser of its own (its own cookie jar) logged in to the dashboard; shares the running app."""
    b = TestClient(app)
    r = b.post("/dashboard/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    assert b.cookies.get(COOKIE)
    return b


def personal(client, headers, grid: str):
    return client.get("/v1/residents", params={"area": grid, "personal": "true", "purpose": "入户走访", "limit": 5},
                      headers=headers)


def assert_ended(client, headers, grid: str | None = None, words: str = "") -> None:
    r = client.get("/v1/me", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["field"] == "Authorization" and "log in" in r.json()["fix"] and words in r.json()["message"]
    if grid is not None:
        assert personal(client, headers, grid).status_code == 401


def assert_dashboard_ended(b: TestClient) -> None:
    r = b.get("/dashboard/deck.json")
    assert r.status_code == 401 and r.json()["field"] == "session", r.text
    assert "/dashboard/login" in r.json()["fix"]


def test_a_login_opens_a_session_row_the_token_names(client, users, api_engine):
    name = new_user(client, users, "planner")
    tok = login(client, name)
    rows = query(api_engine, "SELECT s.kind, s.client_address, s.user_agent, s.revoked_at, s.token_version "
                             "FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = :u", u=name)
    assert [(r.kind, r.client_address, r.revoked_at, r.token_version) for r in rows] == [("api", "testclient", None, 1)]
    assert rows[0].user_agent == "testclient"
    assert tok["access_token"].count(".") == 2 and not tok["access_token"].startswith("gm1.")  # a JWT
    assert client.get("/v1/me", headers=tok["headers"]).json()["username"] == name


def test_a_deactivated_users_old_token_gets_401_on_the_api_and_the_dashboard(app, client, users, grid, api_engine, street):
    name = new_user(client, users, "operator", street_code=street)
    op = login(client, name)
    b = browser(app, name)
    assert personal(client, op["headers"], grid).status_code == 200
    assert b.get("/dashboard/deck.json").status_code == 200
    r = client.patch(f"/v1/users/{name}", json={"active": False}, headers=users["admin"]["headers"])
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["open_sessions"] == 0
    before = query(api_engine, "SELECT count(*) FROM pii_access_log WHERE actor = :u", u=name)[0][0]
    assert_ended(client, op["headers"], grid, "ended (deactivated by admin)")
    assert_dashboard_ended(b)
    assert query(api_engine, "SELECT count(*) FROM pii_access_log WHERE actor = :u", u=name)[0][0] == before
    reasons = query(api_engine, "SELECT DISTINCT s.revoked_reason FROM sessions s JOIN users u ON u.id = s.user_id "
                                "WHERE u.username = :u", u=name)
    assert [r[0] for r in reasons] == ["deactivated by admin"]
    # no new session either, until reactivated
    assert client.post("/v1/auth/token", json={"username": name, "password": PASSWORD}).status_code == 401
    assert client.patch(f"/v1/users/{name}", json={"active": True}, headers=users["admin"]["headers"]).status_code == 200
    assert personal(client, login(client, name)["headers"], grid).status_code == 200


def test_a_demoted_users_old_token_gets_401_and_the_new_one_has_the_new_rights(app, client, users, grid, street):
    name = new_user(client, users, "operator", street_code=street)
    op = login(client, name)
    b = browser(app, name)
    r = client.patch(f"/v1/users/{name}", json={"role": "planner"}, headers=users["admin"]["headers"])
    assert r.status_code == 200 and r.json()["role"] == "planner"
    assert_ended(client, op["headers"], grid, "role changed to planner")
    assert_dashboard_ended(b)
    planner = login(client, name)
    assert client.get("/v1/me", headers=planner["headers"]).json()["role"] == "planner"
    assert personal(client, planner["headers"], grid).status_code == 403


def test_a_changed_street_or_team_member_ends_the_session(client, users, grid, other_member, street):
    name = new_user(client, users, "operator", street_code=street)
    op = login(client, name)
    r = client.patch(f"/v1/users/{name}", json={"role": "grid_worker", "member_code": other_member},
                     headers=users["admin"]["headers"])
    assert r.status_code == 200 and r.json()["member_code"] == other_member
    assert_ended(client, op["headers"], grid, "team member changed")
    gw = login(client, name)
    me = client.get("/v1/me", headers=gw["headers"]).json()
    assert me["role"] == "grid_worker" and me["team"] and me["street"] == street


@pytest.fixture(scope="module")
def other_member(api_engine) -> str:
    """A member of a team that no other test logs in as."""
    return query(api_engine, "SELECT m.code FROM team_members m JOIN teams t ON t.id = m.team_id "
                             "ORDER BY m.code DESC LIMIT 1")[0][0]


def test_a_password_reset_by_an_admin_ends_every_session(app, client, users, grid, street):
    name = new_user(client, users, "operator", street_code=street)
    a, b_tok = login(client, name), login(client, name)
    b = browser(app, name)
    r = client.post(f"/v1/users/{name}/password", json={"password": "a brand new passphrase"},
                    headers=users["admin"]["headers"])
    assert r.status_code == 200 and r.json() == {"sessions_ended": 3}
    for t in (a, b_tok):
        assert_ended(client, t["headers"], grid, "password reset by admin")
    assert_dashboard_ended(b)
    assert client.post("/v1/auth/token", json={"username": name, "password": PASSWORD}).status_code == 401
    assert login(client, name, "a brand new passphrase")["role"] == "operator"


def test_a_users_own_password_change_ends_every_session_and_returns_a_new_one(client, users, grid, street):
    name = new_user(client, users, "operator", street_code=street)
    phone, laptop = login(client, name), login(client, name)
    r = client.post("/v1/me/password", json={"old_password": "not my password", "new_password": "another passphrase"},
                    headers=phone["headers"])
    assert r.status_code == 401 and r.json()["field"] == "old_password"
    r = client.post("/v1/me/password", json={"old_password": PASSWORD, "new_password": "short"},
                    headers=phone["headers"])
    assert r.status_code == 422 and r.json()["field"] == "new_password"
    r = client.post("/v1/me/password", json={"old_password": PASSWORD, "new_password": "another passphrase"},
                    headers=phone["headers"])
    assert r.status_code == 200, r.text
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for t in (phone, laptop):  # the calling session ends too: its token may be the stolen one
        assert_ended(client, t["headers"], grid, "password changed")
    assert personal(client, fresh, grid).status_code == 200
    assert login(client, name, "another passphrase")["username"] == name


def test_a_deleted_users_token_gets_401_and_the_log_keeps_their_name(app, client, users, grid, api_engine, street):
    name = new_user(client, users, "operator", street_code=street)
    op = login(client, name)
    b = browser(app, name)
    assert personal(client, op["headers"], grid).status_code == 200
    logged = query(api_engine, "SELECT count(*) FROM pii_access_log WHERE actor = :u", u=name)[0][0]
    assert logged == 1
    r = client.delete(f"/v1/users/{name}", headers=users["admin"]["headers"])
    assert r.status_code == 204
    assert_ended(client, op["headers"], grid)
    assert_dashboard_ended(b)
    assert query(api_engine, "SELECT count(*) FROM users WHERE username = :u", u=name)[0][0] == 0
    assert query(api_engine, "SELECT count(*) FROM sessions s WHERE NOT EXISTS "
                             "(SELECT 1 FROM users u WHERE u.id = s.user_id)")[0][0] == 0
    # what they read stays logged under their name
    assert query(api_engine, "SELECT count(*) FROM pii_access_log WHERE actor = :u", u=name)[0][0] == logged
    assert client.delete(f"/v1/users/{name}", headers=users["admin"]["headers"]).status_code == 404


def test_logout_ends_the_calling_session_only_and_logout_all_ends_every_one(client, users, grid, street):
    name = new_user(client, users, "operator", street_code=street)
    a, b = login(client, name), login(client, name)
    r = client.post("/v1/auth/logout", headers=a["headers"])
    assert r.status_code == 200 and r.json() == {"sessions_ended": 1}
    assert_ended(client, a["headers"], grid, "logged out")
    assert client.post("/v1/auth/logout", headers=a["headers"]).status_code == 401
    assert client.get("/v1/me", headers=b["headers"]).status_code == 200  # the other device is still in
    c = login(client, name)
    assert client.post("/v1/auth/logout-all", headers=b["headers"]).json() == {"sessions_ended": 2}
    for t in (b, c):
        assert_ended(client, t["headers"], grid)
    # an admin logs a user out everywhere
    d = login(client, name)
    assert client.delete(f"/v1/users/{name}/sessions", headers=users["admin"]["headers"]).json() == {"sessions_ended": 1}
    assert_ended(client, d["headers"], grid, "logged out by admin")


def test_dashboard_logout_revokes_the_session_behind_the_cookie(app, client, users, api_engine):
    name = new_user(client, users, "planner")
    b = browser(app, name)
    cookie = b.cookies.get(COOKIE)
    assert b.get("/dashboard/deck.json").status_code == 200
    r = b.post("/dashboard/logout", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json() == {"logged_out": True}
    # the old cookie, replayed (as a cookie or a bearer token), no longer opens anything
    replay = TestClient(app)
    r = replay.get("/dashboard/deck.json", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert r.status_code == 401 and "logged out" in r.json()["message"]
    assert replay.get("/dashboard/deck.json", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    assert query(api_engine, "SELECT s.kind, s.revoked_reason FROM sessions s JOIN users u ON u.id = s.user_id "
                             "WHERE u.username = :u", u=name)[0] == ("dashboard", "logged out")


def test_a_role_without_the_screen_keeps_no_dashboard_session(app, client, users, api_engine):
    name = new_user(client, users, "intake")
    r = TestClient(app).post("/dashboard/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    rows = query(api_engine, "SELECT s.revoked_at IS NOT NULL FROM sessions s JOIN users u ON u.id = s.user_id "
                             "WHERE u.username = :u", u=name)
    assert [r[0] for r in rows] == [True]


def test_a_revocation_reaches_another_app_instance_at_once(api_engine, api_settings, clock, client, users, grid, street):
    """A second app on the same database, whose cache would trust an entry for a minute: the revocation made
    through the first app reaches it by LISTEN/NOTIFY (the TTL cannot explain a 401 within seconds)."""
    cfg = api_settings.model_copy(update={"session_cache_ttl_s": 60.0})
    other = create_app(cfg, Registry(api_engine, cfg), clock=clock)
    name = new_user(client, users, "operator", street_code=street)
    with TestClient(other) as c2:
        tokens = [login(client, name) for _ in range(2)]
        for t in tokens:
            assert c2.get("/v1/me", headers=t["headers"]).status_code == 200  # now in c2's cache for 60 s
        loads = other.state.auth.cache.loads
        assert c2.get("/v1/me", headers=tokens[0]["headers"]).status_code == 200
        assert other.state.auth.cache.loads == loads  # served from the cache: no database read
        assert client.post("/v1/auth/logout", headers=tokens[0]["headers"]).status_code == 200
        assert _eventually_401(c2, tokens[0]["headers"])
        assert c2.get("/v1/me", headers=tokens[1]["headers"]).status_code == 200  # only that session ended
        # a change to the user ends the other one too
        assert client.patch(f"/v1/users/{name}", json={"active": False},
                            headers=users["admin"]["headers"]).status_code == 200
        assert _eventually_401(c2, tokens[1]["headers"])


def _eventually_401(c, headers, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if c.get("/v1/me", headers=headers).status_code == 401:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def feed_user(client, users, api_engine) -> str:
    """A volunteer (of a team no other test logs in as) whose sessions this module may end."""
    member = query(api_engine, "SELECT m.code FROM team_members m JOIN teams t ON t.id = m.team_id "
                               "WHERE m.role IN ('volunteer', 'party_volunteer') ORDER BY m.code DESC LIMIT 1")[0][0]
    return new_user(client, users, "volunteer", member_code=member)


def test_the_websocket_feed_ends_when_its_session_is_revoked(client, users, feed_user):
    vol = login(client, feed_user)
    with client.websocket_connect("/v1/me/feed/ws", headers=vol["headers"]) as ws:
        assert recv(ws)["type"] == "snapshot"
        assert client.post("/v1/auth/logout", headers=vol["headers"]).status_code == 200
        msg = recv(ws)
        assert msg["type"] == "error" and msg["error"] == "Unauthorized" and "logged out" in msg["message"]
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4401


def test_the_event_stream_ends_when_the_user_is_deactivated(client, users, feed_user, live_server):
    """The stream is served by the second app instance (uvicorn); the user is deactivated through the first."""
    import httpx

    vol = login(client, feed_user)
    with httpx.Client(base_url=live_server, timeout=httpx.Timeout(20.0)) as http, \
            http.stream("GET", "/v1/me/feed", headers=vol["headers"]) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "event: snapshot"
        r = client.patch(f"/v1/users/{feed_user}", json={"active": False}, headers=users["admin"]["headers"])
        assert r.status_code == 200
        rest = list(lines)  # the server ends the stream
    assert "event: error" in rest, rest
    error = rest[rest.index("event: error") + 1]
    assert error.startswith("data: ") and "deactivated" in error
    assert client.patch(f"/v1/users/{feed_user}", json={"active": True},
                        headers=users["admin"]["headers"]).status_code == 200


def test_user_management_is_for_admins_and_checks_its_input(client, users, street):
    name = new_user(client, users, "planner")
    op = users["operator"]["headers"]
    for method, path, body in (("get", "/v1/users", None), ("patch", f"/v1/users/{name}", {"active": False}),
                               ("post", f"/v1/users/{name}/password", {"password": "x" * 12}),
                               ("delete", f"/v1/users/{name}", None), ("delete", f"/v1/users/{name}/sessions", None)):
        r = client.request(method.upper(), path, json=body, headers=op)
        assert r.status_code == 403 and r.json()["field"] == "role", (method, path)
    admin = users["admin"]["headers"]
    listed = client.get("/v1/users", headers=admin).json()
    me = next(u for u in listed if u["username"] == "admin")
    assert me["open_sessions"] >= 1 and me["active"] and "password_hash" not in me
    r = client.patch(f"/v1/users/{name}", json={"role": "operator"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "street_code"
    r = client.patch(f"/v1/users/{name}", json={"role": "operator", "street_code": "000000000"}, headers=admin)
    assert r.status_code == 404 and r.json()["field"] == "street_code"
    r = client.patch(f"/v1/users/{name}", json={"role": "boss"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "role"
    r = client.patch(f"/v1/users/{name}", json={"password_hash": "x"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "password_hash"
    assert client.patch("/v1/users/nobody-at-all", json={"active": False}, headers=admin).status_code == 404
    r = client.post(f"/v1/users/{name}/password", json={"password": "short"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "password"
    # no change, no session ended
    t = login(client, name)
    assert client.patch(f"/v1/users/{name}", json={"role": "planner"}, headers=admin).json()["open_sessions"] == 1
    assert client.get("/v1/me", headers=t["headers"]).status_code == 200


@pytest.fixture
def sole_admin(api_engine):
    """'admin' as the only active admin for the test (others made by other tests are set aside by SQL, which
    ends nothing, and back after)."""
    with api_engine.begin() as conn:
        others = conn.execute(text("UPDATE users SET active = false WHERE role = 'admin' AND active "
                                   "AND username <> 'admin' RETURNING id")).scalars().all()
    yield
    with api_engine.begin() as conn:
        conn.execute(text("UPDATE users SET active = true WHERE id = ANY(:ids)"), {"ids": others})


def test_the_last_active_admin_cannot_be_removed(client, users, api_engine, sole_admin):
    admins = query(api_engine, "SELECT username FROM users WHERE role = 'admin' AND active")
    assert [a[0] for a in admins] == ["admin"]
    admin = users["admin"]["headers"]
    for method, body in (("PATCH", {"active": False}), ("PATCH", {"role": "planner"}), ("DELETE", None)):
        r = client.request(method, "/v1/users/admin", json=body, headers=admin)
        assert r.status_code == 409 and "last active admin" in r.json()["message"], r.text
    assert client.get("/v1/me", headers=admin).status_code == 200


@pytest.fixture
def cli_env(api_engine, monkeypatch):
    monkeypatch.setenv("GRIDMAP_DB_NAME", api_engine.url.database)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cli_manages_users_and_ends_their_sessions(cli_env, client, users, grid, api_engine, street, sole_admin):
    runner = CliRunner()
    name = new_user(client, users, "operator", street_code=street)
    op = login(client, name)
    r = runner.invoke(cli_app, ["users", "list"])
    assert r.exit_code == 0 and name in r.output
    r = runner.invoke(cli_app, ["users", "deactivate", name])
    assert r.exit_code == 0 and "ended" in r.output, r.output
    assert _eventually_401(client, op["headers"])  # the CLI's NOTIFY reached the API process
    r = runner.invoke(cli_app, ["users", "activate", name])
    assert r.exit_code == 0
    op = login(client, name)
    r = runner.invoke(cli_app, ["users", "set-role", name, "planner"])
    assert r.exit_code == 0 and "planner" in r.output
    assert _eventually_401(client, op["headers"])
    r = runner.invoke(cli_app, ["users", "set-role", name, "grid_worker"])
    assert r.exit_code == 1 and "member_code" in r.output and "Traceback" not in r.output
    op = login(client, name)
    r = runner.invoke(cli_app, ["users", "passwd", name], env={"GRIDMAP_NEW_PASSWORD": "set by the command line"})
    assert r.exit_code == 0 and "1 session(s) ended" in r.output
    assert _eventually_401(client, op["headers"])
    op = login(client, name, "set by the command line")
    r = runner.invoke(cli_app, ["users", "delete", name, "--yes"])
    assert r.exit_code == 0
    assert _eventually_401(client, op["headers"])
    r = runner.invoke(cli_app, ["users", "delete", name, "--yes"])
    assert r.exit_code == 1 and "no user" in r.output
    r = runner.invoke(cli_app, ["users", "deactivate", "admin"])
    assert r.exit_code == 1 and "last active admin" in r.output
    with api_engine.connect() as conn:
        assert conn.execute(text("SELECT active FROM users WHERE username = 'admin'")).scalar_one()
