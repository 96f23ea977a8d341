"""The command-centre page in a real headless Chromium (software WebGL), against the whole sample street.

Checks: the screen opens on a login form, refuses a wrong password without touching any data endpoint,
and after login: only the app is ever contacted; every layer draws (deck.gl picking finds its objects, the
canvas is not blank, every building of the street is in the loaded tiles); picking at known buildings
returns them; the tooltip shows the right resident count; clicks drill down; a new event appears by
itself. Logging out, or a session that ends, brings back the login form.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import numpy as np
import pytest
from sqlalchemy import text

from gridmap.services.dispatch import Dispatcher
from gridmap.viz.layers import SAFETY_BREAKS, SAFETY_COLORS

from .conftest import ARTIFACTS, COOKIE_NAME, data_requests, log_in, new_event, open_dashboard

pytestmark = [pytest.mark.db, pytest.mark.slow]
LAYERS = ["grids", "boundaries", "buildings", "equipment", "routes", "teams", "events"]


def main_street(conn) -> tuple[str, int]:
    """The sample's main (most populous) street, which the screen opens on, and its number of grids (the sample
    has a second, smaller street: 330106901)."""
    street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                               "ORDER BY population DESC LIMIT 1")).scalar_one()
    n_grids = conn.execute(text("SELECT count(*) FROM areas WHERE level = 'grid' AND valid_to IS NULL "
                                "AND code LIKE :s || '%'"), {"s": street}).scalar_one()
    return street, n_grids


def known_buildings(engine, n: int = 4) -> list[dict]:
    """Big inhabited buildings spread over the street (one per community), with resident counts from SQL."""
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT DISTINCT ON (b.community_code) b.code, ST_X(ST_PointOnSurface(b.geom)) AS lon,
                   ST_Y(ST_PointOnSurface(b.geom)) AS lat, COALESCE(b.height_m, b.floors * 3.0) AS height, n.residents
            FROM buildings b JOIN (SELECT building_id, count(*) AS residents FROM residents GROUP BY 1) n
                 ON n.building_id = b.id
            ORDER BY b.community_code, ST_Area(b.geom) DESC""")).mappings().all()
    rows = [dict(r) for r in rows]
    return [rows[i * len(rows) // n] for i in range(n)]


def focus(pg, b: dict, zoom: float = 17.5) -> tuple[float, float]:
    """Centre the view on a building, straight down, wait for the redraw; return the roof's screen point."""
    pg.evaluate("v => window.gridmap.setView(v)",
                {"longitude": b["lon"], "latitude": b["lat"], "zoom": zoom, "pitch": 0, "bearing": 0})
    x, y = pg.evaluate("p => window.gridmap.project(p)", [b["lon"], b["lat"], b["height"]])[:2]
    return x, y


def map_pixels(pg) -> tuple[int, float]:
    """Distinct colours in the map area of a screenshot and the share of pixels unlike the background."""
    from PIL import Image  # pillow ships with matplotlib, a dependency

    box = pg.locator("#gm-map").bounding_box()
    px = np.asarray(Image.open(io.BytesIO(pg.screenshot(clip=box))).convert("RGB")).reshape(-1, 3)
    packed = px[:, 0].astype(np.int64) << 16 | px[:, 1].astype(np.int64) << 8 | px[:, 2]
    return len(np.unique(packed)), float(np.mean(packed != packed[0]))


def test_page_is_offline_and_every_layer_draws(page, server, dash_engine, sample_now, dispatched, dash_users):
    open_dashboard(page, server, sample_now, dash_users["admin"])
    # only the app was contacted, and it served the deck.gl bundle of the pydeck wheel
    assert page.guard.app and all(u.startswith(server) or u.startswith("data:") for u in page.guard.app)
    assert any(re.search(r"/dashboard/static/deckgl-[\d.]+\.js$", u) for u in page.guard.app)
    html = page.content()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html)

    counts = page.evaluate("window.gridmap.layerCounts()")
    with dash_engine.connect() as conn:
        all_grids = conn.execute(text("SELECT count(*) FROM areas WHERE level = 'grid' AND valid_to IS NULL")).scalar_one()
        _street, n_grids = main_street(conn)
        n_equipment = conn.execute(text("SELECT count(*) FROM fire_equipment")).scalar_one()
        n_teams = conn.execute(text("SELECT count(*) FROM teams WHERE geom IS NOT NULL")).scalar_one()
        codes = {r[0] for r in conn.execute(text("SELECT code FROM buildings"))}
    assert counts["grids"] == n_grids and 0 < n_grids < all_grids == 149  # the main street's grids
    assert counts["equipment"] == n_equipment and counts["teams"] == n_teams
    assert counts["events"] > 0 and counts["routes"] >= 1 and counts["boundaries"] >= 3
    # every building of the street is in the tiles the whole-street view loaded, once
    loaded = page.evaluate("window.gridmap.buildingCodes()")
    assert len(loaded) == len(set(loaded)) and set(loaded) == codes

    # deck.gl picking over the whole canvas finds objects of every layer: each one really drew
    drawn = page.evaluate("""(ids) => { const d = window.gridmap.deck; const c = d.getViewports()[0];
        return Object.fromEntries(ids.map(id => [id, d.pickObjects({x: 0, y: 0, width: c.width, height: c.height,
                                                                   layerIds: [id], maxObjects: 3}).length])); }""",
                          LAYERS)
    assert all(n > 0 for n in drawn.values()), drawn
    colours, share = map_pixels(page)
    assert colours > 50 and share > 0.2, (colours, share)
    page.screenshot(path=str(ARTIFACTS / "overview.png"))


def pick_when_drawn(pg, x: float, y: float, layer: str, key: str, want, timeout_ms: int = 20_000) -> dict:
    """Pick at (x, y) until the expected object is under it (tiles may still be arriving): a bounded poll."""
    pg.wait_for_function("([x, y, layer, key, want]) => { const h = window.gridmap.pick(x, y, [layer], 2); "
                         "return h !== null && h.object[key] === want; }", arg=[x, y, layer, key, want],
                         timeout=timeout_ms, polling=300)
    return pg.evaluate("([x, y, layer]) => window.gridmap.pick(x, y, [layer], 2)", [x, y, layer])


def test_picking_tooltip_and_click_at_known_buildings(page, server, dash_engine, sample_now, dash_users):
    open_dashboard(page, server, sample_now, dash_users["admin"])
    blds = known_buildings(dash_engine)
    left = page.locator("#gm-map").bounding_box()["x"]
    for i, b in enumerate(blds):
        x, y = focus(page, b)
        hit = pick_when_drawn(page, x, y, "buildings", "code", b["code"])
        assert hit["layer"] == "buildings" and hit["object"]["residents"] == b["residents"]
        if i == 0:  # hover: deck.gl's tooltip shows the resident count of that building
            page.mouse.move(left + x, y)
            page.wait_for_function("c => { const t = document.querySelector('.deck-tooltip'); "
                                   "return t && t.textContent.includes(c); }", arg=b["code"], timeout=20_000)
            assert page.locator(".deck-tooltip .gm-residents").inner_text() == str(b["residents"])
            page.screenshot(path=str(ARTIFACTS / "tooltip.png"))
    # click the last one: address, resident count, businesses, nearest responder by road
    b = blds[-1]
    with dash_engine.connect() as conn:
        n_biz = conn.execute(text("SELECT count(*) FROM businesses z JOIN buildings b ON b.id = z.building_id "
                                  "WHERE b.code = :c"), {"c": b["code"]}).scalar_one()
    page.mouse.move(left + x, y)
    page.mouse.click(left + x, y)
    page.wait_for_function("() => document.querySelector('#gm-detail-residents')", timeout=20_000)
    assert page.locator("#gm-detail-residents").inner_text() == str(b["residents"])
    txt = page.locator("#gm-detail").inner_text()
    assert b["code"] in txt and f"businesses ({n_biz})" in txt
    assert re.search(r"ETA \d+\.\d min", txt), txt  # nearest in-service micro fire station/truck by road
    assert page.evaluate("window.gridmap.layerCounts().selection") == 1  # its route is drawn
    page.screenshot(path=str(ARTIFACTS / "building_detail.png"))


def test_new_event_appears_live_and_drills_down(page, server, dash_engine, sample_now, dispatched, dash_users):
    open_dashboard(page, server, sample_now, dash_users["admin"])
    ids = page.evaluate("() => window.gridmap.deck.props.layers.find(l => l.id === 'events').props.data.map(e => e.id)")
    with dash_engine.connect() as conn:
        # on a road (no roof above it to catch the click), inside the main street (the one on the screen)
        street, _n = main_street(conn)
        lon, lat = conn.execute(text(
            "SELECT ST_X(n.geom), ST_Y(n.geom) FROM road_nodes n JOIN areas g ON g.level = 'grid' "
            "AND g.valid_to IS NULL AND g.code LIKE :s || '%' AND ST_Intersects(g.geom, n.geom) "
            "ORDER BY n.id OFFSET 300 LIMIT 1"), {"s": street}).one()
    eid = new_event(dash_engine, "TEST-DASH-LIVE", lon, lat, sample_now, severity=4)
    assert eid not in ids
    res = Dispatcher.from_database(dash_engine, now=sample_now).dispatch(eid, now=sample_now)
    assert res.assignment_id is not None, res.message
    # no reload: the live refresh brings the event, its route and its team's new state within seconds
    page.wait_for_function(
        """([id, team]) => { const L = window.gridmap.deck.props.layers; const get = n => L.find(l => l.id === n).props.data;
            return get('events').some(e => e.id === id) && get('routes').some(r => r.event_id === id)
                && get('teams').some(t => t.code === team && t.state === 'assigned'); }""",
        arg=[eid, res.team], timeout=15_000, polling=250)
    # the side panel's list comes from its own request of the same refresh: wait for it as well
    page.wait_for_function("id => document.querySelectorAll(`#gm-events-body tr[data-id=\"${id}\"]`).length === 1",
                           arg=eid, timeout=15_000, polling=250)
    # click the event on the map: its timeline, team, ETA and route
    ev = {"lon": lon, "lat": lat, "height": 0.0}
    x, y = focus(page, ev, zoom=16)
    pick_when_drawn(page, x, y, "events", "id", eid)
    page.mouse.click(x + page.locator("#gm-map").bounding_box()["x"], y)
    page.wait_for_function("() => document.querySelector('#gm-detail-team')", timeout=20_000)
    assert page.locator("#gm-detail-team").inner_text() == res.team
    txt = page.locator("#gm-detail").inner_text()
    assert "offered to " + res.team in txt and "ETA" in txt and "reported" in txt
    assert page.evaluate("window.gridmap.layerCounts().selection") == 1
    page.screenshot(path=str(ARTIFACTS / "live_event.png"))
    # and the team: its current assignment is this event
    page.evaluate("c => window.gridmap.openTeam(c)", res.team)
    page.wait_for_function("() => document.querySelector('#gm-detail-event')", timeout=20_000)
    assert page.locator("#gm-detail-event").inner_text() == "TEST-DASH-LIVE"


def test_side_panel_and_grid_switch(page, server, dash_engine, sample_now, dash_users):
    open_dashboard(page, server, sample_now, dash_users["admin"])
    with dash_engine.connect() as conn:  # the screen opens on the main street: its open events and grids
        street, n_grids = main_street(conn)
        n_open = conn.execute(text("SELECT count(*) FROM events WHERE status IN "
                                   "('reported', 'dispatched', 'accepted', 'on_site') AND reported_at <= :t "
                                   "AND street_code = :s"), {"t": sample_now, "s": street}).scalar_one()
    page.wait_for_function("n => document.getElementById('fig-open').textContent === String(n)", arg=n_open,
                           timeout=20_000)
    rows = page.locator("#gm-events-body tr")
    assert rows.count() == min(n_open, 200)
    assert page.locator("#gm-events-body tr.overdue").count() > 0  # the sample has long-open events
    assert re.fullmatch(r"\d+\.\d min", page.locator("#fig-median").inner_text())
    assert re.fullmatch(r"\d+\.\d%", page.locator("#fig-closure").inner_text())
    grid = page.evaluate("() => window.gridmap.layerCounts().grids")
    assert grid == n_grids
    page.locator("input[value=safety]").check()
    # (the switch may rebuild the layer before its data is back: wait for both)
    page.wait_for_function("() => { const l = window.gridmap.deck.props.layers.find(l => l.id === 'grids');"
                           " return l.props.updateTriggers.getFillColor === 'safety'"
                           " && Array.isArray(l.props.data && l.props.data.features); }", timeout=20_000)
    # the grids' fill now follows the safety index: the accessor gives each grid its safety class colour
    got = page.evaluate("""() => { const l = window.gridmap.deck.props.layers.find(l => l.id === 'grids');
        return l.props.data.features.map(f => [f.properties.safety_index, Array.from(l.props.getFillColor(f))]); }""")
    for index, colour in got:
        k = max(i for i, lo in enumerate(SAFETY_BREAKS) if index >= lo)
        assert colour == list(SAFETY_COLORS[k])
    assert len({tuple(c) for _, c in got}) > 1
    page.screenshot(path=str(ARTIFACTS / "safety_index.png"))


def test_login_form_refuses_a_wrong_password_then_an_operator_logs_in_and_out(page, server, dash_engine, sample_now,
                                                                              dash_users):
    op = dash_users["operator"]
    page.allowed_errors.append(r"status of 401")  # the browser logs the refused login
    q = sample_now.isoformat().replace("+", "%2B")
    page.goto(f"{server}/dashboard?at={q}")
    # no session: the app's own login form (no map script, no data), styled like the page
    assert page.locator("#gm-login").is_visible() and page.locator("#gm-login-error").is_hidden()
    assert "登录" in page.locator("#gm-login-submit").inner_text()
    assert page.evaluate("typeof window.gridmap") == "undefined"
    log_in(page, op, password=op["password"] + "-wrong", succeeds=False)
    page.wait_for_selector("#gm-login-error:not([hidden])", timeout=20_000)
    assert "wrong password" in page.locator("#gm-login-error").inner_text()
    assert page.locator("#gm-password").input_value() == ""  # cleared for the next try
    page.screenshot(path=str(ARTIFACTS / "login_error.png"))
    assert data_requests(page.guard) == [], data_requests(page.guard)  # nothing was fetched without a session
    assert [c for c in page.context.cookies() if c["name"] == COOKIE_NAME] == []

    # the right password: the map of the operator's street, every layer drawn, the user named beside logout
    log_in(page, op)
    page.wait_for_function("() => window.gridmap && window.gridmap.ready()", timeout=90_000)
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert page.evaluate("document.cookie") == ""  # the page's scripts never see the token
    assert op["username"] in page.locator("#gm-user-name").inner_text()
    counts = page.evaluate("window.gridmap.layerCounts()")
    with dash_engine.connect() as conn:
        n_events = conn.execute(text(
            "SELECT count(*) FROM events WHERE street_code = :s AND reported_at <= :t AND (status IN "
            "('reported', 'dispatched', 'accepted', 'on_site') OR (status = 'resolved' AND resolved_at >= :t2))"),
            {"s": op["street"], "t": sample_now, "t2": sample_now - dt.timedelta(hours=2)}).scalar_one()
        street, n_grids = main_street(conn)
    assert op["street"] == street  # (the operator of the sample's main street)
    assert counts["grids"] == n_grids and counts["events"] == n_events > 0
    drawn = page.evaluate("""(ids) => { const d = window.gridmap.deck; const c = d.getViewports()[0];
        return Object.fromEntries(ids.map(id => [id, d.pickObjects({x: 0, y: 0, width: c.width, height: c.height,
                                                                   layerIds: [id], maxObjects: 3}).length])); }""",
                          LAYERS)
    assert all(n > 0 for n in drawn.values()), drawn
    page.screenshot(path=str(ARTIFACTS / "operator_map.png"))

    # log out: the login form again, the cookie gone, and the data endpoints closed to this browser
    with page.expect_navigation():
        page.click("#gm-logout button")
    page.wait_for_selector("#gm-login", timeout=20_000)
    assert [c for c in page.context.cookies() if c["name"] == COOKIE_NAME] == []
    r = page.request.get(f"{server}/dashboard/api/summary")
    assert r.status == 401 and "/dashboard/login" in r.json()["fix"]


def test_an_ended_session_returns_to_the_login_form(page, server, sample_now, dash_users):
    open_dashboard(page, server, sample_now, dash_users["planner"])
    page.allowed_errors.append(r"status of 401")  # the browser logs the refused requests
    # the session ends under the open page (here: the cookie is replaced by one that is not validly signed)
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    page.context.clear_cookies()
    page.context.add_cookies([cookie | {"value": cookie["value"][:-4] + "AAAA"}])
    # the next live refresh gets 401: the page goes back to the form, saying why, instead of a broken map
    page.wait_for_selector("#gm-login-notice:not([hidden])", timeout=30_000)
    assert "session has ended" in page.locator("#gm-login-notice").inner_text()
    assert page.evaluate("typeof window.gridmap") == "undefined"
    page.screenshot(path=str(ARTIFACTS / "session_ended.png"))
    # logging in again returns to the map it was showing (the same clock)
    log_in(page, dash_users["planner"])
    page.wait_for_function("() => window.gridmap && window.gridmap.ready()", timeout=90_000)
    assert "at=" in page.url
