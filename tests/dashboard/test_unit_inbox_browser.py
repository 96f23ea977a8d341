"""A unit's inbox screen (issue 14) in a real Chromium: the mall front desk's member logs in through the form,
sees a dispute the merchant hands up appear in the inbox without reloading the page, takes it and settles it
with a note from the screen's own buttons; the row and the unit's figures change on the screen, and the page
asks nothing of anyone but the app. The buttons' route takes the screen's cookie only from the screen's own
page."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.services import auth

from .conftest import COOKIE_NAME, log_in

pytestmark = [pytest.mark.db]
MALL = "B008174"  # data/units.csv: the mall's merchants, front desk and floor management serve this building
DESK, MERCHANTS = "MALL1-DESK", "MALL1-MERCHANTS"
RUNG = f"{DESK}/consumer_dispute:1"  # the desk's rung of the consumer-dispute ladder, as the figures key it


@pytest.fixture(scope="module")
def mall_members(dash_engine) -> dict[str, dict]:
    with dash_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM units WHERE code IN (:d, :m) AND place_code = :b"),
                            {"d": DESK, "m": MERCHANTS, "b": MALL}).scalar_one() == 2
    out = {}
    with Session(dash_engine) as session:
        for code in (DESK, MERCHANTS):
            name, password = f"dash_{code.lower().replace('-', '_')}", secrets.token_urlsafe(16)
            auth.create_user(session, username=name, password=password, role="unit", unit_code=code)
            out[code] = {"username": name, "password": password}
    return out


def _bearer(http: httpx.Client, user: dict) -> dict:
    r = http.post("/v1/auth/token", json={"username": user["username"], "password": user["password"]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _report(http: httpx.Client, intake: dict, category: str, building: str) -> int:
    """A hotline report at ``building``, not dispatched; its event id."""
    body = {"channel": "hotline_12345", "external_id": f"DASH-UNIT-{secrets.token_hex(4)}", "category": category,
            "location": {"building_code": building}, "dispatch": False,
            "reporter": {"name": "孙八", "phone": "13600002222"}}
    r = http.post("/v1/events", json=body, headers=_bearer(http, intake))
    assert r.status_code == 201, r.text
    return r.json()["event"]["id"]


def _row(eid: int) -> str:
    return f'#gm-inbox-body tr[data-id="{eid}"]'


def test_a_unit_member_takes_and_settles_a_dispute_that_arrives_live(page, server, dash_users, mall_members):
    desk = mall_members[DESK]
    page.goto(f"{server}/dashboard/unit")
    log_in(page, desk)
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    assert page.url == f"{server}/dashboard/unit"
    assert DESK in page.locator("#gm-unit-name").inner_text()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    before = page.evaluate("() => window.gridmapScreen.state.data.figures")
    was = next((r for r in before["rungs"] if r["key"] == RUNG), {"events": 0, "settled": 0, "open": 0})

    # a consumer dispute in the mall reaches the merchants; they hand it up to the desk (through the API)
    with httpx.Client(base_url=server, timeout=30) as http:
        eid = _report(http, dash_users["intake"], "consumer_dispute", MALL)
        assert page.locator(_row(eid)).count() == 0
        r = http.post(f"/v1/units/{MERCHANTS}/inbox/{eid}/escalate", json={"note": "商户无法处理"},
                      headers=_bearer(http, mall_members[MERCHANTS]))
        assert r.status_code == 200 and r.json()["rungs"][-1]["unit"] == DESK, r.text

    # it appears on the open page by itself, with the buttons of an event nobody has taken
    page.wait_for_selector(_row(eid), timeout=30_000)
    assert page.locator(f"{_row(eid)} .gm-taken-by").inner_text() == "–"
    page.click(f"{_row(eid)} button.gm-take")
    page.wait_for_function(
        "([sel, who]) => { const c = document.querySelector(sel); return c && c.textContent === who; }",
        arg=[f"{_row(eid)} .gm-taken-by", desk["username"]], timeout=30_000)
    assert page.locator(f"{_row(eid)} button.gm-take").count() == 0
    page.fill(f"{_row(eid)} input.gm-note", "已协调商户全额退款")
    page.click(f"{_row(eid)} button.gm-settle")
    page.wait_for_selector(f"#gm-inbox-body tr.left[data-id=\"{eid}\"]", timeout=30_000)
    assert "settled" in page.locator(f"{_row(eid)} .gm-status").inner_text()
    assert page.locator(f"{_row(eid)} button").count() == 0

    # the unit's figures on the screen: one more dispute taken in at the desk's rung, and settled there
    fig = page.locator(f'#gm-unit-figures-body tr[data-key="{RUNG}"]')
    fig.wait_for(timeout=10_000)
    assert fig.locator(".gm-f-events").inner_text() == str(was["events"] + 1)
    assert fig.locator(".gm-f-settled").inner_text() == str(was["settled"] + 1)
    assert fig.locator(".gm-f-open").inner_text() == str(was["open"])
    assert fig.locator(".gm-f-settle").inner_text().split(" / ")[0] not in ("–", "")
    after = page.evaluate("() => window.gridmapScreen.state.data.figures")
    now = next(r for r in after["rungs"] if r["key"] == RUNG)
    assert (now["settled"], now["resolved"]) == (was["settled"] + 1, was.get("resolved", 0) + 1)
    assert page.locator('#gm-unit-figures-body tr.gm-total .gm-f-settled').inner_text() == str(after["total"]["settled"])
    # all without leaving the page, and nothing asked of anyone but the app
    assert navigations == [] and page.url == f"{server}/dashboard/unit"
    assert page.guard.foreign == []
    assert any("/dashboard/api/unit/inbox/" in u and u.endswith(f"/take?unit={DESK}") for u in page.guard.app)

    # the event's trail: taken and settled by the desk's member, with the note
    with httpx.Client(base_url=server, timeout=30) as http:
        trail = http.get(f"/v1/events/{eid}/history", headers=_bearer(http, dash_users["admin"])).json()
        acts = [(t["action"], t["actor"], t["note"]) for t in trail if t["action"] in ("take", "settle")]
        assert ("take", desk["username"], None) in acts, acts
        assert ("settle", desk["username"], "已协调商户全额退款") in acts, acts
        # the buttons' route takes the screen's cookie only from the screen's own page (and as JSON)
        session = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE_NAME)
        cookie = {"Cookie": f"{COOKIE_NAME}={session}"}
        url = f"/dashboard/api/unit/inbox/{eid}/take?unit={DESK}"
        r = http.post(url, json={}, headers=cookie)
        assert r.status_code == 403 and r.json()["field"] == "Origin", r.text
        r = http.post(url, json={}, headers={**cookie, "Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["field"] == "Origin", r.text
        r = http.post(url, content=b"note=x", headers={**cookie, "Origin": server,
                                                       "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422 and r.json()["field"] == "Content-Type", r.text
        r = http.post(url, json={}, headers={**cookie, "Origin": server})
        assert r.status_code == 409, r.text  # let through: the event is no longer at the desk's rung


def test_a_mediation_rooms_member_settles_with_the_agreement_and_its_case_closes(page, server, dash_users,
                                                                                  dash_engine):
    """At a community mediation room the screen's note is the agreement: settling sends it as such, and the
    dispute's case closes with it (settling with a note alone would leave the case open, and is refused)."""
    with dash_engine.connect() as conn:
        room, building = conn.execute(text(
            "SELECT u.code, b.code FROM units u JOIN buildings b ON b.community_code = u.area_code "
            "WHERE u.kind = 'community_mediation' ORDER BY u.code, b.code LIMIT 1")).one()
    member = {"username": f"dash_room_{secrets.token_hex(3)}", "password": secrets.token_urlsafe(16)}
    with Session(dash_engine) as session:
        auth.create_user(session, role="unit", unit_code=room, **member)
    with httpx.Client(base_url=server, timeout=30) as http:
        eid = _report(http, dash_users["intake"], "neighbour_dispute", building)
        r = http.post(f"/v1/events/{eid}/escalate", json={}, headers=_bearer(http, dash_users["admin"]))
        assert r.status_code == 200 and r.json()["unit"] == room, r.text

    page.goto(f"{server}/dashboard/unit")
    log_in(page, member)
    page.wait_for_selector(_row(eid), timeout=60_000)
    assert page.get_attribute(f"{_row(eid)} input.gm-note", "placeholder") == "调解协议 agreement"
    page.click(f"{_row(eid)} button.gm-take")
    page.wait_for_function(
        "([sel, who]) => { const c = document.querySelector(sel); return c && c.textContent === who; }",
        arg=[f"{_row(eid)} .gm-taken-by", member["username"]], timeout=30_000)
    page.fill(f"{_row(eid)} input.gm-note", "双方同意晚十点后不再施工")
    page.click(f"{_row(eid)} button.gm-settle")
    page.wait_for_selector(f"#gm-inbox-body tr.left[data-id=\"{eid}\"]", timeout=30_000)
    assert page.guard.foreign == []

    with httpx.Client(base_url=server, timeout=30) as http:
        me = _bearer(http, member)
        cid = next(c["id"] for c in http.get("/v1/mediation/cases", params={"unit": room}, headers=me).json()
                   if c["event_id"] == eid)
        case = http.get(f"/v1/mediation/cases/{cid}", headers=me).json()
        assert (case["status"], case["outcome"], case["agreement_text"]) == ("closed", "agreement",
                                                                             "双方同意晚十点后不再施工"), case
