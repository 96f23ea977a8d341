"""Roles and access: tokens, start-up refusal of default secrets, role isolation, and personal data that
never reaches volunteers or planners (and whose every read by others is logged)."""

from __future__ import annotations

import itertools
import os

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from gridmap.errors import ConfigError
from gridmap.services import auth
from gridmap.services.registry import Registry
from tests.api.conftest import PASSWORD, login, query, team_user

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def other_street(api_engine):
    """A second street (east of the sample one, empty) and its operator, to test the street scope."""
    with api_engine.begin() as conn:
        conn.execute(text("INSERT INTO areas (code, level, name, parent_code, geom) VALUES ('330106999', 'street', "
                          "'Elsewhere', '330106', ST_Multi(ST_MakeEnvelope(120.4, 30.4, 120.41, 30.41, 4326)))"))
    return "330106999"


def report(client, users, loc, **kw) -> dict:
    body = {"channel": "hotline_12345", "external_id": f"AC-{next(_ids):04d}", "category": "neighbour_dispute",
            "location": loc, "reporter": {"name": "赵六", "phone": "13700002222"}, **kw}
    r = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert r.status_code == 201, r.text
    return r.json()


def point_in(api_engine, grid: str | None = None, not_grid: str | None = None) -> dict:
    r = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat "
                          "FROM buildings WHERE (CAST(:g AS text) IS NULL OR grid_code = :g) "
                          "AND (CAST(:n AS text) IS NULL OR grid_code <> :n) ORDER BY code DESC LIMIT 1",
              g=grid, n=not_grid)[0]
    return {"lon": r.lon, "lat": r.lat}


def pii_reads(api_engine) -> int:
    return query(api_engine, "SELECT count(*) FROM pii_access_log")[0][0]


def test_no_bad_or_expired_token_gets_401(client, users, clock):
    assert client.get("/v1/me").status_code == 401
    r = client.get("/v1/me", headers={"Authorization": "Bearer gm1.e30.AAAA"})
    assert r.status_code == 401 and r.json()["field"] == "Authorization" and "log in" in r.json()["fix"]
    forged = users["planner"]["token"].rsplit(".", 1)[0] + "." + users["admin"]["token"].rsplit(".", 1)[1]
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    r = client.post("/v1/auth/token", json={"username": "admin", "password": "wrong password!!"})
    assert r.status_code == 401
    r2 = client.post("/v1/auth/token", json={"username": "nobody-here", "password": "wrong password!!"})
    assert r2.status_code == 401 and r2.json()["message"] == r.json()["message"]
    me = client.get("/v1/me", headers=users["gridworker"]["headers"]).json()
    assert me["role"] == "grid_worker" and me["team"] and me["grids"]
    signer = auth.TokenSigner(b"x" * 40, 60)
    tok, _ = signer.issue(user_id=1, session_id="6f1c1f7e-34a8-4d55-9d0e-2f5bb5b8f0a1", version=1, now=clock())
    assert signer.verify(tok, clock()).user_id == 1
    with pytest.raises(auth.Unauthorized, match="expired"):
        signer.verify(tok, clock() + __import__("datetime").timedelta(seconds=61))


def test_passwords_are_argon2_hashes(api_engine, users):
    hashes = [h for (h,) in query(api_engine, "SELECT password_hash FROM users")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)


@pytest.mark.parametrize("secret, words", [("changeme", "default"), ("secret", "default"),
                                           ("short-but-random-9f3", "fewer than 32"), ("a" * 40, "trivial")])
def test_start_up_refuses_default_or_weak_secrets(api_engine, api_settings, secret, words):
    bad = api_settings.model_copy(update={"secret_key": SecretStr(secret)})
    app = create_app(bad, Registry(api_engine, bad))
    with pytest.raises(ConfigError, match=words), TestClient(app):
        pass


def test_start_up_without_a_secret_needs_the_key_file_setup_writes(api_engine, api_settings, tmp_path):
    s = api_settings.model_copy(update={"secret_key": None, "data_dir": tmp_path})
    with pytest.raises(ConfigError, match="gridmap setup"), TestClient(create_app(s, Registry(api_engine, s))):
        pass
    path, created = auth.write_secret(s)
    assert created and oct(os.stat(path).st_mode & 0o777) == "0o600" and len(path.read_text()) >= 48
    with TestClient(create_app(s, Registry(api_engine, s))) as c:
        assert c.get("/health").status_code == 200
    assert auth.write_secret(s) == (path, False)  # kept, not replaced


def test_a_volunteer_sees_only_its_own_assignments_and_grid(client, users, api_engine, field):
    gw = users["gridworker"]
    grid = client.get("/v1/me", headers=gw["headers"]).json()["grids"][0]
    mine = report(client, users, point_in(api_engine, grid=grid), category="parking", dispatch=False)
    out = report(client, users, point_in(api_engine, not_grid=grid), category="environment")
    team = out["dispatch"]["team"]
    assert team and team != client.get("/v1/me", headers=gw["headers"]).json()["team"]
    vol = team_user(client, api_engine, users["admin"]["headers"], team)
    aid, eid = out["dispatch"]["assignment_id"], out["event"]["id"]
    # the assigned volunteer reads its assignment and the event, without the reporter's personal data
    assert client.get(f"/v1/assignments/{aid}", headers=vol["headers"]).status_code == 200
    ev = client.get(f"/v1/events/{eid}", headers=vol["headers"])
    assert ev.status_code == 200 and ev.json()["reporter"] is None
    # the grid worker of another grid reads neither, and cannot answer for the other team
    assert client.get(f"/v1/assignments/{aid}", headers=gw["headers"]).status_code == 403
    r = client.post(f"/v1/assignments/{aid}/accept", json={}, headers=gw["headers"])
    assert r.status_code == 403 and r.json()["field"] == "assignment_id"
    assert client.get(f"/v1/events/{eid}", headers=gw["headers"]).status_code == 403
    assert client.get(f"/v1/events/{eid}/history", headers=gw["headers"]).status_code == 403
    listed = client.get("/v1/events", params={"limit": 500}, headers=gw["headers"]).json()
    assert eid not in [e["id"] for e in listed]
    assert all(e["reporter"] is None for e in listed)
    # ... but reads the events of its own grid
    own = client.get(f"/v1/events/{mine['event']['id']}", headers=gw["headers"])
    assert own.status_code == 200 and own.json()["reporter"] is None and own.json()["area"]["grid"] == grid
    # nor does it report another team's position, nor change another team's status
    r = client.put(f"/v1/teams/{team}/position", json={"lon": 120.1, "lat": 30.27}, headers=gw["headers"])
    assert r.status_code == 403 and r.json()["field"] == "team"
    assert client.put(f"/v1/teams/{team}/status", json={"status": "off_duty"}, headers=gw["headers"]).status_code == 403


def test_personal_data_never_reaches_volunteers_or_planners(client, users, api_engine, field):
    out = report(client, users, point_in(api_engine, not_grid="-"), category="fraud")
    eid = out["event"]["id"]
    vol = team_user(client, api_engine, users["admin"]["headers"], out["dispatch"]["team"])
    grid = client.get("/v1/me", headers=users["gridworker"]["headers"]).json()["grids"][0]
    before = pii_reads(api_engine)
    for who in (users["planner"], vol, users["gridworker"], users["intake"]):
        r = client.get("/v1/residents", params={"area": grid, "personal": "true", "purpose": "x"}, headers=who["headers"])
        assert r.status_code == 403, (who["username"], r.text)
    for who in (users["planner"], users["intake"]):
        assert client.get(f"/v1/events/{eid}", headers=who["headers"]).status_code == 403
        assert client.get("/v1/events", headers=who["headers"]).status_code == 403
    assert client.get("/v1/residents", params={"area": grid}, headers=vol["headers"]).status_code == 403
    assert pii_reads(api_engine) == before  # refused reads log nothing: nothing was read
    # the grid worker sees its own grid's residents, without personal fields
    r = client.get("/v1/residents", params={"area": grid, "limit": 50}, headers=users["gridworker"]["headers"])
    assert r.status_code == 200 and len(r.json()) > 0
    assert all(x["name"] is None and x["id_card"] is None and x["phone"] is None for x in r.json())
    assert "赵六" not in r.text and "13700002222" not in client.get(
        f"/v1/events/{eid}", headers=vol["headers"]).text
    # the planner gets aggregates only: no names, no phones
    m = client.get("/v1/metrics/events", params={"group_by": "community", "period": "all"},
                   headers=users["planner"]["headers"])
    assert m.status_code == 200 and "赵六" not in m.text and "1370000" not in m.text
    assert pii_reads(api_engine) == before


def test_every_read_of_personal_data_by_an_operator_is_logged(client, users, api_engine, field):
    out = report(client, users, point_in(api_engine), category="food_drug_safety")
    eid = out["event"]["id"]
    op = users["operator"]
    before = pii_reads(api_engine)
    ev = client.get(f"/v1/events/{eid}", params={"purpose": "回访"}, headers=op["headers"]).json()
    assert ev["reporter"] == {"name": "赵六", "phone": "13700002222"}
    grid = ev["area"]["grid"]
    r = client.get("/v1/residents", params={"area": grid, "personal": "true"}, headers=op["headers"])
    assert r.status_code == 422 and r.json()["field"] == "purpose"
    r = client.get("/v1/residents", params={"area": grid, "personal": "true", "purpose": "入户走访"},
                   headers=op["headers"])
    assert r.status_code == 200 and r.json()
    assert all("*" in x["id_card"] for x in r.json() if x["id_card"])  # masked
    rows = query(api_engine, "SELECT actor, purpose, table_name FROM pii_access_log ORDER BY id DESC LIMIT 2")
    assert [tuple(x) for x in rows] == [("operator", "入户走访", "resident_pii"),
                                        ("operator", "回访", "event_reporters")]
    assert pii_reads(api_engine) == before + 2


def test_an_operator_acts_only_inside_their_street(client, users, api_engine, other_street, field):
    admin = users["admin"]["headers"]
    r = client.post("/v1/users", json={"username": "operator2", "password": PASSWORD, "role": "operator",
                                       "street_code": other_street}, headers=admin)
    assert r.status_code == 201
    op2 = login(client, "operator2")
    out = report(client, users, point_in(api_engine), category="public_security")
    eid, aid = out["event"]["id"], out["dispatch"]["assignment_id"]
    assert client.get(f"/v1/events/{eid}", headers=op2["headers"]).status_code == 403
    r = client.post(f"/v1/events/{eid}/transitions", json={"action": "accept"}, headers=op2["headers"])
    assert r.status_code == 403 and r.json()["field"] == "street"
    assert client.post(f"/v1/events/{eid}/escalate", json={}, headers=op2["headers"]).status_code == 403
    assert client.post(f"/v1/assignments/{aid}/accept", json={}, headers=op2["headers"]).status_code == 403
    assert client.get("/v1/events", headers=op2["headers"]).json() == []
    assert client.get("/v1/teams", headers=op2["headers"]).json() == []
    m = client.get("/v1/metrics/events", params={"period": "all"}, headers=op2["headers"]).json()
    assert m["street"] == other_street and m["rows"] == []
    assert client.get(f"/v1/events/{eid}", headers=users["operator"]["headers"]).status_code == 200
    # only admins create users
    r = client.post("/v1/users", json={"username": "sneaky", "password": PASSWORD, "role": "admin"},
                    headers=users["operator"]["headers"])
    assert r.status_code == 403
