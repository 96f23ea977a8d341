"""Whatever a channel reports, the screen and the metrics keep answering: a property test over valid intakes
(every optional field present or missing), and the findings of the outside probe as tests — a report without
a title, a clock of year 1, NUL bytes in paths — plus the screen's security headers."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from gridmap.core.crs import wgs84_to_gcj02
from gridmap.services.registry import Registry

from .conftest import make_users

pytestmark = [pytest.mark.db]
TZS = [dt.UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
PERSONAL = ["王小明来电 13812345678", "联系人张阿姨 0571-88881234", "身份证330106199001011234", "邮箱 a.b@example.com",
            "姓王，住3幢2单元", "🚒 火警!!", "  ", "'; DROP TABLE events; --", "<script>alert(1)</script>", "ñ\u200b\ufeff"]


@pytest.fixture(scope="module")
def prop(sample_street_db, settings):
    """The real app on its own copy of the sample street (the wall clock: reports are 'now'), bearer tokens of
    the screen's three roles and of an intake account, and the places a report may name."""
    engine = sample_street_db("dashboard_property")
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(engine, cfg))
    users = make_users(engine, "prop")
    with engine.connect() as conn:
        buildings = [r._asdict() for r in conn.execute(text(
            "SELECT code, address, ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat "
            "FROM buildings WHERE grid_code IS NOT NULL AND address IS NOT NULL AND address IN (SELECT address "
            "FROM buildings GROUP BY address HAVING count(*) = 1) ORDER BY code LIMIT 40"))]
        places = [r[0] for r in conn.execute(text(
            "SELECT s.code FROM businesses s JOIN buildings b ON b.id = s.building_id WHERE b.grid_code IS NOT NULL "
            "ORDER BY s.code LIMIT 20"))]
        categories = [r[0] for r in conn.execute(text("SELECT code FROM event_categories ORDER BY code"))]
    with TestClient(app) as client:
        tokens = {}
        for role in ("admin", "planner", "operator", "intake"):
            u = users[role]
            r = client.post("/v1/auth/token", json={"username": u["username"], "password": u["password"]})
            assert r.status_code == 200, r.text
            tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield {"client": client, "tokens": tokens, "buildings": buildings, "places": places,
               "categories": categories, "engine": engine}
    engine.dispose()


def endpoints(event_id: int) -> list[str]:
    return ["/dashboard/deck.json", "/dashboard/api/boundaries.json", "/dashboard/api/grids.json",
            "/dashboard/api/equipment.json", "/dashboard/api/teams.json", "/dashboard/api/events.json",
            "/dashboard/api/routes.json", "/dashboard/api/summary", f"/dashboard/api/events/{event_id}"]


def check_screen(p, event_id: int, roles=("admin", "planner", "operator")) -> None:
    c = p["client"]
    for role in roles:
        for path in endpoints(event_id):
            r = c.get(path, headers=p["tokens"][role])
            assert r.status_code == 200, (role, path, r.status_code, r.text[:300])
    for path in ("/v1/metrics/events", "/v1/metrics/overdue"):
        for role in ("admin", "planner"):
            r = c.get(path, headers=p["tokens"][role])
            assert r.status_code == 200, (role, path, r.text[:300])


def test_a_report_without_a_title_keeps_the_screen_up_for_everyone(prop):
    """The README's own intake example has no title: it took /dashboard/api/events.json and /summary down."""
    b = prop["buildings"][0]
    r = prop["client"].post("/v1/events", headers=prop["tokens"]["intake"], json={
        "channel": "hotline_12345", "external_id": f"README-{uuid.uuid4().hex[:8]}", "category": "neighbour_dispute",
        "location": {"lon": b["lon"], "lat": b["lat"]}, "reporter": {"name": "王小明", "phone": "13812345678"}})
    assert r.status_code == 201, r.text
    eid = r.json()["event"]["id"]
    check_screen(prop, eid)
    titles = [e["title"] for e in prop["client"].get("/dashboard/api/summary", headers=prop["tokens"]["planner"]
                                                       ).json()["events"] if e["id"] == eid]
    assert titles == [None]


_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=60)


@st.composite
def reports(draw, p) -> dict:
    b = draw(st.sampled_from(p["buildings"]))
    how = draw(st.sampled_from(["wgs84", "gcj02", "building_code", "address", "place_code"]))
    if how == "wgs84":
        location = {"lon": b["lon"], "lat": b["lat"]}
    elif how == "gcj02":
        glon, glat = (float(v) for v in wgs84_to_gcj02(b["lon"], b["lat"]))
        location = {"lon": glon, "lat": glat, "coords": "gcj02"}
    elif how == "place_code":
        location = {"place_code": draw(st.sampled_from(p["places"]))}
    else:
        location = {how: b["code" if how == "building_code" else "address"]}
    channels = ["qr_code"] if how == "place_code" else ["hotline_12345", "chat_group", "patrol", "smart_alarm"]
    body = {"channel": draw(st.sampled_from(channels)), "category": draw(st.sampled_from(p["categories"])),
            "location": location}
    optional = {
        "title": st.one_of(st.sampled_from(PERSONAL[:6] + PERSONAL[7:]), _text),
        "description": st.one_of(st.sampled_from(PERSONAL), _text, st.just("")),
        "severity": st.integers(1, 4),
        "reporter": st.fixed_dictionaries({}, optional={
            "name": st.one_of(st.sampled_from(["王小明", "欧阳娜娜", "Li"]), _text.map(lambda s: s[:50])),
            "phone": st.from_regex(r"\A\+?[0-9][0-9 \-]{2,19}\Z")}),
        "reported_at": st.builds(lambda minutes, tz: (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes))
                                 .astimezone(tz).isoformat(), st.integers(0, 29 * 24 * 60), st.sampled_from(TZS)),
        "dispatch": st.booleans(),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_valid_report_keeps_every_dashboard_and_metrics_endpoint_up(prop, data):
    body = data.draw(reports(prop))
    body["external_id"] = f"PROP-{uuid.uuid4().hex[:12]}"  # not drawn: a replayed example is a new report
    r = prop["client"].post("/v1/events", headers=prop["tokens"]["intake"], json=body)
    assert r.status_code == 201, (body, r.text)
    eid = r.json()["event"]["id"]
    role = data.draw(st.sampled_from(["admin", "planner", "operator"]), label="screen role")
    check_screen(prop, eid, roles=(role,))


# -- the probe's other findings --------------------------------------------------------------------------------
@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00",
                                "0001-01-01"])
def test_a_clock_out_of_range_is_a_422_naming_at(prop, at):
    c = prop["client"]
    for path in ("/dashboard", "/dashboard/deck.json", "/dashboard/api/grids.json", "/dashboard/api/teams.json",
                 "/dashboard/api/events.json", "/dashboard/api/summary", "/dashboard/api/events/1",
                 "/dashboard/api/teams/T001", f"/dashboard/api/buildings/{prop['buildings'][0]['code']}"):
        r = c.get(path, params={"at": at}, headers=prop["tokens"]["admin"])
        assert r.status_code == 422 and r.json()["field"] == "at", (path, r.status_code, r.text[:200])


@pytest.mark.parametrize("path", ["/dashboard/static/%00", "/dashboard/static/%00.js", "/dashboard/static/deckgl-%00.js",
                                  "/dashboard/static/..%2F..%2Fpyproject.toml", "/dashboard/api/buildings/%00",
                                  "/dashboard/api/buildings/B%00", "/dashboard/api/teams/%00", "/dashboard/api/events/%00",
                                  "/dashboard/api/events/99999999999999999999"])
def test_nul_bytes_and_huge_ids_in_a_path_are_4xx_with_or_without_a_session(prop, path):
    c = prop["client"]
    for headers in ({}, prop["tokens"]["admin"]):
        r = c.get(path, headers=headers)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/json"), \
            (path, r.status_code, r.text[:200])


def test_the_screen_sends_its_security_headers(prop):
    c = prop["client"]
    for path in ("/dashboard", "/dashboard/login", "/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css",
                 "/dashboard/api/summary", "/dashboard/static/nope.js"):
        r = c.get(path, headers=prop["tokens"]["planner"])
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] in ("no-referrer", "same-origin"), path
    api = c.get("/v1/me", headers=prop["tokens"]["planner"])
    assert api.headers["x-content-type-options"] == "nosniff" and api.headers["referrer-policy"] == "same-origin"
    assert "content-security-policy" not in api.headers  # the API's /docs loads Swagger UI from its CDN
