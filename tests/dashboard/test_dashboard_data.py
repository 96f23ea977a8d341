"""The dashboard's HTTP endpoints and service on the whole sample street (no browser): tiles, per-viewport
layers, drill-down, figures, bounded sizes, compression, and no personal data anywhere; sessions (login,
logout, expiry, 401 on every data endpoint) and roles (403 for team and intake accounts, an operator's
street only, no personal data in drill-down for anyone)."""

from __future__ import annotations

import datetime as dt
import gzip
import math
import re

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from gridmap.errors import InvalidInput
from gridmap.services import auth
from gridmap.services.dashboard import Dashboard, DashboardPolicy

from .conftest import COOKIE_NAME, OTHER

pytestmark = [pytest.mark.db, pytest.mark.slow]


def tile_range(bbox, z):
    def tx(lon):
        return int((lon + 180) / 360 * 2**z)

    def ty(lat):
        r = math.radians(lat)
        return int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * 2**z)

    return range(tx(bbox[0]), tx(bbox[2]) + 1), range(ty(bbox[3]), ty(bbox[1]) + 1)


def logged_in(base_url: str, user: dict, **kw) -> httpx.Client:
    """An HTTP client holding a dashboard session (the cookie POST /dashboard/login sets)."""
    c = httpx.Client(base_url=base_url, timeout=60, **kw)
    r = c.post("/dashboard/login", json={"username": user["username"], "password": user["password"]})
    assert r.status_code == 200, r.text
    return c


@pytest.fixture(scope="module")
def client(server, dash_users):
    c = logged_in(server, dash_users["admin"])
    yield c
    c.close()


def q(at: dt.datetime) -> dict:
    return {"at": at.isoformat()}


def test_every_building_is_in_exactly_one_tile_with_its_counts(client, dash_engine):
    dash = Dashboard(dash_engine)
    xs, ys = tile_range(dash.extent(), 13)
    seen: dict[str, dict] = {}
    for x in xs:
        for y in ys:
            r = client.get(f"/dashboard/tiles/buildings/13/{x}/{y}.json")
            assert r.status_code == 200
            for f in r.json()["features"]:
                assert f["properties"]["code"] not in seen  # never twice
                seen[f["properties"]["code"]] = f["properties"]
    with dash_engine.connect() as conn:
        truth = dict(conn.execute(text(
            "SELECT b.code, count(r.id) FROM buildings b LEFT JOIN residents r ON r.building_id = b.id GROUP BY 1")).all())
    assert set(seen) == set(truth) and len(seen) == 8966
    assert all(seen[c]["residents"] == n for c, n in truth.items())
    assert sum(p["residents"] for p in seen.values()) == 260_000
    assert set(next(iter(seen.values()))) == {"code", "address", "floors", "height", "use", "residents", "businesses"}


def test_tiles_and_bboxes_are_checked(client):
    r = client.get("/dashboard/tiles/buildings/5/1/1.json")
    assert r.status_code == 422 and r.json()["field"] == "z"
    r = client.get("/dashboard/tiles/buildings/13/99999/1.json")
    assert r.status_code == 422 and r.json()["field"] == "x/y"
    r = client.get("/dashboard/api/equipment.json", params={"bbox": "30.27,120.09,30.28,120.10"})
    assert r.status_code == 422 and "swapped" in r.json()["message"]
    r = client.get("/dashboard/api/teams.json", params={"bbox": "1,2,3"})
    assert r.status_code == 422 and r.json()["field"] == "bbox"
    r = client.get("/dashboard/api/summary", params={"at": "2026-10-31T12:00:00"})
    assert r.status_code == 422 and r.json()["field"] == "at"


def test_viewport_layers_are_filtered_and_bounded(client, dash_engine, sample_now):
    box = (120.09, 30.27, 120.10, 30.28)
    r = client.get("/dashboard/api/equipment.json", params={"bbox": ",".join(map(str, box))})
    got = r.json()
    with dash_engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM fire_equipment WHERE geom && ST_MakeEnvelope(:a,:b,:c,:d,4326)"),
                         dict(zip("abcd", box, strict=True))).scalar_one()
    assert len(got) == n > 0
    assert all(box[0] <= e["position"][0] <= box[2] and box[1] <= e["position"][1] <= box[3] for e in got)
    small = Dashboard(dash_engine, DashboardPolicy(max_equipment=10))
    assert len(small.equipment()) == 10


def test_team_state_uses_the_clock(client, dash_engine, sample_now):
    later = sample_now + dt.timedelta(hours=1)
    now_states = {t["code"]: t["state"] for t in client.get("/dashboard/api/teams.json", params=q(sample_now)).json()}
    later_states = {t["code"]: t["state"] for t in client.get("/dashboard/api/teams.json", params=q(later)).json()}
    with dash_engine.connect() as conn:
        rows = conn.execute(text("SELECT code, status, position_at FROM teams WHERE geom IS NOT NULL")).all()
    for code, status, at in rows:
        fresh = (sample_now - at).total_seconds() <= 300
        assert now_states[code] == (status if fresh or status == "off_duty" else "stale"), code
        assert later_states[code] == ("off_duty" if status == "off_duty" else "stale")
    assert "available" in now_states.values() and "stale" in now_states.values()


def test_grids_carry_open_events_and_a_safety_index(client, dash_engine, sample_now):
    fc = client.get("/dashboard/api/grids.json", params=q(sample_now)).json()
    props = [f["properties"] for f in fc["features"]]
    with dash_engine.connect() as conn:  # the screen opens on the sample's main (most populous) street
        street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                   "ORDER BY population DESC LIMIT 1")).scalar_one()
        n_grids = conn.execute(text("SELECT count(*) FROM areas WHERE level = 'grid' AND valid_to IS NULL "
                                    "AND code LIKE :s || '%'"), {"s": street}).scalar_one()
    assert len(props) == n_grids
    assert all(0 <= p["safety_index"] <= 100 for p in props)
    assert len({p["safety_index"] for p in props}) > 10
    with dash_engine.connect() as conn:
        n_open = conn.execute(text("SELECT count(*) FROM events WHERE status IN ('reported','dispatched','accepted',"
                                   "'on_site') AND reported_at <= :t AND grid_code IS NOT NULL AND street_code = :s"),
                              {"t": sample_now, "s": street}).scalar_one()
    assert sum(p["open_events"] for p in props) == n_open


def test_summary_figures_match_sql(client, dash_engine, sample_now):
    s = client.get("/dashboard/api/summary", params=q(sample_now)).json()
    day = sample_now.replace(hour=0, minute=0, second=0, microsecond=0)
    with dash_engine.connect() as conn:
        n_open, median = conn.execute(text("""
            SELECT count(*) FILTER (WHERE status IN ('reported','dispatched','accepted','on_site')),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - reported_at))
                     FILTER (WHERE reported_at >= :day AND on_site_at <= :t)
            FROM events WHERE reported_at <= :t AND street_code = (SELECT code FROM areas WHERE level = 'street'
                AND valid_to IS NULL ORDER BY population DESC LIMIT 1)"""), {"t": sample_now, "day": day}).one()
    f = s["figures"]
    assert f["open_events"] == n_open == len(s["events"])
    assert f["median_response_s_today"] == pytest.approx(median)
    assert 0 < f["closure_rate"] < 1
    ov = [e["overdue"] for e in s["events"]]
    assert ov == sorted(ov, reverse=True) and any(ov)  # overdue first


def test_building_detail_has_counts_and_no_personal_data(client, dash_engine, sample_now):
    with dash_engine.connect() as conn:
        code, n_res, n_biz = conn.execute(text("""
            SELECT b.code, (SELECT count(*) FROM residents r WHERE r.building_id = b.id),
                   (SELECT count(*) FROM businesses z WHERE z.building_id = b.id) AS nb
            FROM buildings b WHERE EXISTS (SELECT 1 FROM residents r WHERE r.building_id = b.id)
            ORDER BY nb DESC, b.id LIMIT 1""")).one()
        pii = conn.execute(text("SELECT p.name, p.id_card, p.phone FROM resident_pii p JOIN residents r "
                                "ON r.id = p.resident_id JOIN buildings b ON b.id = r.building_id "
                                "WHERE b.code = :c"), {"c": code}).all()
    r = client.get(f"/dashboard/api/buildings/{code}", params=q(sample_now))
    b = r.json()
    assert b["residents"] == n_res and b["businesses_total"] == n_biz > 0
    n = b["nearest_responder"]
    assert n["kind"] in ("micro_fire_station", "micro_fire_truck") and n["status"] == "in_service"
    assert n["eta_s"] > 0 and len(n["path"]) >= 2
    body = r.text
    for _name, id_card, phone in pii:
        assert id_card not in body and (phone is None or phone not in body)
    assert not any(k in body for k in ('"id_card"', '"phone"', '"name":"' + pii[0][0]))
    assert client.get("/dashboard/api/buildings/NOPE").status_code == 404


def test_event_and_team_drilldown(client, dash_engine, dispatched, sample_now):
    e = client.get(f"/dashboard/api/events/{dispatched['event_id']}", params=q(sample_now)).json()
    assert e["team"] == dispatched["team"] and e["status"] == "dispatched"
    assert e["assignment"]["status"] == "offered" and e["assignment"]["eta_s"] > 0
    assert len(e["assignment"]["path"]) >= 2
    assert [t["what"] for t in e["timeline"]][:2] == ["reported", "dispatched"]
    t = client.get(f"/dashboard/api/teams/{dispatched['team']}", params=q(sample_now)).json()
    assert t["assignment"]["event_id"] == dispatched["event_id"] and t["state"] == "assigned"
    routes = client.get("/dashboard/api/routes.json").json()
    with dash_engine.connect() as conn:
        active = {r[0] for r in conn.execute(text("SELECT event_id FROM assignments WHERE status IN "
                                                   "('offered', 'accepted') AND route IS NOT NULL"))}
    assert {r["event_id"] for r in routes} == active and dispatched["event_id"] in active


def test_responses_are_compressed_and_the_deck_is_offline(client, server):
    r = client.get("/dashboard/api/grids.json", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and int(r.headers["content-length"]) < len(r.content) / 3
    raw = client.get("/dashboard/api/grids.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.json() == r.json()
    b = client.get("/dashboard/static/deckgl-0.9.3.js", headers={"Accept-Encoding": "gzip"})
    assert b.status_code == 200 and "createDeck" in b.text and b.headers["cache-control"].startswith("public")
    assert len(gzip.compress(b.content)) > 500_000  # the real bundle, not a stub
    deck = client.get("/dashboard/deck.json").json()
    assert deck.get("mapProvider") is None and deck.get("mapStyle") is None
    assert [layer["id"] for layer in deck["layers"]] == ["grids", "boundaries", "buildings", "equipment", "routes",
                                                         "teams", "events", "selection"]
    urls = [layer["data"] for layer in deck["layers"] if isinstance(layer["data"], str)]
    assert len(urls) == 7 and all(u.startswith("/dashboard/") for u in urls)
    page = client.get("/dashboard").text
    assert 'id="gm-map"' in page  # the map, not the login form: the client has a session
    assert "http://" not in page and "https://" not in page
    assert client.get("/dashboard/static/../app.py").status_code == 404


def test_service_rejects_a_naive_clock(dash_engine):
    with pytest.raises(InvalidInput, match="time zone"):
        Dashboard(dash_engine).summary(dt.datetime(2026, 10, 31, 12))


# -- sessions and roles -----------------------------------------------------------------------------------------
PUBLIC = {("/dashboard", "GET"), ("/dashboard/login", "GET"), ("/dashboard/login", "POST"),
          ("/dashboard/logout", "POST"), ("/dashboard/static/deckgl-{version}.js", "GET"),
          ("/dashboard/static/{name}", "GET"),
          # the screens of the levels: like /dashboard, the login form without a session
          ("/dashboard/district", "GET"), ("/dashboard/unit", "GET")}
#: The one write under /dashboard that takes the screen's cookie (only from the screen's own page, as JSON):
#: the unit inbox's buttons.
WRITES = {("/dashboard/api/unit/inbox/{event_id}/{action}", "POST")}
SAMPLE_PARAMS = {"z": "13", "x": "6825", "y": "3392", "code": "B000001", "event_id": "1", "photo_id": "1",
                 "action": "take"}


def dashboard_routes(settings) -> list[tuple[str, str]]:
    """Every (path, method) under /dashboard, read from the app: its OpenAPI paths (whichever module adds
    them) and the dashboard router's own routes (those hidden from the schema too). A new endpoint is in."""
    from api import dashboard

    found = {(path, m.upper()) for path, ops in create_app(settings).openapi()["paths"].items()
             if path.startswith("/dashboard") for m in ops}
    found |= {(r.path, m) for r in dashboard.router.routes for m in (getattr(r, "methods", None) or ())}
    return sorted((p, m) for p, m in found if m != "HEAD")


def fill(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


def test_every_data_endpoint_needs_a_session(server, settings, client):
    routes = dashboard_routes(settings)
    data = [(p, m) for p, m in routes if (p, m) not in PUBLIC]
    assert {r for r in routes if r in PUBLIC} == PUBLIC  # the public ones are exactly these
    # reads only (the cookie changes nothing), but for the one write that says so
    assert len(data) >= 12 and {(p, m) for p, m in data if m != "GET"} == WRITES, data
    bad = client.cookies.get(COOKIE_NAME)[:-3] + "xyz"
    with httpx.Client(base_url=server, timeout=60) as anon:
        for path, method in data:
            for headers in ({}, {"Cookie": f"{COOKIE_NAME}={bad}"}):
                if method == "POST":  # from the screen's own page, as JSON: what is left is the session
                    r = anon.post(fill(path), json={}, headers={**headers, "Origin": server})
                else:
                    r = anon.get(fill(path), headers=headers)
                assert r.status_code == 401, (path, headers, r.status_code)
                err = r.json()
                assert err["field"] == "session" and "/dashboard/login" in err["fix"], (path, err)
            if method == "POST":
                continue  # the admin's session acting: tests/dashboard/test_unit_inbox_browser.py
            # the admin's session opens it (a unit's inbox: the admin names the unit)
            params = {"unit": "MALL1-DESK"} if path.endswith("/unit/inbox.json") else {}
            assert client.get(fill(path), params=params).status_code in (200, 404), path
        # the page itself answers with the login form, not the map
        page = anon.get("/dashboard")
        assert page.status_code == 200 and 'id="gm-login"' in page.text and "gm-config" not in page.text
        # the session cookie is not a credential for the API: /v1 reads only the bearer header
        r = anon.get("/v1/me", headers={"Cookie": f"{COOKIE_NAME}={client.cookies.get(COOKIE_NAME)}"})
        assert r.status_code == 401


def test_login_logout_and_the_cookie(server, dash_users):
    admin = dash_users["admin"]
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.post("/dashboard/login", json={"username": admin["username"], "password": "not-the-password"})
        assert r.status_code == 401 and "wrong password" in r.json()["message"] and COOKIE_NAME not in r.headers.get(
            "set-cookie", "")
        # the HTML form (no script): the form again with the message, or a redirect with the cookie
        r = c.post("/dashboard/login", data={"username": admin["username"], "password": "not-the-password"})
        assert r.status_code == 401 and 'id="gm-login-error"' in r.text and "wrong password" in r.text
        r = c.post("/dashboard/login", data={"username": admin["username"], "password": admin["password"],
                                             "next": "https://elsewhere.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"  # never off this screen
        cookie = r.headers["set-cookie"]
        assert all(k in cookie for k in ("HttpOnly", "SameSite=strict", "Path=/dashboard", "Max-Age=")), cookie
        assert c.get("/dashboard/api/summary").status_code == 200
        assert 'id="gm-map"' in c.get("/dashboard").text
        # a login or logout posted by another site's page is refused
        r = c.post("/dashboard/logout", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["field"] == "Origin"
        assert c.get("/dashboard/api/summary").status_code == 200
        r = c.post("/dashboard/login", json={"username": admin["username"], "password": admin["password"]},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        # logout clears the cookie: the data endpoints are closed again
        r = c.post("/dashboard/logout")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert c.get("/dashboard/api/summary").status_code == 401
        # bad bodies name the field
        r = c.post("/dashboard/login", json={"username": admin["username"]})
        assert r.status_code == 422 and r.json()["field"] == "password"
        r = c.post("/dashboard/login", content=b"[1]", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "body"


@pytest.mark.parametrize("role", ["volunteer", "grid_worker", "intake"])
def test_roles_without_the_screen_get_403(server, dash_users, role):
    user = dash_users[role]
    creds = {"username": user["username"], "password": user["password"]}
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.post("/dashboard/login", json=creds)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert "operators, planners and admins" in r.json()["message"]
        token = c.post("/v1/auth/token", json=creds).json()["access_token"]
        for path in ("/dashboard/api/summary", "/dashboard/api/events.json", "/dashboard/deck.json"):
            r = c.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 403 and "operators, planners and admins" in r.json()["message"], path
            assert "/v1/me" in r.json()["fix"] or "/v1/events" in r.json()["fix"]


def codes(rows, key="code") -> set:
    return {r.get(key) if "properties" not in r else r["properties"][key] for r in rows}


def test_an_operator_sees_only_their_street(scope_app):
    s = scope_app
    main_op, other_op, admin = (logged_in_tc(s, s.users[k]) for k in ("operator", "other_operator", "admin"))
    at = {"at": s.now.isoformat()}
    with s.engine.connect() as conn:
        street = s.users["operator"]["street"]
        main_events = {r[0] for r in conn.execute(text(
            "SELECT code FROM events WHERE street_code = :s AND reported_at <= :t AND (status IN ('reported', "
            "'dispatched', 'accepted', 'on_site') OR (status = 'resolved' AND resolved_at >= :t2))"),
            {"s": street, "t": s.now, "t2": s.now - dt.timedelta(hours=2)})}
        main_teams = {r[0] for r in conn.execute(text(
            "SELECT t.code FROM teams t JOIN areas g ON g.code = t.home_grid_code AND g.valid_to IS NULL JOIN areas c "
            "ON c.code = g.parent_code AND c.valid_to IS NULL WHERE c.parent_code = :s AND t.geom IS NOT NULL"),
            {"s": street})}
        main_equipment = {r[0] for r in conn.execute(text(
            "SELECT f.code FROM fire_equipment f JOIN areas a ON a.code = :s AND a.valid_to IS NULL "
            "AND ST_Intersects(a.geom, f.geom)"), {"s": street})}
        main_event_id, main_building, main_team = conn.execute(text(
            "SELECT (SELECT id FROM events WHERE street_code = :s ORDER BY id LIMIT 1), "
            "(SELECT code FROM buildings WHERE community_code LIKE :s || '%' ORDER BY id LIMIT 1), "
            "(SELECT min(code) FROM teams WHERE code <> :t)"), {"s": street, "t": OTHER["team"]}).one()
        other_event_id = conn.execute(text("SELECT id FROM events WHERE code = :c"), {"c": OTHER["event"]}).scalar_one()
    assert len(main_events) > 50 and len(main_teams) > 50 and len(main_equipment) > 50

    def layer(c, name, **params):  # the screen's clock for the layers that take one
        timed = name in ("events.json", "teams.json", "grids.json", "summary")
        r = c.get(f"/dashboard/api/{name}", params=(at if timed else {}) | params)
        assert r.status_code == 200, (name, r.text)
        return r.json()

    # the operator of the sample street: exactly their street, nothing of the other
    assert codes(layer(main_op, "events.json")) == main_events
    assert codes(layer(main_op, "teams.json")) == main_teams
    assert codes(layer(main_op, "equipment.json")) == main_equipment
    grids = codes(layer(main_op, "grids.json")["features"])
    with s.engine.connect() as conn:
        n_grids = conn.execute(text("SELECT count(*) FROM areas WHERE level = 'grid' AND valid_to IS NULL "
                                    "AND code LIKE :s || '%'"), {"s": street}).scalar_one()
    assert len(grids) == n_grids and OTHER["grid"] not in grids
    summary = layer(main_op, "summary")
    assert OTHER["event"] not in codes(summary["events"]) and summary["figures"]["open_events"] == len(summary["events"])

    # the operator of the other street: none of the sample street's events, teams, equipment, grids, buildings
    assert codes(layer(other_op, "events.json")) == {OTHER["event"]}
    assert codes(layer(other_op, "teams.json")) == {OTHER["team"]}
    assert codes(layer(other_op, "equipment.json")) == {OTHER["equipment"]}
    assert codes(layer(other_op, "grids.json")["features"]) == {OTHER["grid"]}
    assert layer(other_op, "routes.json") == []
    summary = layer(other_op, "summary")
    assert codes(summary["events"]) == {OTHER["event"]} and summary["figures"]["open_events"] == 1
    levels = {f["properties"]["code"]: f["properties"]["level"] for f in layer(other_op, "boundaries.json")["features"]}
    assert {c for c, lv in levels.items() if lv != "district"} == {OTHER["street"], OTHER["community"]}
    # drill-down into the other street: not found (not "forbidden": it does not even confirm it exists)
    for path in (f"/dashboard/api/events/{main_event_id}", f"/dashboard/api/buildings/{main_building}",
                 f"/dashboard/api/teams/{main_team}"):
        r = other_op.get(path, params=at)
        assert r.status_code == 404 and "in your street" in r.json()["message"], path
        assert admin.get(path, params=at).status_code == 200, path
    for path in (f"/dashboard/api/events/{other_event_id}", f"/dashboard/api/buildings/{OTHER['building']}",
                 f"/dashboard/api/teams/{OTHER['team']}"):
        assert other_op.get(path, params=at).status_code == 200, path
        assert main_op.get(path, params=at).status_code == 404, path

    # building tiles: each operator's tiles hold only their buildings; the admin's both
    deck = other_op.get("/dashboard/deck.json").json()
    tiles_url = next(la["data"] for la in deck["layers"] if la["id"] == "buildings")
    assert "view=" + OTHER["street"] in tiles_url
    x0, y0 = box_of(s.engine, OTHER["street"])[:2]
    z, x, y = tile_of(x0 + 0.01, y0 + 0.01, 14)  # the tile of the other street's building

    def tile_codes(c) -> set[str]:
        return {f["properties"]["code"] for f in c.get(f"/dashboard/tiles/buildings/{z}/{x}/{y}.json").json()["features"]}

    seen = {who: tile_codes(c) for who, c in (("main", main_op), ("other", other_op), ("admin", admin))}
    assert seen["other"] == {OTHER["building"]} and OTHER["building"] not in seen["main"]
    assert OTHER["building"] in seen["admin"]
    xs, ys = tile_range(box_of(s.engine, street), 13)
    for tx in xs:
        for ty in ys:
            assert other_op.get(f"/dashboard/tiles/buildings/13/{tx}/{ty}.json").json()["features"] == []
    # the admin sees both streets
    assert {OTHER["event"]} | main_events <= codes(layer(admin, "events.json"))
    for c in (main_op, other_op, admin):
        c.close()


def logged_in_tc(s, user: dict):
    """A client of the in-process app holding ``user``'s dashboard session."""
    from fastapi.testclient import TestClient

    c = TestClient(s.app)
    r = c.post("/dashboard/login", json={"username": user["username"], "password": user["password"]})
    assert r.status_code == 200, r.text
    return c


def box_of(engine, area: str) -> tuple[float, float, float, float]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                                       "ST_Extent(geom) e FROM areas WHERE code = :c AND valid_to IS NULL) s"),
                                  {"c": area}).one())


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    r = math.radians(lat)
    return z, int((lon + 180) / 360 * 2**z), int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * 2**z)


def test_drilldown_holds_no_personal_data_for_anyone(scope_app):
    s = scope_app
    intake = s.users["intake"]
    name, phone = "王小明", "13812345678"
    with s.engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM buildings "
                                     "ORDER BY id OFFSET 2000 LIMIT 1) q")).one()
    tok = s.client.post("/v1/auth/token", json={"username": intake["username"],
                                                "password": intake["password"]}).json()["access_token"]
    r = s.client.post("/v1/events", headers={"Authorization": f"Bearer {tok}"}, json={
        "channel": "hotline_12345", "external_id": "DASH-PII-1", "category": "neighbour_dispute",
        "location": {"lon": lon, "lat": lat},  # reported now: the screen's default clock is now too
        "title": f"{name}来电 {phone} 邻里纠纷", "description": f"联系人 {name} 电话 {phone}",
        "reporter": {"name": name, "phone": phone}})
    assert r.status_code == 201, r.text
    eid = r.json()["event"]["id"]
    with s.engine.connect() as conn:
        assert conn.execute(text("SELECT name, phone FROM event_reporters WHERE event_id = :e"), {"e": eid}).one() \
            == (name, phone)  # the reporter is in the database...
        team = conn.execute(text("SELECT t.code FROM teams t JOIN team_members m ON m.team_id = t.id "
                                 "GROUP BY t.code ORDER BY count(*) DESC, t.code LIMIT 1")).scalar_one()
        members = conn.execute(text("SELECT m.name, m.phone FROM team_members m JOIN teams t ON t.id = m.team_id "
                                    "WHERE t.code = :t"), {"t": team}).all()
    at: dict = {}
    for role in ("planner", "operator", "admin"):
        c = logged_in_tc(s, s.users[role])
        for path in (f"/dashboard/api/events/{eid}", "/dashboard/api/events.json", "/dashboard/api/summary"):
            r = c.get(path, params=at)
            assert r.status_code == 200, (role, path)
            # ... but not on this screen, for anyone: no reporter, no description, name and phone blanked in the title
            assert phone not in r.text and name not in r.text and "reporter" not in r.text and "联系人" not in r.text, \
                (role, path)
        e = c.get(f"/dashboard/api/events/{eid}", params=at).json()
        assert "description" not in e and e["title"] == "***来电 *** 邻里纠纷"
        # a team: how many members, never who they are
        t = c.get(f"/dashboard/api/teams/{team}", params=at)
        assert t.json()["members"] == len(members) > 0
        for m_name, m_phone in members:
            assert m_name not in t.text and (m_phone is None or m_phone not in t.text), role
        c.close()


def test_an_expired_session_gets_401_and_the_login_form(scope_app):
    s = scope_app
    c = logged_in_tc(s, s.users["planner"])
    assert c.get("/dashboard/api/summary").status_code == 200
    s.clock.offset = dt.timedelta(seconds=s.ttl_s + 60)
    try:
        r = c.get("/dashboard/api/summary")
        assert r.status_code == 401 and "expired" in r.json()["message"] and "/dashboard/login" in r.json()["fix"]
        page = c.get("/dashboard")
        assert page.status_code == 200 and 'id="gm-login"' in page.text and "session has ended" in page.text
        assert f'{COOKIE_NAME}=""' in page.headers["set-cookie"] or "Max-Age=0" in page.headers["set-cookie"]
    finally:
        s.clock.offset = dt.timedelta(0)
    c.close()


def test_an_operator_logs_in_with_a_bearer_token_too(scope_app):
    s = scope_app
    op = s.users["other_operator"]
    tok = s.client.post("/v1/auth/token", json={"username": op["username"], "password": op["password"]}).json()
    from fastapi.testclient import TestClient

    r = TestClient(s.app).get("/dashboard/api/events.json", params={"at": s.now.isoformat()},
                              headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert r.status_code == 200 and codes(r.json()) == {OTHER["event"]}


def test_the_demo_users_of_gridmap_setup_open_the_screen(scope_app, settings, tmp_path):
    """``gridmap setup`` writes one demo user per role to <data_dir>/demo_users.txt: the operator (of the sample
    street), the planner and the admin log in to the screen with those passwords; the team accounts may not."""
    s = scope_app
    path, made = auth.ensure_demo_users(s.engine, settings.model_copy(update={"data_dir": tmp_path}))
    lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    demo: dict[str, tuple[str, str]] = {}
    for name, role, password in lines:  # the first of a role: the street's operator before the others
        demo.setdefault(role, (name, password))
    assert {"admin", "operator", "planner", "volunteer", "grid_worker", "intake"} <= set(demo)
    assert len(made) == len(lines)
    assert "/dashboard" in path.read_text(encoding="utf-8").splitlines()[0]
    from fastapi.testclient import TestClient

    for role, status in (("operator", 200), ("planner", 200), ("admin", 200), ("volunteer", 403),
                         ("grid_worker", 403), ("intake", 403)):
        c = TestClient(s.app)
        name, password = demo[role]
        r = c.post("/dashboard/login", json={"username": name, "password": password})
        assert r.status_code == status, (role, r.text)
        if status == 200:
            assert r.json()["role"] == role and 'id="gm-map"' in c.get("/dashboard").text
        if role == "operator":
            assert r.json()["street"] == s.users["operator"]["street"]  # the sample street
            assert c.get("/dashboard/api/summary").json()["figures"]["open_events"] > 0
        c.close()
