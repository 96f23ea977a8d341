"""The field app and the resident's QR page in a real Chromium with a phone's viewport, touch, geolocation and
offline mode, against the real server and PostGIS (issue 12, (a)-(e)), and the service worker and offline queue
on their own (replay order, idempotency, a refused action, an offline reload).

The tests of this module run in order on one phone (one browser context): (a) signs in and goes on duty, the
next ones take assignments. Every request of every page goes through the guard: none may leave the app (e).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.dashboard.conftest import COOKIE_NAME
from tests.field.conftest import (
    PASSWORD,
    jpeg,
    phone_context,
    query,
    real_errors,
    shot,
    sign_in,
    watch,
)

pytestmark = [pytest.mark.db]
_spots = itertools.count(1)


class Phone:
    def __init__(self, ctx: BrowserContext, page: Page, errors: list[str]) -> None:
        self.ctx, self.page, self.errors = ctx, page, errors

    def state(self, expr: str) -> Any:
        return self.page.evaluate(f"() => window.gridmapField.{expr}")


@pytest.fixture(scope="module")
def phone(browser, field_server, field_db) -> Iterator[Phone]:
    ctx = phone_context(browser, field_server, field_db.lon, field_db.lat)
    page = ctx.new_page()
    errors = watch(page)
    yield Phone(ctx, page, errors)
    ctx.close()
    assert ctx.guard.foreign == [], f"(e) a request left the app: {ctx.guard.foreign[:5]}"
    assert real_errors(errors) == [], f"errors in the field app: {errors[:5]}"


def post_event(api, field_db, *, description: str = "钱七 13900001111：楼道里有老人摔倒 an old man fell") -> dict:
    """An event near the team (a new spot each time, 150 m apart: never a near-duplicate of an earlier one)."""
    k = next(_spots)
    body = {"channel": "hotline_12345", "external_id": f"FIELD-{k}-{time.time_ns()}", "category": "elderly_care",
            "location": {"lon": field_db.lon + 0.0016 * (k % 3 - 1), "lat": field_db.lat + 0.0014 * (k // 3 % 3 - 1)},
            "description": description, "reporter": {"name": "钱七", "phone": "13900001111"}}
    r = api("intake", "POST", "/v1/events", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["dispatch"]["team"] == field_db.team, out["dispatch"]
    return out


def transitions(field_db, event_id: int) -> list[tuple]:
    return query(field_db.engine, "SELECT action, actor, detail FROM event_transitions WHERE event_id = :e "
                                  "ORDER BY at, id", e=event_id)


# -- (a) -------------------------------------------------------------------------------------------------------
def test_a_volunteer_signs_in_and_goes_on_duty_positions_arrive(phone, field_server, field_db):
    pg = phone.page
    pg.goto(f"{field_server}/field/")
    pg.wait_for_selector("#login-form", timeout=20_000)
    shot(pg, "1-sign-in")
    sign_in(pg, field_server, field_db.users["volunteer"])
    pg.wait_for_function("() => window.gridmapField.state.mapLoaded", timeout=30_000)
    session_kinds = query(field_db.engine, "SELECT s.kind FROM sessions s JOIN users u ON u.id = s.user_id "
                                           "WHERE u.username = :u AND s.revoked_at IS NULL", u=field_db.users["volunteer"])
    assert ("device",) in session_kinds
    before = query(field_db.engine, "SELECT position_at FROM teams WHERE code = :t", t=field_db.team)[0][0]
    if phone.state("state.duty"):  # the loaded team is on duty: go off and on again, as a person would
        pg.click("#duty")
        pg.wait_for_function("() => !window.gridmapField.state.duty")
        assert "off" in pg.locator("#sharing").get_attribute("class")
    pg.click("#duty")
    pg.wait_for_function("() => window.gridmapField.state.lastSent", timeout=15_000)
    assert "30" in pg.locator("#sharing").inner_text()  # the screen says it is sharing, and how often
    assert "background" in pg.locator("#notice").inner_text()  # and that a web app cannot do it in the background
    row = query(field_db.engine, "SELECT position_at, position_accuracy_m, ST_X(geom), ST_Y(geom), status FROM teams "
                                 "WHERE code = :t", t=field_db.team)[0]
    assert row[0] is not None and (before is None or row[0] > before)
    assert row[1] == pytest.approx(12.0) and row[2] == pytest.approx(field_db.lon) and row[4] == "available"
    shot(pg, "2-on-duty")


# -- (b) -------------------------------------------------------------------------------------------------------
def test_b_an_event_appears_live_with_its_route_and_accept_reaches_the_dashboard(phone, api, field_db, field_server,
                                                                                 browser):
    pg = phone.page
    t0 = time.monotonic()
    out = post_event(api, field_db)
    aid, eid = out["dispatch"]["assignment_id"], out["event"]["id"]
    pg.wait_for_selector("#offer:not([hidden]) [data-act=accept]", timeout=5_000)
    latency = time.monotonic() - t0
    print(f"offer on the phone {latency:.2f} s after the intake answered")
    assert phone.state("state.alerts") >= 1  # sound + vibration (+ a notification when hidden)
    assert phone.state("map.route") is not None  # the route is drawn
    pg.wait_for_selector("#offer .said")
    assert "13900001111" not in pg.locator("#offer").inner_text()  # what the reporter said, redacted for the role
    shot(pg, "3-offer")
    n = phone.state("sender.log.length")
    pg.click("#offer [data-act=accept]")
    pg.wait_for_selector("#task:not([hidden]) [data-act=arrive]", timeout=10_000)
    pg.wait_for_function(f"() => window.gridmapField.sender.log.length > {n}", timeout=10_000)
    pg.wait_for_timeout(500)
    shot(pg, "4-assignment")
    # the command centre: the operator's screen shows it accepted
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        r = ctx.request.post(f"{field_server}/dashboard/login", data={"username": field_db.users["operator"],
                                                                       "password": PASSWORD},
                             headers={"Accept": "application/json", "Origin": field_server})
        assert r.status == 200 and any(c["name"] == COOKIE_NAME for c in ctx.cookies())
        e = ctx.request.get(f"{field_server}/dashboard/api/events/{eid}").json()
        assert e["status"] == "accepted" and e["assignment"]["id"] == aid and e["assignment"]["status"] == "accepted"
    finally:
        ctx.close()
    phone.accepted = (aid, eid)  # type: ignore[attr-defined]


# -- (c) -------------------------------------------------------------------------------------------------------
def test_c_offline_arrive_and_resolve_with_a_photo_are_applied_once_in_order(phone, api, field_db, field_server,
                                                                              browser):
    pg = phone.page
    aid, eid = phone.accepted  # type: ignore[attr-defined]
    phone.ctx.set_offline(True)
    pg.wait_for_function("() => !navigator.onLine")
    pg.click("#task [data-act=arrive]")
    pg.wait_for_selector("#task [data-act=resolve]")
    pg.click("#task [data-act=resolve]")
    pg.set_input_files("#photos", files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": jpeg("teal")}])
    pg.fill("#note", "已扶起老人并联系家属 helped him up, called the family")
    pg.wait_for_selector("#thumbs img")
    shot(pg, "5-resolve-with-photo")
    pg.click("#form-ok")
    pg.wait_for_function("() => window.gridmapField.state.queue.length === 3")
    assert pg.locator("#queue-pill").inner_text().startswith("3")
    shot(pg, "6-offline-queue")
    assert [r[0] for r in transitions(field_db, eid)].count("arrive") == 0  # nothing reached the server
    phone.ctx.set_offline(False)
    pg.wait_for_function("() => window.gridmapField.state.queue.length === 0", timeout=30_000)
    trail = transitions(field_db, eid)
    actions = [r[0] for r in trail]
    assert actions.count("arrive") == 1 and actions.count("resolve") == 1
    assert actions.index("arrive") < actions.index("resolve")
    resolve = next(r for r in trail if r[0] == "resolve")
    photos = resolve[2]["photos"]
    assert len(photos) == 1
    log = phone.state("sender.log")
    assert [entry["url"].rsplit("/", 1)[1] for entry in log[-3:]] == ["arrive", "photos", "resolve"]
    # the photo: an operator sees it in the dashboard's drill-down; a planner is refused
    ctx = browser.new_context(viewport={"width": 1400, "height": 850})
    try:
        dash = ctx.new_page()
        dash.goto(f"{field_server}/dashboard")
        dash.fill("#gm-username", field_db.users["operator"])
        dash.fill("#gm-password", PASSWORD)
        with dash.expect_navigation(timeout=30_000):
            dash.click("#gm-login-submit")
        dash.wait_for_function("() => window.gridmap && window.gridmap.openEvent", timeout=60_000)
        dash.evaluate(f"() => window.gridmap.openEvent({eid})")
        dash.wait_for_selector(f"#gm-detail-photos img[data-photo='{photos[0]['id']}']", timeout=20_000)
        dash.wait_for_function("() => [...document.querySelectorAll('#gm-detail-photos img')].every(i => i.complete "
                               "&& i.naturalWidth > 0)", timeout=20_000)
        shot(dash, "10-dashboard-photos")
    finally:
        ctx.close()
    planner = browser.new_context()
    try:
        r = planner.request.post(f"{field_server}/dashboard/login", data={"username": field_db.users["planner"],
                                                                          "password": PASSWORD},
                                 headers={"Accept": "application/json", "Origin": field_server})
        assert r.status == 200
        assert planner.request.get(f"{field_server}/dashboard/api/events/{eid}/photos").status == 403
        assert planner.request.get(f"{field_server}/dashboard/api/photos/{photos[0]['id']}").status == 403
    finally:
        planner.close()
    assert api("planner", "GET", f"/v1/photos/{photos[0]['id']}").status_code == 403
    assert api("operator", "GET", f"/v1/photos/{photos[0]['id']}").status_code == 200


# -- the queue on its own: idempotency, a refused action, an offline reload -------------------------------------
def test_queue_sends_a_retried_action_once_and_answers_the_same(phone, api, field_db):
    pg = phone.page
    out = post_event(api, field_db)
    aid, eid = out["dispatch"]["assignment_id"], out["event"]["id"]
    pg.wait_for_selector("#offer:not([hidden]) [data-act=accept]", timeout=10_000)
    n = phone.state("sender.log.length")
    pg.click("#offer [data-act=accept]")
    pg.wait_for_function(f"() => window.gridmapField.sender.log.length > {n}", timeout=10_000)
    sent = phone.state("sender.log")[-1]
    assert sent["url"].endswith(f"/{aid}/accept") and sent["status"] == 200 and not sent["replayed"]
    # the same action again, under its key (its answer was lost, say): applied once, answered the same
    pg.evaluate("""async ([aid, key, body]) => {
        const q = await import('/field/static/queue.js');
        await q.enqueue({kind: 'action', action: 'accept', assignment: aid, user: window.gridmapField.state.user,
                         url: `/v1/assignments/${aid}/accept`, body, type: 'application/json', label: 'retry', key});
        await window.gridmapField.flush();
    }""", [aid, sent["key"], sent["body"]])
    pg.wait_for_function(f"() => window.gridmapField.sender.log.length > {n + 1}", timeout=10_000)
    again = phone.state("sender.log")[-1]
    assert again["key"] == sent["key"] and again["status"] == 200 and again["replayed"]
    assert query(field_db.engine, "SELECT count(*) FROM event_transitions WHERE event_id = :e AND action = 'accept'",
                 e=eid)[0][0] == 1
    for action in ("arrive", "resolve"):  # done with it
        assert api("volunteer", "POST", f"/v1/assignments/{aid}/{action}", json={}).status_code == 200


def test_a_refused_action_is_shown_with_the_servers_reason(phone, api, field_db):
    pg = phone.page
    out = post_event(api, field_db)
    aid, eid = out["dispatch"]["assignment_id"], out["event"]["id"]
    pg.wait_for_selector("#offer:not([hidden]) [data-act=accept]", timeout=10_000)
    phone.ctx.set_offline(True)
    pg.wait_for_function("() => !navigator.onLine")
    pg.click("#offer [data-act=accept]")
    pg.wait_for_function("() => window.gridmapField.state.queue.length === 1")
    # meanwhile the command centre takes it back (the offer declined on the team's behalf: reassigned)
    assert api("admin", "POST", f"/v1/assignments/{aid}/decline", json={"note": "reassigned"}).status_code == 200
    phone.ctx.set_offline(False)
    pg.wait_for_selector("#banner:not([hidden])", timeout=20_000)
    text = pg.locator("#banner").inner_text()
    assert f"assignment {aid} is declined" in text  # the server's reason, as it said it
    assert pg.locator("#queue-list .q.refused").count() == 1
    shot(pg, "7-refused")
    assert query(field_db.engine, "SELECT count(*) FROM event_transitions WHERE event_id = :e AND action = 'accept'",
                 e=eid)[0][0] == 0
    pg.click("#banner-x")
    pg.click("#queue-list [data-drop]")
    pg.wait_for_function("() => window.gridmapField.state.queue.length === 0")


def test_the_app_reloads_offline_from_the_service_workers_cache(phone, field_server):
    pg = phone.page
    assert pg.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    if not pg.evaluate("() => !!navigator.serviceWorker.controller"):  # the first page is controlled once reloaded
        pg.reload()
        pg.wait_for_function("() => window.gridmapField && window.gridmapField.state.mapLoaded", timeout=30_000)
    assert pg.evaluate("() => !!navigator.serviceWorker.controller")
    names = pg.evaluate("() => caches.keys()")
    version = phone.state("version")
    assert f"gridmap-field-shell-{version}" in names and f"gridmap-field-map-{version}" in names
    assert all(n.endswith(version) for n in names if n.startswith("gridmap-field-"))
    phone.ctx.set_offline(True)
    try:
        pg.reload()
        pg.wait_for_function("() => window.gridmapField && window.gridmapField.state.ready", timeout=30_000)
        pg.wait_for_function("() => window.gridmapField.state.mapLoaded", timeout=30_000)
        assert pg.locator("#net").inner_text() in ("离线", "offline")
        pg.click("#history summary")
        shot(pg, "8-offline-reload-history")
    finally:
        phone.ctx.set_offline(False)


# -- (d) -------------------------------------------------------------------------------------------------------
def test_d_a_resident_reports_by_qr_follows_the_receipt_and_reopens(browser, field_server, field_db, api):
    ctx = phone_context(browser, field_server, field_db.lon, field_db.lat)
    pg = ctx.new_page()
    errors = watch(pg)
    try:
        pg.goto(f"{field_server}/q/{field_db.place}")
        assert pg.locator("#place h1").inner_text()
        pg.select_option("#category", "elderly_care")
        pg.fill("#description", "门口有位老人需要帮助 an old lady at the door needs help")
        pg.fill("#phone", "13700002222")
        pg.set_input_files("#photo", files=[{"name": "door.jpg", "mimeType": "image/jpeg", "buffer": jpeg("navy")}])
        shot(pg, "11-resident-report")
        pg.click("#report-submit")
        pg.wait_for_url("**/r/*", timeout=20_000)
        pg.wait_for_selector("#steps li.done")
        code = pg.locator("#r-title").inner_text().split(" ")[0]
        eid, status = query(field_db.engine, "SELECT id, status FROM events WHERE code = :c", c=code)[0]
        assert query(field_db.engine, "SELECT phone FROM event_reporters WHERE event_id = :e", e=eid)[0][0] == "13700002222"
        assert "13700002222" not in pg.content()
        assert query(field_db.engine, "SELECT source, lon FROM event_photos WHERE event_id = :e", e=eid) == [("resident", None)]
        aid = query(field_db.engine, "SELECT id FROM assignments WHERE event_id = :e AND status = 'offered'", e=eid)[0][0]
        for action, step in (("accept", "dispatched"), ("arrive", "on_site"), ("resolve", "resolved")):
            assert api("volunteer", "POST", f"/v1/assignments/{aid}/{action}", json={}).status_code == 200
            pg.reload()
            pg.wait_for_selector(f"#steps li.done[data-step='{step}']")
        body = pg.content()
        assert field_db.team not in body and "volunteer" not in body  # no staff names, no team
        pg.wait_for_selector("#ask:not([hidden])")
        shot(pg, "12-receipt-is-it-fixed")
        pg.click("#no")
        pg.wait_for_selector("#answered:not([hidden])")
        status = query(field_db.engine, "SELECT status FROM events WHERE id = :e", e=eid)[0][0]
        assert status in ("reported", "dispatched")
        offers = query(field_db.engine, "SELECT status FROM assignments WHERE event_id = :e ORDER BY id", e=eid)
        assert offers[-1][0] == "offered" and len(offers) == 2  # offered again
        assert [r[0] for r in transitions(field_db, eid)].count("reopen") == 1
        shot(pg, "13-receipt-reopened")
        api("volunteer", "POST", f"/v1/assignments/{query(field_db.engine, 'SELECT max(id) FROM assignments WHERE event_id = :e', e=eid)[0][0]}/decline", json={"note": "test over"})
    finally:
        ctx.close()
    assert ctx.guard.foreign == []
    assert real_errors(errors) == []


# -- the feed's fallback and catch-up, and the English labels -----------------------------------------------------
BLOCKED_WEBSOCKET = """
// a network that refuses WebSockets (a proxy, a captive portal): every socket closes without ever opening
window.WebSocket = class {
  constructor() { setTimeout(() => this.onclose && this.onclose({code: 1006}), 50); }
  send() {}
  close() {}
};
"""


def test_without_websockets_the_feed_falls_back_to_sse_and_an_offer_made_while_away_arrives(browser, field_server,
                                                                                           field_db, api):
    ctx = phone_context(browser, field_server, field_db.lon, field_db.lat)
    ctx.add_init_script(BLOCKED_WEBSOCKET)
    pg = ctx.new_page()
    errors = watch(pg)
    try:
        sign_in(pg, field_server, field_db.users["volunteer"])
        pg.wait_for_function("() => window.gridmapField.feed.mode === 'sse' && window.gridmapField.feed.connected",
                             timeout=30_000)
        # live over SSE; the two events go to the spots farthest from the team's (and from the resident's report
        # at the nearest place, still open): never a near-duplicate of an earlier one
        while next(_spots) % 9 != 7:
            pass
        out = post_event(api, field_db, description="井盖松动 a loose manhole cover")
        aid = out["dispatch"]["assignment_id"]
        pg.wait_for_function(f"() => window.gridmapField.state.assignments.has({aid})", timeout=10_000)
        assert api("volunteer", "POST", f"/v1/assignments/{aid}/decline", json={"note": "test"}).status_code == 200
        # an offer made while the phone had no connection arrives once it is back (the snapshot on reconnect)
        ctx.set_offline(True)
        pg.evaluate("() => window.gridmapField.feed.stop()")
        missed = post_event(api, field_db, description="路灯不亮 a street light is out")["dispatch"]["assignment_id"]
        assert not pg.evaluate(f"() => window.gridmapField.state.assignments.has({missed})")
        ctx.set_offline(False)
        pg.evaluate("() => window.gridmapField.feed.start()")
        pg.wait_for_function(f"() => window.gridmapField.state.assignments.has({missed})", timeout=15_000)
        assert api("volunteer", "POST", f"/v1/assignments/{missed}/decline", json={"note": "test"}).status_code == 200
        # Chinese first, English on a tap
        assert "共享" in pg.locator("#sharing").inner_text() or "下岗" in pg.locator("#duty").inner_text()
        pg.click("#lang")
        pg.wait_for_function("() => document.documentElement.lang === 'en'")
        assert "duty" in pg.locator("#duty").inner_text()
        pg.click("#lang")
    finally:
        ctx.close()
    assert ctx.guard.foreign == []
    assert real_errors(errors) == []
