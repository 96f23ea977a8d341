"""Tiered escalation (分级分流) on a simulated clock: overdue flags, the automatic sweep, manual escalation,
hand-up from a team, the top rung, the ladders as data, and the overdue metrics."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from gridmap.errors import InvalidInput
from gridmap.services.escalation import load_ladders, read_ladders
from tests.api.conftest import query, team_user

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)
LADDERS_CSV = Path(__file__).resolve().parents[2] / "data" / "escalation_ladders.csv"


@pytest.fixture(scope="module")
def spot(api_engine):
    def at(i: int) -> dict:
        r = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat "
                              "FROM buildings ORDER BY code OFFSET :i LIMIT 1", i=i * 97 + 13)[0]
        return {"lon": r.lon, "lat": r.lat}
    return at


def report(client, users, category, loc, **kw) -> dict:
    body = {"channel": "hotline_12345", "external_id": f"ESC-{next(_ids):04d}", "category": category,
            "location": loc, **kw}
    r = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert r.status_code == 201, r.text
    return r.json()


def get(client, users, eid) -> dict:
    r = client.get(f"/v1/events/{eid}", headers=users["operator"]["headers"])
    assert r.status_code == 200, r.text
    return r.json()


def sweep(client, users) -> dict:
    r = client.post("/v1/escalation/sweep", headers=users["operator"]["headers"])
    assert r.status_code == 200, r.text
    return r.json()


def test_the_ladders_are_data_with_a_limit_per_rung(client, users):
    r = client.get("/v1/escalation/ladders", params={"category": "consumer_dispute"}, headers=users["planner"]["headers"])
    assert r.status_code == 200
    assert [x["level"] for x in r.json()] == ["merchant", "front_desk", "floor_manager", "consumer_rights", "street"]
    r = client.get("/v1/escalation/ladders", params={"category": "neighbour_dispute"},
                   headers=users["planner"]["headers"])
    assert [x["name_zh"] for x in r.json()] == ["网格员", "社区调解室", "街道综治中心", "职能部门"]
    assert all(x["time_limit_min"] > 0 for x in r.json())
    r = client.get("/v1/escalation/ladders", params={"category": "alien_visit"}, headers=users["planner"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == "category"


def test_overdue_events_climb_the_ladder_automatically_up_to_the_last_automatic_rung(client, users, clock, spot,
                                                                                     field):
    ev = report(client, users, "neighbour_dispute", spot(1), dispatch=False)["event"]
    eid = ev["id"]
    assert ev["escalation"]["due_at"] == (field + dt.timedelta(minutes=240)).isoformat()
    clock.advance(minutes=239)
    assert not get(client, users, eid)["escalation"]["overdue"]
    assert eid not in [e["event_id"] for e in sweep(client, users)["escalated"]]
    clock.advance(minutes=2)
    assert get(client, users, eid)["escalation"]["overdue"]
    listed = client.get("/v1/events", params={"overdue": "true", "limit": 500}, headers=users["operator"]["headers"])
    assert eid in [e["id"] for e in listed.json()]
    out = sweep(client, users)
    (mine,) = [e for e in out["escalated"] if e["event_id"] == eid]
    assert (mine["from_rung"], mine["to_rung"], mine["handler_zh"]) == (0, 1, "社区调解室")
    now = get(client, users, eid)
    assert now["escalation"]["rung"] == 1 and not now["escalation"]["overdue"]
    assert now["escalation"]["due_at"] == (clock() + dt.timedelta(minutes=1440)).isoformat()
    assert now["status"] == "reported"  # escalation moves responsibility, not the lifecycle
    # rung 1 (1 day) and rung 2 (3 days) escalate automatically; rung 3, the department, is the top
    clock.advance(minutes=1441)
    sweep(client, users)
    clock.advance(minutes=4321)
    sweep(client, users)
    top = get(client, users, eid)
    assert top["escalation"]["rung"] == 3 and top["escalation"]["handler"] == "Responsible department"
    clock.advance(minutes=10081)
    assert eid not in [e["event_id"] for e in sweep(client, users)["escalated"]]
    assert get(client, users, eid)["escalation"]["overdue"]  # flagged, with nowhere higher to go
    r = client.post(f"/v1/events/{eid}/escalate", json={"note": "再上报"}, headers=users["operator"]["headers"])
    assert r.status_code == 409 and "top rung" in r.json()["message"]
    trail = client.get(f"/v1/events/{eid}/history", headers=users["operator"]["headers"]).json()
    esc = [t for t in trail if t["action"] == "auto_escalate"]
    assert [t["rung"] for t in esc] == [1, 2, 3] and {t["actor"] for t in esc} == {"system"}
    metrics = client.get("/v1/metrics/overdue", headers=users["planner"]["headers"]).json()
    assert metrics["total"] >= 1
    assert any(r["category"] == "neighbour_dispute" and r["rung"] == 3 for r in metrics["rows"])


def test_operator_escalates_by_hand_and_a_team_hands_up(client, users, api_engine, clock, spot, field):
    op = users["operator"]["headers"]
    # in the mall (data/units.csv: its front desk serves building B008174) the dispute goes to the front desk
    ev = report(client, users, "consumer_dispute", {"building_code": "B008174"}, dispatch=False)["event"]
    r = client.post(f"/v1/events/{ev['id']}/escalate", json={"note": "商户拒绝处理"}, headers=op)
    assert r.status_code == 200, r.text
    assert (r.json()["from_rung"], r.json()["to_rung"], r.json()["level"]) == (0, 1, "front_desk")
    assert r.json()["unit"] == "MALL1-DESK"
    # in a shop on the street there is no front desk nor floor manager: straight to the consumer-rights station
    elsewhere = report(client, users, "consumer_dispute", spot(2), dispatch=False)["event"]
    r = client.post(f"/v1/events/{elsewhere['id']}/escalate", json={}, headers=op)
    assert (r.json()["from_rung"], r.json()["to_rung"], r.json()["level"]) == (0, 3, "consumer_rights"), r.text
    assert r.json()["unit"] == f"CR-{elsewhere['area']['street']}"
    trail = client.get(f"/v1/events/{ev['id']}/history", headers=op).json()
    assert (trail[-1]["action"], trail[-1]["actor"], trail[-1]["note"]) == ("escalate", "operator", "商户拒绝处理")
    r = client.post(f"/v1/events/{ev['id']}/escalate", json={}, headers=users["planner"]["headers"])
    assert r.status_code == 403

    out = report(client, users, "elderly_care", spot(3))
    assert out["dispatch"]["team"], out
    team = team_user(client, api_engine, users["admin"]["headers"], out["dispatch"]["team"])
    aid = out["dispatch"]["assignment_id"]
    assert client.post(f"/v1/assignments/{aid}/accept", json={}, headers=team["headers"]).status_code == 200
    r = client.post(f"/v1/assignments/{aid}/hand-up", json={"note": "需社区养老中心介入", "lon": spot(3)["lon"],
                                                           "lat": spot(3)["lat"]}, headers=team["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["assignment"]["status"] == "cancelled"
    assert r.json()["event"]["escalation"]["rung"] == 1 and r.json()["event"]["escalation"]["level"] == "community"
    assert query(api_engine, "SELECT status FROM teams WHERE code = :t", t=out["dispatch"]["team"])[0][0] == "available"
    trail = client.get(f"/v1/events/{out['event']['id']}/history", headers=op).json()
    assert (trail[-1]["action"], trail[-1]["actor"]) == ("hand_up", team["username"])
    assert trail[-1]["lon"] == pytest.approx(spot(3)["lon"])


def test_ladders_load_from_a_csv_all_or_nothing(api_engine, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("category,rung,level,name,name_zh,time_limit_min,auto_escalate\n"
                   "parking,0,responder,Grid worker,网格员,60,true\nparking,2,street,Street,街道,60,true\n")
    with pytest.raises(InvalidInput, match="without gaps"):
        load_ladders(api_engine, bad)
    bad.write_text("category,rung,level,name,name_zh,time_limit_min,auto_escalate\nparking,0,x,y,z,-5,true\n")
    with pytest.raises(InvalidInput, match="positive"):
        load_ladders(api_engine, bad)
    before = query(api_engine, "SELECT count(*) FROM escalation_ladders")[0][0]
    assert before == len(read_ladders(LADDERS_CSV, {r[0] for r in query(
        api_engine, "SELECT code FROM event_categories")}))
    assert load_ladders(api_engine, LADDERS_CSV) == before  # the shipped file reloads as is
