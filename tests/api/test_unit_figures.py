"""The figures of the units behind the rungs, per unit and per rung (issue 14, point 3), and a unit inbox
confined to an operator's area in SQL, through HTTP on the simulated clock.

Five neighbour disputes of one community of the second street reach its mediation room at the same moment
and leave it at known minutes: an agreement (60), a partial agreement (120), a failed mediation referred to
litigation (30), one referred to a department (90: it climbs to the street's centre) and one returned to the
grid worker (45). The figures are asserted exactly: the room's stays, its settle times (median, p90), its
cases by outcome, and who may read them.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import new_user, query, report_by_phone

pytestmark = [pytest.mark.db]


def _escalate(client, who: dict, eid: int) -> dict:
    r = client.post(f"/v1/events/{eid}/escalate", json={}, headers=who["headers"])
    assert r.status_code == 200, r.text
    return r.json()


def _spots(api_engine, community: str) -> list[dict]:
    return [{"lon": x, "lat": y} for x, y in query(
        api_engine, "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings "
                    "WHERE community_code = :c ORDER BY code", c=community)]


def _figures(client, who: dict, **params) -> tuple[int, dict]:
    r = client.get("/v1/metrics/units", params=params, headers=who["headers"])
    return r.status_code, r.json()


def test_a_mediation_rooms_figures_per_unit_and_rung_after_five_disputes_with_known_outcomes(
        client, users, api_engine, clock, street_b):
    community = query(api_engine, "SELECT u.area_code FROM units u JOIN areas a ON a.code = u.area_code "
                                  "AND a.valid_to IS NULL WHERE u.kind = 'community_mediation' AND a.parent_code = :s "
                                  "ORDER BY u.area_code DESC LIMIT 1", s=street_b)[0][0]
    room, centre = f"MR-{community}", f"SC-{street_b}"
    admin = users["admin"]
    member = new_user(client, admin, "fig-room", role="unit", unit_code=room)
    op_b = new_user(client, admin, "fig-street-b-op", role="operator", street_code=street_b)
    spots = _spots(api_engine, community)
    assert len(spots) >= 5
    clock.advance(hours=3)
    events = []
    for spot in spots[:5]:  # 31 minutes apart: no report is a near-duplicate of another
        events.append(report_by_phone(client, users, "neighbour_dispute", spot)["id"])
        clock.advance(minutes=31)
    t1 = clock()  # all five reach the room now
    for eid in events:
        assert _escalate(client, admin, eid)["unit"] == room
    cases = {c["event_id"]: c["id"] for c in client.get("/v1/mediation/cases", params={"status": "open"},
                                                        headers=member["headers"]).json()}
    agreed, partial, litigation, department, returned = events
    assert set(events) <= set(cases)

    def at(minutes: int) -> None:
        clock.now = t1 + dt.timedelta(minutes=minutes)

    def outcome(eid: int, **body) -> None:
        r = client.post(f"/v1/mediation/cases/{cases[eid]}/outcome", json=body, headers=member["headers"])
        assert r.status_code == 200, r.text

    at(10)
    r = client.post(f"/v1/units/{room}/inbox/{agreed}/take", json={}, headers=member["headers"])
    assert r.status_code == 200, r.text
    at(30)
    outcome(litigation, outcome="failed", referral="litigation")
    at(45)
    r = client.post(f"/v1/units/{room}/inbox/{returned}/return", json={"note": "请网格员先行调处"},
                    headers=member["headers"])
    assert r.status_code == 200, r.text
    at(60)
    outcome(agreed, outcome="agreement", agreement_text="双方同意限时施工")
    at(90)
    outcome(department, outcome="failed", referral="department")
    at(120)
    outcome(partial, outcome="partial", agreement_text="部分赔偿")
    window = {"start": t1.isoformat(), "end": (t1 + dt.timedelta(minutes=121)).isoformat()}

    # per unit: the room's five disputes and its cases, as admins see them
    status, body = _figures(client, admin, group_by="unit", unit=room, **window)
    assert status == 200, body
    assert [r["key"] for r in body["rows"]] == [room] and body["unit"] == room
    row = body["rows"][0]
    counts = {k: row[k] for k in ("events", "open", "settled", "escalated", "referred", "returned", "overdue", "done",
                                  "resolved")}
    assert counts == {"events": 5, "open": 0, "settled": 2, "escalated": 1, "referred": 1, "returned": 1,
                      "overdue": 0, "done": 5, "resolved": 2}
    assert (row["resolution_rate"], row["settle_rate"]) == (0.4, 0.4)
    # minutes there: 30, 45, 60, 90, 120; to settling there: 60, 120
    assert row["minutes"] == {"avg": 69.0, "p50": 60.0, "p90": 108.0, "max": 120.0}
    assert row["settle_min"] == {"avg": 90.0, "p50": 90.0, "p90": 114.0}
    assert row["take_min"] == {"avg": 10.0}
    # its cases: opened on arrival; the returned dispute's stays open; minutes to the outcome 30, 60, 90, 120
    assert row["cases"] == {"cases": 5, "open": 1, "closed": 4, "agreement": 1, "partial": 1, "failed": 2,
                            "to_litigation": 1, "to_department": 1, "resolution_rate": 0.5, "days_avg": 0.05,
                            "minutes": {"p50": 75.0, "p90": 111.0}}

    # per rung: the room's rung of the neighbour-dispute ladder, the same disputes; the street centre's rung
    status, body = _figures(client, admin, group_by="unit_rung", **window)
    rows = {r["key"]: r for r in body["rows"]}
    assert rows[f"{room}/neighbour_dispute:1"]["settle_min"] == {"avg": 90.0, "p50": 90.0, "p90": 114.0}
    assert rows[f"{room}/neighbour_dispute:1"]["events"] == 5
    up = rows[f"{centre}/neighbour_dispute:2"]
    assert (up["events"], up["open"], up["done"], up["settle_min"]["p50"]) == (1, 1, 0, None)

    # who reads them: the room's member its own (asking for another unit: 403), the second street's operator
    # the same figures, the first street's operator none of the room's, planners all
    status, body = _figures(client, member, **window)
    assert status == 200 and [r["key"] for r in body["rows"]] == [room]
    assert body["rows"][0]["cases"] == row["cases"]
    status, body = _figures(client, member, unit=centre, **window)
    assert status == 403 and body["field"] == "unit", body
    status, body = _figures(client, op_b, unit=room, **window)
    assert status == 200 and body["rows"] == [row]
    status, body = _figures(client, users["operator"], group_by="unit", **window)
    assert status == 200 and room not in [r["key"] for r in body["rows"]], body
    status, body = _figures(client, users["planner"], group_by="unit", unit=room, **window)
    assert status == 200 and body["rows"] == [row]
    status, body = _figures(client, admin, unit="NO-SUCH-UNIT", **window)
    assert status == 404 and body["field"] == "unit", body


def test_an_operators_view_of_a_unit_inbox_is_confined_in_sql_before_the_limit(client, users, api_engine, clock,
                                                                                street, street_b):
    """Two food-safety events, one in each street, both at the district's market-supervision bureau (a unit
    above both streets). Each street's operator, asking for one event (limit=1), gets one of their own street:
    filtering after the limit would hand one of them an empty page."""
    bureau = "MSB-330106"
    op_b = new_user(client, users["admin"], "fig-inbox-op-b", role="operator", street_code=street_b)
    clock.advance(hours=1)
    placed = {}
    for s in (street_b, street):  # the other street's first: its clock runs out first
        community = query(api_engine, "SELECT code FROM areas WHERE level = 'community' AND valid_to IS NULL "
                                      "AND parent_code = :s ORDER BY code LIMIT 1", s=s)[0][0]
        eid = report_by_phone(client, users, "food_drug_safety", _spots(api_engine, community)[0])["id"]
        _escalate(client, users["admin"], eid)
        clock.advance(minutes=1)
        assert _escalate(client, users["admin"], eid)["unit"] == bureau
        placed[s] = eid
    for who, s in ((users["operator"], street), (op_b, street_b)):
        r = client.get(f"/v1/units/{bureau}/inbox", params={"limit": 1}, headers=who["headers"])
        assert r.status_code == 200, r.text
        got = r.json()["events"]
        assert len(got) == 1 and got[0]["event"]["area"]["street"] == s, (s, got)
        everything = client.get(f"/v1/units/{bureau}/inbox", headers=who["headers"]).json()["events"]
        ids = {i["event"]["id"] for i in everything}
        assert placed[s] in ids and not ids & {v for k, v in placed.items() if k != s}
        assert {i["event"]["area"]["street"] for i in everything} == {s}
    # admins see both
    ids = {i["event"]["id"] for i in client.get(f"/v1/units/{bureau}/inbox",
                                                headers=users["admin"]["headers"]).json()["events"]}
    assert set(placed.values()) <= ids
