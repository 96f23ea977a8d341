"""Operators write only inside their street: an event reported in another street is refused, and the
escalation sweep an operator runs touches only the offers and events of their own street (admins and the
background sweeper: every street)."""

from __future__ import annotations

import itertools

import pytest

from tests.api.conftest import PASSWORD, login, query

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def other_operator(client, users, street_b):
    """An operator of the sample's second street (330106901, the south-east corner, same district)."""
    r = client.post("/v1/users", json={"username": "operator-other", "password": PASSWORD, "role": "operator",
                                       "street_code": street_b}, headers=users["admin"]["headers"])
    assert r.status_code == 201, r.text
    return login(client, "operator-other")


@pytest.fixture(scope="module")
def spot(api_engine, street):
    """A building of the first street."""
    r = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat "
                          "FROM buildings WHERE community_code LIKE :s || '%' ORDER BY code OFFSET 4321 LIMIT 1",
              s=street)[0]
    return {"lon": r.lon, "lat": r.lat}


def _report(client, headers, loc, **kw):
    body = {"channel": "hotline_12345", "external_id": f"SCOPE-{next(_ids):04d}", "category": "neighbour_dispute",
            "location": loc, **kw}
    return client.post("/v1/events", json=body, headers=headers), body["external_id"]


def test_an_operator_cannot_report_an_event_in_another_street(client, users, other_operator, spot, street,
                                                              street_b, api_engine):
    r, ext = _report(client, other_operator["headers"], spot)
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["field"] == "location"
    assert street in body["message"] and street_b in body["message"]
    assert query(api_engine, "SELECT count(*) FROM events WHERE external_id = :x", x=ext)[0][0] == 0
    # the street's own operator may
    r, _ = _report(client, users["operator"]["headers"], spot, dispatch=False)
    assert r.status_code == 201, r.text


def test_an_operators_sweep_covers_only_their_street(client, users, other_operator, spot, clock, field,
                                                     api_engine):
    # an overdue event (neighbour disputes: 240 min on rung 0, escalated automatically) and an offer nobody
    # answers, both in the sample street
    r, _ = _report(client, users["intake"]["headers"], spot, dispatch=False)
    overdue_id = r.json()["event"]["id"]
    r, _ = _report(client, users["intake"]["headers"], {"lon": spot["lon"] + 0.004, "lat": spot["lat"]},
                   category="parking")
    assert r.status_code == 201 and r.json()["dispatch"]["assignment_id"], r.text
    offer_id = r.json()["dispatch"]["assignment_id"]
    clock.advance(minutes=241)

    other = client.post("/v1/escalation/sweep", headers=other_operator["headers"])
    assert other.status_code == 200, other.text
    out = other.json()
    assert out["timeouts"] == [] and out["escalated"] == [] and out["offered"] == []
    assert out["overdue"] == 0
    assert query(api_engine, "SELECT status FROM assignments WHERE id = :a", a=offer_id)[0][0] == "offered"
    assert query(api_engine, "SELECT escalation_rung FROM events WHERE id = :e", e=overdue_id)[0][0] == 0

    own = client.post("/v1/escalation/sweep", headers=users["operator"]["headers"]).json()
    assert query(api_engine, "SELECT status FROM assignments WHERE id = :a", a=offer_id)[0][0] == "timeout"
    assert overdue_id in [e["event_id"] for e in own["escalated"]]


def test_planners_and_teams_do_not_sweep(client, users):
    r = client.post("/v1/escalation/sweep", headers=users["planner"]["headers"])
    assert r.status_code == 403 and r.json()["field"] == "role"
