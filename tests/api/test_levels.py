"""The levels of command and the units behind the rungs (issue 14), through HTTP on the simulated clock.

- A consumer dispute in the mall is walked up its ladder by the units' own accounts: merchant -> front desk
  -> floor management -> (overdue: the sweep) -> consumer-rights station, which settles it. Each rung's
  stint (entered, taken, left and how) is recorded at the clock's times, and the unit figures show it.
- A neighbour dispute escalated to a community mediation room gets a case; its parties' personal data is
  clear for the room, masked for admins and the area's operators, refused to other units and roles, and
  every read that returns it is logged.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import text
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import new_user, query, recv, report_by_phone

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)
MALL = "B008174"  # data/units.csv: the mall's merchants, front desk and floor management serve this building


def _act(client, who: dict, unit: str, eid: int, action: str, **body) -> dict:
    r = client.post(f"/v1/units/{unit}/inbox/{eid}/{action}", json=body, headers=who["headers"])
    assert r.status_code == 200, r.text
    return r.json()


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def test_a_mall_dispute_climbs_the_ladder_by_the_units_own_hands_and_is_settled_at_the_consumer_rights_station(
        client, users, api_engine, clock):
    street = query(api_engine, "SELECT a.parent_code FROM buildings b JOIN areas a ON a.code = b.community_code "
                               "AND a.valid_to IS NULL WHERE b.code = :b", b=MALL)[0][0]
    station = f"CR-{street}"
    units = ["MALL1-MERCHANTS", "MALL1-DESK", "MALL1-FLOOR", station]
    members = {u: new_user(client, users["admin"], f"lvl-{u.lower()}", role="unit", unit_code=u) for u in units}
    clock.advance(hours=2)
    # other tests' consumer disputes still open would climb into these units during the walk (the sweep moves
    # every overdue event): close them first, so the window's figures are this dispute's alone
    with api_engine.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'closed', closed_at = :t WHERE category = 'consumer_dispute' "
                          "AND status IN ('reported', 'dispatched', 'accepted', 'on_site')"), {"t": clock()})
    t0 = clock()
    ev = report_by_phone(client, users, "consumer_dispute", {"building_code": MALL})
    eid = ev["id"]
    marks: dict[str, dt.datetime] = {"merchant_in": clock()}

    # the merchant: it is in their inbox; they take it, then hand it up
    inbox = client.get("/v1/units/MALL1-MERCHANTS/inbox", headers=members["MALL1-MERCHANTS"]["headers"]).json()
    assert eid in [i["event"]["id"] for i in inbox["events"]]
    # the front desk cannot act on it while it is the merchant's
    r = client.post(f"/v1/units/MALL1-DESK/inbox/{eid}/take", json={}, headers=members["MALL1-DESK"]["headers"])
    assert r.status_code == 409, r.text
    # nor may the merchant act for the front desk
    r = client.post(f"/v1/units/MALL1-DESK/inbox/{eid}/take", json={}, headers=members["MALL1-MERCHANTS"]["headers"])
    assert r.status_code == 403 and r.json()["field"] == "code", r.text
    marks["merchant_taken"] = clock.advance(minutes=5)
    _act(client, members["MALL1-MERCHANTS"], "MALL1-MERCHANTS", eid, "take")
    marks["desk_in"] = clock.advance(minutes=25)
    out = _act(client, members["MALL1-MERCHANTS"], "MALL1-MERCHANTS", eid, "escalate", note="商户拒绝退款")
    assert out["rungs"][-1]["unit"] == "MALL1-DESK"

    # the front desk takes it, asks for the receipt, then hands it up
    marks["desk_taken"] = clock.advance(minutes=10)
    _act(client, members["MALL1-DESK"], "MALL1-DESK", eid, "take")
    marks["desk_asked"] = clock.advance(minutes=10)
    _act(client, members["MALL1-DESK"], "MALL1-DESK", eid, "ask_info", note="请提供购物小票")
    marks["floor_in"] = clock.advance(minutes=25)
    _act(client, members["MALL1-DESK"], "MALL1-DESK", eid, "escalate")

    # floor management takes it but lets its four hours run out: the sweep moves it up
    marks["floor_taken"] = clock.advance(minutes=15)
    _act(client, members["MALL1-FLOOR"], "MALL1-FLOOR", eid, "take")
    clock.advance(minutes=200)
    r = client.post("/v1/escalation/sweep", headers=users["admin"]["headers"])
    assert r.status_code == 200, r.text
    rungs = client.get(f"/v1/events/{eid}/rungs", headers=users["operator"]["headers"]).json()
    assert rungs[-1]["unit"] == "MALL1-FLOOR" and rungs[-1]["left_at"] is None  # not yet due
    marks["station_in"] = clock.advance(minutes=26)  # 241 min after it reached the floor: overdue by one
    r = client.post("/v1/escalation/sweep", headers=users["admin"]["headers"])
    assert r.status_code == 200, r.text

    # the consumer-rights station takes it and settles it with an agreement
    marks["station_taken"] = clock.advance(minutes=30)
    _act(client, members[station], station, eid, "take")
    marks["settled"] = clock.advance(minutes=90)
    out = _act(client, members[station], station, eid, "settle", note="商户退款", agreement="商户全额退款 300 元")
    assert out["event"]["status"] in ("resolved", "closed"), out["event"]

    # each rung's stint, at the clock's times
    rungs = client.get(f"/v1/events/{eid}/rungs", headers=users["operator"]["headers"]).json()
    got = [(r["rung"], r["unit"], _t(r["entered_at"]), _t(r["taken_at"]) if r["taken_at"] else None,
            _t(r["left_at"]), r["left_how"]) for r in rungs]
    assert got == [
        (0, "MALL1-MERCHANTS", marks["merchant_in"], marks["merchant_taken"], marks["desk_in"], "escalated"),
        (1, "MALL1-DESK", marks["desk_in"], marks["desk_taken"], marks["floor_in"], "escalated"),
        (2, "MALL1-FLOOR", marks["floor_in"], marks["floor_taken"], marks["station_in"], "auto_escalated"),
        (3, station, marks["station_in"], marks["station_taken"], marks["settled"], "settled"),
    ]
    assert _t(rungs[1]["info_requested_at"]) == marks["desk_asked"]
    assert [r["taken_by"] for r in rungs] == [f"lvl-{u.lower()}" for u in units]
    # the trail names who did what
    trail = client.get(f"/v1/events/{eid}/history", headers=users["operator"]["headers"]).json()
    acts = [(t["action"], t["actor"]) for t in trail if t["action"] in ("take", "ask_info", "escalate", "settle")]
    assert ("escalate", "lvl-mall1-merchants") in acts and ("settle", f"lvl-{station.lower()}") in acts

    # the figures: per unit, the disputes that reached it in the window, how they left and the minutes there
    params = {"group_by": "unit", "start": t0.isoformat(), "end": (clock() + dt.timedelta(seconds=1)).isoformat()}
    r = client.get("/v1/metrics/units", params=params, headers=users["admin"]["headers"])
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert set(units) <= set(rows)
    minutes = {"MALL1-MERCHANTS": 30, "MALL1-DESK": 45, "MALL1-FLOOR": 241, station: 120}
    for u in units:
        row = rows[u]
        assert (row["events"], row["open"], row["done"], row["resolved"]) == (1, 0, 1, 1), (u, row)
        assert row["minutes"]["avg"] == minutes[u], (u, row)
        assert row["resolution_rate"] == 1.0, (u, row)
    assert (rows["MALL1-MERCHANTS"]["escalated"], rows["MALL1-MERCHANTS"]["settled"]) == (1, 0)
    assert rows["MALL1-FLOOR"]["overdue"] == 1 and rows["MALL1-DESK"]["overdue"] == 0
    assert (rows[station]["settled"], rows[station]["settle_rate"]) == (1, 1.0)
    # the station's member sees the station's row only
    r = client.get("/v1/metrics/units", params=params, headers=members[station]["headers"])
    assert [row["key"] for row in r.json()["rows"]] == [station]


def _in_community(api_engine, street: str, offset: int = 777) -> tuple[str, dict]:
    c, x, y = query(api_engine, "SELECT b.community_code, ST_X(ST_PointOnSurface(b.geom)), "
                                "ST_Y(ST_PointOnSurface(b.geom)) FROM buildings b "
                                "WHERE b.community_code LIKE :s || '%' ORDER BY b.code OFFSET :o LIMIT 1", s=street, o=offset)[0]
    return c, {"lon": x, "lat": y}


def _reads(api_engine, case_id: int) -> list[tuple[str, str]]:
    return [(r.actor, r.access) for r in query(
        api_engine, "SELECT actor, detail->>'access' AS access FROM pii_access_log WHERE table_name = "
                    "'mediation_party_pii' AND (detail->>'case_id')::int = :c ORDER BY id", c=case_id)]


def test_a_mediation_case_shows_its_parties_only_to_the_room_and_logs_every_read(client, users, api_engine, clock,
                                                                                 street, street_b):
    community, spot = _in_community(api_engine, street)
    room = query(api_engine, "SELECT code FROM units WHERE kind = 'community_mediation' AND area_code = :c",
                 c=community)[0][0]
    other_room = query(api_engine, "SELECT code FROM units WHERE kind = 'community_mediation' AND area_code <> :c "
                                   "ORDER BY code LIMIT 1", c=community)[0][0]
    admin = users["admin"]
    member = new_user(client, admin, "lvl-room", role="unit", unit_code=room)
    stranger = new_user(client, admin, "lvl-other-room", role="unit", unit_code=other_room)
    community_op = new_user(client, admin, "lvl-community-op", role="operator", community_code=community)
    other_street_op = new_user(client, admin, "lvl-street-b-op", role="operator", street_code=street_b)
    clock.advance(hours=2)
    ev = report_by_phone(client, users, "neighbour_dispute", spot)
    r = client.post(f"/v1/events/{ev['id']}/escalate", json={"note": "噪音纠纷"}, headers=users["operator"]["headers"])
    assert r.status_code == 200 and r.json()["unit"] == room, r.text
    cases = client.get("/v1/mediation/cases", headers=member["headers"]).json()
    case = next(c for c in cases if c["event_id"] == ev["id"])  # opened on arrival
    cid = case["id"]
    for party in ({"side": "applicant", "name": "张三丰", "phone": "13812345678", "id_card": "330106198001011234"},
                  {"side": "respondent", "name": "李四", "phone": "13987654321"}):
        r = client.post(f"/v1/mediation/cases/{cid}/parties", json=party, headers=member["headers"])
        assert r.status_code == 201, r.text
    before = len(_reads(api_engine, cid))

    def read(who: dict) -> tuple[int, dict]:
        r = client.get(f"/v1/mediation/cases/{cid}", headers=who["headers"])
        return r.status_code, r.json()

    # the room holding the case: in clear (the ID card's middle digits stay masked for everyone)
    status, body = read(member)
    assert status == 200 and body["access"] == "clear"
    assert {(p["name"], p["phone"]) for p in body["parties"]} == {("张三丰", "13812345678"), ("李四", "13987654321")}
    # admins and the area's operators (street and community): masked
    for who in (admin, users["operator"], community_op):
        status, body = read(who)
        assert status == 200 and body["access"] == "masked", body
        names = {p["name"] for p in body["parties"]}
        phones = {p["phone"] for p in body["parties"]}
        assert "张三丰" not in names and "李四" not in names and len(names) == 2, names
        assert not phones & {"13812345678", "13987654321"} and all("*" in p for p in phones), phones
        assert all("19800101" not in (p["id_card"] or "") for p in body["parties"])
    # another room, another street's operator, a planner, a grid worker: refused, nothing returned
    for who in (stranger, other_street_op, users["planner"], users["gridworker"]):
        status, body = read(who)
        assert status in (403, 404), body
        assert "13812345678" not in str(body) and "张三丰" not in str(body)
    # every read that returned the parties' data is logged, with its reader and how they saw it
    reads = _reads(api_engine, cid)[before:]
    assert reads == [("lvl-room", "clear"), ("admin", "masked"), ("operator", "masked"),
                     ("lvl-community-op", "masked")]
    # only the room writes the case
    r = client.post(f"/v1/mediation/cases/{cid}/sessions", json={"held_at": clock().isoformat(),
                                                                  "mediators": ["王调解"]},
                    headers=users["operator"]["headers"])
    assert r.status_code == 403, r.text


def test_one_door_walk_ins_and_the_directors_hotline_are_counted_answered_on_the_spot(client, users, api_engine,
                                                                                      clock, street):
    op = users["operator"]
    spots = iter(_in_community(api_engine, street, 1500 + 450 * i)[1] for i in range(5))  # far apart: no duplicates
    spot = next(spots)
    clock.advance(hours=2)
    t0 = clock()

    def call(channel: str, answered: str | None) -> dict:
        clock.advance(minutes=7)
        where = next(spots)
        body = {"channel": channel, "external_id": f"DOOR-{next(_ids):04d}", "category": "neighbour_dispute",
                "location": where, "dispatch": False, "reporter": {"name": "周九", "phone": "13500003333"},
                **({"answered": answered} if answered else {})}
        r = client.post("/v1/events", json=body, headers=op["headers"])
        assert r.status_code == 201, r.text
        return r.json()

    answered = call("director_hotline", "已答复：物业费标准见公示栏")
    ev = answered["event"]
    assert (ev["status"], ev["outcome"]) == ("closed", "answered_on_the_spot"), ev
    assert answered["dispatch"] is None
    assert query(api_engine, "SELECT count(*) FROM assignments WHERE event_id = :e", e=ev["id"])[0][0] == 0
    call("director_hotline", "已答复")
    kept = call("director_hotline", None)["event"]
    assert kept["status"] == "reported"
    call("walk_in", "当场解答")
    # a grid worker cannot take a walk-in at the centre's door
    r = client.post("/v1/events", json={"channel": "walk_in", "external_id": "DOOR-GW", "category": "environment",
                                        "location": spot, "dispatch": False}, headers=users["gridworker"]["headers"])
    assert r.status_code == 403, r.text

    params = {"group_by": "channel", "start": t0.isoformat(), "end": (clock() + dt.timedelta(seconds=1)).isoformat()}
    r = client.get("/v1/metrics/intake", params=params, headers=users["planner"]["headers"])
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    hotline, door = rows["director_hotline"], rows["walk_in"]
    assert (hotline["taken"], hotline["answered_on_the_spot"], hotline["dispatched"], hotline["open"],
            hotline["closed"]) == (3, 2, 0, 1, 2), hotline
    assert (door["taken"], door["answered_on_the_spot"], door["dispatched"]) == (1, 1, 0), door
    # one channel only
    r = client.get("/v1/metrics/intake", params={**params, "channel": "director_hotline"},
                   headers=op["headers"])
    assert [row["key"] for row in r.json()["rows"]] == ["director_hotline"]


def test_a_units_inbox_is_pushed_live_and_return_hands_the_event_back_down(client, users, api_engine, clock):
    """The desk's live inbox (WebSocket) shows a dispute the moment the merchant hands it up, and again when the
    desk returns it; the return puts it back on the merchant's rung with a fresh clock. Another unit's member
    may not listen to the desk's inbox (4403)."""
    members = {u: new_user(client, users["admin"], f"lvl-live-{u.lower()}", role="unit", unit_code=u)
               for u in ("MALL1-MERCHANTS", "MALL1-DESK")}
    desk, merchants = members["MALL1-DESK"], members["MALL1-MERCHANTS"]
    with client.websocket_connect("/v1/units/MALL1-DESK/feed/ws") as ws:
        ws.send_json({"token": merchants["token"]})
        msg = recv(ws)
        assert msg["type"] == "error" and msg["field"] == "role", msg
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4403
    with client.websocket_connect("/v1/units/MALL1-DESK/feed/ws", headers=desk["headers"]) as ws:
        snap = recv(ws)
        assert snap["type"] == "snapshot"
        ev = report_by_phone(client, users, "consumer_dispute", {"building_code": MALL})
        eid = ev["id"]
        assert eid not in [i["event"]["id"] for i in snap["inbox"]["events"]]
        clock.advance(minutes=3)
        _act(client, merchants, "MALL1-MERCHANTS", eid, "escalate", note="商户无法处理")
        msg = recv(ws)
        while msg["change"].get("event_id") != eid:  # other tests' disputes may move meanwhile
            msg = recv(ws)
        assert msg["type"] == "inbox" and eid in [i["event"]["id"] for i in msg["inbox"]["events"]]
        returned_at = clock.advance(minutes=4)
        out = _act(client, desk, "MALL1-DESK", eid, "return", note="请商户先与顾客协商")
        msg = recv(ws)
        while msg["change"].get("event_id") != eid:
            msg = recv(ws)
        assert eid not in [i["event"]["id"] for i in msg["inbox"]["events"]]
    assert [(r["rung"], r["unit"]) for r in out["rungs"]] == [(0, "MALL1-MERCHANTS"), (1, "MALL1-DESK"),
                                                             (0, "MALL1-MERCHANTS")]
    assert out["rungs"][1]["left_how"] == "returned" and _t(out["rungs"][1]["left_at"]) == returned_at
    assert out["rungs"][2]["left_at"] is None and _t(out["rungs"][2]["entered_at"]) == returned_at
    inbox = client.get("/v1/units/MALL1-MERCHANTS/inbox", headers=merchants["headers"]).json()
    assert eid in [i["event"]["id"] for i in inbox["events"]]
    # on the lowest rung there is nothing below to return to
    r = client.post(f"/v1/units/MALL1-MERCHANTS/inbox/{eid}/return", json={}, headers=merchants["headers"])
    assert r.status_code == 409 and r.json()["field"] == "action", r.text


def test_a_mediation_rooms_inbox_never_leaves_its_case_open(client, users, api_engine, clock, street):
    """At a mediation room the case ends with its outcome: the inbox's settle needs the agreement (and closes
    the case with it); settling with a note only or escalating it (a failure: the case's outcome sends it up)
    are refused (409, naming the case's outcome endpoint) and change nothing."""
    community, spot = _in_community(api_engine, street, 3100)
    room = query(api_engine, "SELECT code FROM units WHERE kind = 'community_mediation' AND area_code = :c",
                 c=community)[0][0]
    member = new_user(client, users["admin"], "lvl-inbox-room", role="unit", unit_code=room)
    clock.advance(hours=2)
    ev = report_by_phone(client, users, "neighbour_dispute", spot)
    r = client.post(f"/v1/events/{ev['id']}/escalate", json={}, headers=users["operator"]["headers"])
    assert r.status_code == 200 and r.json()["unit"] == room, r.text
    eid = ev["id"]
    cid = next(c["id"] for c in client.get("/v1/mediation/cases", headers=member["headers"]).json()
               if c["event_id"] == eid)
    _act(client, member, room, eid, "take")

    def state() -> tuple:
        return (query(api_engine, "SELECT status, outcome, escalation_rung FROM events WHERE id = :e", e=eid)[0],
                query(api_engine, "SELECT status FROM mediation_cases WHERE id = :c", c=cid)[0][0])

    before = state()
    assert before[1] == "open"
    for action, body, field in (("settle", {"note": "双方口头同意"}, "agreement"),
                                ("escalate", {"note": "调解不成"}, "action")):
        r = client.post(f"/v1/units/{room}/inbox/{eid}/{action}", json=body, headers=member["headers"])
        assert r.status_code == 409 and r.json()["field"] == field, r.text
        assert f"/v1/mediation/cases/{cid}/outcome" in r.json()["fix"], r.text
        assert state() == before, action

    at = clock.advance(minutes=40)
    out = _act(client, member, room, eid, "settle", note="当场和解", agreement="楼上住户夜间十点后不再装修")
    assert out["event"]["status"] in ("resolved", "closed"), out["event"]
    case = client.get(f"/v1/mediation/cases/{cid}", headers=member["headers"]).json()
    assert (case["status"], case["outcome"], case["agreement_text"]) == ("closed", "agreement",
                                                                         "楼上住户夜间十点后不再装修")
    assert _t(case["outcome_at"]) == at
    assert state()[0][0] in ("resolved", "closed") and state()[0][1] == "agreement"


def test_a_failed_mediation_goes_to_litigation_or_up_to_the_street_centre(client, users, api_engine, clock, street):
    """Two neighbour disputes fail in the community's mediation room: one is referred to litigation (its event
    closes, outcome litigation, not resolved; the room's stint left 'referred'), the other to a department (its
    event climbs to the street's comprehensive-governance centre, rung 2, and stays open). A failure needs a
    referral; a settled case takes none."""
    community, _ = _in_community(api_engine, street, 2300)
    room = query(api_engine, "SELECT code FROM units WHERE kind = 'community_mediation' AND area_code = :c",
                 c=community)[0][0]
    centre = f"SC-{street}"
    assert query(api_engine, "SELECT count(*) FROM units WHERE code = :u AND kind = 'street_centre'", u=centre)[0][0] == 1
    # two buildings of that community, far apart (no duplicate of each other)
    spots = [{"lon": x, "lat": y} for x, y in query(
        api_engine, "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings "
                    "WHERE community_code = :c ORDER BY ST_X(ST_PointOnSurface(geom))", c=community)]
    assert len(spots) >= 2
    member = new_user(client, users["admin"], "lvl-fail-room", role="unit", unit_code=room)
    clock.advance(hours=2)
    cases = {}
    for referral, spot in (("litigation", spots[0]), ("department", spots[-1])):
        ev = report_by_phone(client, users, "neighbour_dispute", spot)
        r = client.post(f"/v1/events/{ev['id']}/escalate", json={}, headers=users["operator"]["headers"])
        assert r.status_code == 200 and r.json()["unit"] == room, r.text
        listed = client.get("/v1/mediation/cases", headers=member["headers"]).json()
        cases[referral] = (ev["id"], next(c["id"] for c in listed if c["event_id"] == ev["id"]))

    eid, cid = cases["litigation"]
    r = client.post(f"/v1/mediation/cases/{cid}/outcome", json={"outcome": "failed"}, headers=member["headers"])
    assert r.status_code == 422 and r.json()["field"] == "referral", r.text
    r = client.post(f"/v1/mediation/cases/{cid}/outcome", json={"outcome": "agreement", "agreement_text": "和解",
                                                                 "referral": "litigation"}, headers=member["headers"])
    assert r.status_code == 422 and r.json()["field"] == "referral", r.text
    at = clock.advance(minutes=30)
    r = client.post(f"/v1/mediation/cases/{cid}/outcome", json={"outcome": "failed", "referral": "litigation"},
                    headers=member["headers"])
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["outcome"], r.json()["referral"]) == ("closed", "failed", "litigation")
    status, outcome = query(api_engine, "SELECT status, outcome FROM events WHERE id = :e", e=eid)[0]
    assert status in ("resolved", "closed") and outcome == "litigation"
    rungs = client.get(f"/v1/events/{eid}/rungs", headers=users["operator"]["headers"]).json()
    assert (rungs[-1]["unit"], rungs[-1]["left_how"], _t(rungs[-1]["left_at"])) == (room, "referred", at)
    r = client.post(f"/v1/mediation/cases/{cid}/outcome", json={"outcome": "failed", "referral": "litigation"},
                    headers=member["headers"])
    assert r.status_code == 409, r.text  # an outcome is recorded once

    eid, cid = cases["department"]
    at = clock.advance(minutes=30)
    r = client.post(f"/v1/mediation/cases/{cid}/outcome", json={"outcome": "failed", "referral": "department"},
                    headers=member["headers"])
    assert r.status_code == 200 and r.json()["referral"] == "department", r.text
    status, outcome, rung = query(api_engine, "SELECT status, outcome, escalation_rung FROM events WHERE id = :e",
                                  e=eid)[0]
    assert status in ("reported", "dispatched", "accepted", "on_site") and outcome is None and rung == 2
    rungs = client.get(f"/v1/events/{eid}/rungs", headers=users["operator"]["headers"]).json()
    assert [(r["rung"], r["unit"]) for r in rungs[-2:]] == [(1, room), (2, centre)]
    assert _t(rungs[-1]["entered_at"]) == at and rungs[-1]["left_at"] is None
    inbox = client.get(f"/v1/units/{centre}/inbox", headers=users["admin"]["headers"]).json()
    assert eid in [i["event"]["id"] for i in inbox["events"]]
