"""The lifecycle through HTTP, per channel: reported → dispatched → accepted → on site → resolved → closed,
with decline and time-out re-dispatching to the next team, reopen, illegal transitions refused, and an
audit trail that records who, when, where and why and cannot be edited."""

from __future__ import annotations

import itertools

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from tests.api.conftest import query, refresh_positions, team_user

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def places(api_engine):
    """Buildings spread over the street (one per grid), with a business where there is one."""
    rows = query(api_engine, """
        SELECT DISTINCT ON (b.grid_code) b.code, ST_X(ST_PointOnSurface(b.geom)) AS lon,
               ST_Y(ST_PointOnSurface(b.geom)) AS lat,
               (SELECT s.code FROM businesses s WHERE s.building_id = b.id ORDER BY s.code LIMIT 1) AS business
        FROM buildings b WHERE b.grid_code IS NOT NULL
        ORDER BY b.grid_code, EXISTS (SELECT 1 FROM businesses s WHERE s.building_id = b.id) DESC, b.code DESC""")
    return [r._asdict() for r in rows]


def report(client, headers, body) -> dict:
    body = {"external_id": f"LC-{next(_ids):05d}"} | body
    r = client.post("/v1/events", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def actions(client, headers, event_id) -> list[tuple[str, str]]:
    r = client.get(f"/v1/events/{event_id}/history", headers=headers)
    assert r.status_code == 200, r.text
    return [(h["action"], h["actor"]) for h in r.json()]


CHANNELS = {
    "hotline_12345": lambda p: ("intake", {"category": "neighbour_dispute", "location": {"lon": p["lon"], "lat": p["lat"]},
                                           "reporter": {"name": "李四", "phone": "13900001111"}}),
    "chat_group": lambda p: ("intake", {"category": "parking", "location": {"lon": p["lon"], "lat": p["lat"]}}),
    "qr_code": lambda p: ("intake", {"category": "consumer_dispute", "location": {"place_code": p["business"]}}),
    "patrol": lambda p: ("gridworker", {"category": "road_facility", "location": {"lon": p["lon"], "lat": p["lat"]}}),
    "smart_alarm": lambda p: ("intake", {"category": "fire_hazard", "location": {"building_code": p["code"]}}),
}


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_full_lifecycle_per_channel(channel, client, users, places, api_engine, clock, field):
    place = [p for p in places if p["business"]][list(CHANNELS).index(channel) * 5]
    who, body = CHANNELS[channel](place)
    out = report(client, users[who]["headers"], {"channel": channel, **body})
    ev, d = out["event"], out["dispatch"]
    assert ev["status"] == "dispatched" and d["team"] and not d["waiting"] and d["eta_s"] is not None
    team = team_user(client, api_engine, users["admin"]["headers"], d["team"])
    h = team["headers"]

    feed = client.get("/v1/me/assignments", headers=h).json()
    (mine,) = [a for a in feed if a["event"]["id"] == ev["id"]]
    assert mine["status"] == "offered" and mine["id"] == d["assignment_id"]
    assert mine["route"]["type"] == "LineString" and mine["respond_by"]

    clock.advance(minutes=1)
    r = client.post(f"/v1/assignments/{mine['id']}/accept", json={}, headers=h)
    assert r.status_code == 200 and r.json()["event"]["status"] == "accepted", r.text
    clock.advance(minutes=6)
    r = client.post(f"/v1/assignments/{mine['id']}/arrive", json={"lon": place["lon"], "lat": place["lat"],
                                                                 "note": "到场"}, headers=h)
    assert r.status_code == 200 and r.json()["event"]["status"] == "on_site", r.text
    assert query(api_engine, "SELECT status FROM teams WHERE code = :t", t=d["team"])[0][0] == "on_site"
    clock.advance(minutes=20)
    r = client.post(f"/v1/assignments/{mine['id']}/resolve", json={"note": "已处置"}, headers=h)
    assert r.status_code == 200 and r.json()["event"]["status"] == "resolved"
    assert r.json()["assignment"]["status"] == "completed"
    assert query(api_engine, "SELECT status FROM teams WHERE code = :t", t=d["team"])[0][0] == "available"
    clock.advance(minutes=30)
    r = client.post(f"/v1/events/{ev['id']}/transitions", json={"action": "close", "note": "回访满意"},
                    headers=users["operator"]["headers"])
    assert r.status_code == 200 and r.json()["event"]["status"] == "closed", r.text
    final = r.json()["event"]
    m = final["milestones"]
    assert m["dispatched"] < m["accepted"] < m["on_site"] < m["resolved"] < m["closed"]
    assert final["legal_actions"] == ["reopen"]

    trail = client.get(f"/v1/events/{ev['id']}/history", headers=users["operator"]["headers"]).json()
    assert [(t["action"], t["from_status"], t["to_status"]) for t in trail] == [
        ("report", None, "reported"), ("dispatch", "reported", "dispatched"), ("accept", "dispatched", "accepted"),
        ("arrive", "accepted", "on_site"), ("resolve", "on_site", "resolved"), ("close", "resolved", "closed")]
    actors = [t["actor"] for t in trail]
    assert actors == [users[who]["username"], "system", team["username"], team["username"], team["username"],
                      "operator"]
    arrive = trail[3]
    assert (arrive["lon"], arrive["lat"]) == pytest.approx((place["lon"], place["lat"])) and arrive["note"] == "到场"
    assert trail[5]["note"] == "回访满意" and trail[5]["actor_role"] == "operator"
    assert [t["at"] for t in trail] == sorted(t["at"] for t in trail)


def test_decline_and_timeout_redispatch_to_the_next_team(client, users, places, api_engine, clock, field):
    p = places[40]
    out = report(client, users["intake"]["headers"], {"channel": "hotline_12345", "category": "parking",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}})
    eid, first = out["event"]["id"], out["dispatch"]["team"]
    u1 = team_user(client, api_engine, users["admin"]["headers"], first)
    r = client.post(f"/v1/assignments/{out['dispatch']['assignment_id']}/decline", json={"note": "另有任务"},
                    headers=u1["headers"])
    assert r.status_code == 200, r.text
    second = r.json()["dispatch"]["team"]
    assert second not in (None, first) and r.json()["event"]["status"] == "dispatched"
    assert r.json()["assignment"]["status"] == "declined"
    # the second team lets the offer lapse: the sweep times it out and offers it to a third
    clock.advance(minutes=3)
    sw = client.post("/v1/escalation/sweep", headers=users["operator"]["headers"])
    assert sw.status_code == 200, sw.text
    (t,) = [t for t in sw.json()["timeouts"] if t["event_id"] == eid]
    third = t["team"]
    assert third not in (None, first, second)
    rows = query(api_engine, "SELECT t.code, a.status FROM assignments a JOIN teams t ON t.id = a.team_id "
                             "WHERE a.event_id = :e ORDER BY a.id", e=eid)
    assert [tuple(r) for r in rows] == [(first, "declined"), (second, "timeout"), (third, "offered")]
    assert [a for a, _ in actions(client, users["operator"]["headers"], eid)] == [
        "report", "dispatch", "decline", "dispatch", "timeout", "dispatch"]
    # the lapsed offer cannot be accepted any more
    u2 = team_user(client, api_engine, users["admin"]["headers"], second)
    aid2 = query(api_engine, "SELECT a.id FROM assignments a JOIN teams t ON t.id = a.team_id "
                             "WHERE a.event_id = :e AND t.code = :t", e=eid, t=second)[0][0]
    r = client.post(f"/v1/assignments/{aid2}/accept", json={}, headers=u2["headers"])
    assert r.status_code == 409 and r.json()["field"] == "assignment_id"


def test_illegal_transitions_are_refused_and_change_nothing(client, users, places, api_engine, field):
    p = places[50]
    out = report(client, users["intake"]["headers"], {"channel": "chat_group", "category": "environment",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}})
    eid, aid = out["event"]["id"], out["dispatch"]["assignment_id"]
    op = users["operator"]["headers"]
    n_trail = len(actions(client, op, eid))
    r = client.post(f"/v1/events/{eid}/transitions", json={"action": "close"}, headers=op)
    assert r.status_code == 409 and r.json()["field"] == "action"
    assert "dispatched" in r.json()["message"] and "accept" in r.json()["fix"]
    r = client.post(f"/v1/events/{eid}/transitions", json={"action": "teleport"}, headers=op)
    assert r.status_code == 422 and r.json()["field"] == "action"
    team = team_user(client, api_engine, users["admin"]["headers"], out["dispatch"]["team"])
    r = client.post(f"/v1/assignments/{aid}/resolve", json={}, headers=team["headers"])  # not accepted yet
    assert r.status_code == 409
    r = client.post(f"/v1/assignments/{aid}/arrive", json={}, headers=team["headers"])
    assert r.status_code == 409
    ev = client.get(f"/v1/events/{eid}", headers=op).json()
    assert ev["status"] == "dispatched" and len(actions(client, op, eid)) == n_trail
    r = client.post(f"/v1/events/{eid}/dispatch", headers=op)
    assert r.status_code == 200 and r.json()["assignment_id"] == aid  # already offered: the same offer


def test_operator_drives_reopen_and_duplicates_close_with_their_master(client, users, places, api_engine, clock, field):
    p = places[60]
    op = users["operator"]["headers"]
    out = report(client, users["intake"]["headers"], {"channel": "hotline_12345", "category": "road_facility",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}})
    eid = out["event"]["id"]
    dup = report(client, users["intake"]["headers"], {"channel": "chat_group", "category": "road_facility",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}})
    assert dup["duplicate"]["id"] == eid
    r = client.post(f"/v1/events/{dup['event']['id']}/transitions", json={"action": "accept"}, headers=op)
    assert r.status_code == 409 and out["event"]["code"] in r.json()["fix"]
    for action in ("accept", "arrive", "resolve", "close"):
        clock.advance(minutes=5)
        r = client.post(f"/v1/events/{eid}/transitions", json={"action": action}, headers=op)
        assert r.status_code == 200, (action, r.text)
    assert client.get(f"/v1/events/{dup['event']['id']}", headers=op).json()["status"] == "closed"
    assert ("close_with_master", "operator") in actions(client, op, dup["event"]["id"])
    # the resident calls again: reopened, it goes back to reported and out to a team again
    refresh_positions(client, api_engine, users["admin"]["headers"], clock.advance(minutes=5))
    r = client.post(f"/v1/events/{eid}/transitions", json={"action": "reopen", "note": "居民反映仍未修好"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["dispatch"]["team"] is not None and r.json()["event"]["status"] == "dispatched"
    assert r.json()["event"]["milestones"]["closed"] is None
    trail = actions(client, op, eid)
    assert trail[-2:] == [("reopen", "operator"), ("dispatch", "system")]


def test_the_audit_trail_cannot_be_edited(client, users, places, api_engine, field):
    p = places[70]
    out = report(client, users["intake"]["headers"], {"channel": "hotline_12345", "category": "parking",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}, "dispatch": False})
    eid = out["event"]["id"]
    for sql in ("UPDATE event_transitions SET actor = 'nobody' WHERE event_id = :e",
                "DELETE FROM event_transitions WHERE event_id = :e"):
        with pytest.raises(sqlalchemy.exc.DBAPIError) as info, api_engine.begin() as conn:
            conn.execute(text(sql), {"e": eid})
        assert isinstance(info.value.orig, psycopg.errors.InsufficientPrivilege)
        assert "append-only" in str(info.value.orig)
    assert actions(client, users["operator"]["headers"], eid) == [("report", "intake")]
    # any status change, however made, leaves its row (here: straight SQL, as a script would)
    with api_engine.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'dispatched', dispatched_at = now() WHERE id = :e"), {"e": eid})
    assert actions(client, users["operator"]["headers"], eid) == [("report", "intake"), ("dispatch", "system")]


def test_an_event_nobody_could_take_is_offered_by_the_sweep_once_teams_report_in(client, users, places, api_engine,
                                                                                 clock, field):
    clock.advance(minutes=10)  # every team's last position is now stale: nobody can be sent
    p = places[80]
    out = report(client, users["intake"]["headers"], {"channel": "hotline_12345", "category": "parking",
                                                      "location": {"lon": p["lon"], "lat": p["lat"]}})
    held = report(client, users["intake"]["headers"], {"channel": "hotline_12345", "category": "fraud",
                                                       "location": {"lon": p["lon"], "lat": p["lat"]},
                                                       "dispatch": False})
    assert out["dispatch"]["waiting"] and out["dispatch"]["team"] is None and out["event"]["status"] == "reported"
    assert "waiting" in out["dispatch"]["message"]
    refresh_positions(client, api_engine, users["admin"]["headers"], clock.advance(minutes=1))
    sw = client.post("/v1/escalation/sweep", headers=users["operator"]["headers"]).json()
    (offer,) = [o for o in sw["offered"] if o["event_id"] == out["event"]["id"]]
    assert offer["team"] is not None
    assert held["event"]["id"] not in [o["event_id"] for o in sw["offered"]]  # held for an operator: left alone
    ev = client.get(f"/v1/events/{out['event']['id']}", headers=users["operator"]["headers"]).json()
    assert ev["status"] == "dispatched" and ev["team"] == offer["team"]
