"""Team positions must be plausible: a fix outside the managed area (0,0; London) is refused with a 422
naming the field, and a jump faster than any road allows is flagged and not used for dispatch, until the
time since the team's last accepted fix makes it plausible."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import text

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import transformer
from gridmap.services import sample
from tests.api.conftest import query

pytestmark = [pytest.mark.db]


def _team_at(engine, code: str):
    return query(engine, "SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, position_at FROM teams WHERE code = :c",
                 c=code)[0]


@pytest.fixture
def two_teams(api_engine):
    """An on-duty team and the on-duty team farthest from it (a few km apart, both in the street)."""
    rows = query(api_engine, """
        SELECT a.code AS a, b.code AS b, ST_Distance(a.geom::geography, b.geom::geography) AS d
        FROM teams a JOIN teams b ON a.code < b.code
        WHERE a.status = 'available' AND b.status = 'available' ORDER BY d DESC LIMIT 1""")
    assert rows and rows[0].d > 2000, rows
    return rows[0].a, rows[0].b


@pytest.mark.parametrize(("lon", "lat", "where"), [(0.0, 0.0, "null island"), (-0.1276, 51.5072, "London"),
                                                    (120.9, 31.2, "Shanghai")])
def test_a_fix_outside_the_managed_area_is_refused(client, users, api_engine, field, lon, lat, where):
    before = _team_at(api_engine, "T001")
    r = client.put("/v1/teams/T001/position", json={"lon": lon, "lat": lat}, headers=users["admin"]["headers"])
    assert r.status_code == 422, (where, r.text)
    body = r.json()
    assert body["field"] == "lon/lat" and "outside the managed area" in body["message"] and body["fix"]
    r = client.post("/v1/teams/positions", headers=users["admin"]["headers"], json={"positions": [
        {"team": "T002", "lon": before.lon, "lat": before.lat}, {"team": "T001", "lon": lon, "lat": lat}]})
    assert r.status_code == 422 and r.json()["field"] == "positions[1].lon/lat", r.text
    assert _team_at(api_engine, "T001") == before  # nothing of the batch was stored


def test_a_swapped_fix_is_refused_with_the_right_order(client, users, api_engine, field):
    here = _team_at(api_engine, "T003")
    r = client.put("/v1/teams/T003/position", json={"lon": here.lat, "lat": here.lon},
                   headers=users["admin"]["headers"])
    assert r.status_code == 422
    assert "longitude first" in r.json()["fix"]


def test_an_implausible_jump_is_flagged_and_not_used(client, users, api_engine, app, clock, field, two_teams):
    a, b = two_teams
    start, far = _team_at(api_engine, a), _team_at(api_engine, b)
    idx = app.state.dispatcher.teams.index[a]
    x0, y0 = float(app.state.dispatcher.teams.x[idx]), float(app.state.dispatcher.teams.y[idx])
    now = clock.advance(seconds=20)
    r = client.put(f"/v1/teams/{a}/position", json={"lon": far.lon, "lat": far.lat, "at": now.isoformat()},
                   headers=users["admin"]["headers"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["updated"] == 0 and len(out["flagged"]) == 1
    flag = out["flagged"][0]
    assert flag["team"] == a and flag["index"] == 0 and flag["speed_kmh"] > 150 and flag["distance_m"] > 2000
    assert "km/h" in flag["reason"]
    # neither the stored position nor the dispatch index moved
    assert _team_at(api_engine, a) == start
    assert (float(app.state.dispatcher.teams.x[idx]), float(app.state.dispatcher.teams.y[idx])) == (x0, y0)

    # a plausible fix next to the last accepted one is taken (in a batch, beside a glitch of the same team)
    t2 = clock.advance(seconds=20)
    near = {"team": a, "lon": start.lon + 0.0003, "lat": start.lat, "at": t2.isoformat()}
    glitch = {"team": a, "lon": far.lon, "lat": far.lat, "at": (t2 - dt.timedelta(seconds=5)).isoformat()}
    r = client.post("/v1/teams/positions", json={"positions": [glitch, near]}, headers=users["admin"]["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 1 and [f["index"] for f in r.json()["flagged"]] == [0]
    assert abs(_team_at(api_engine, a).lon - near["lon"]) < 1e-9

    # long enough after the last accepted fix, the far position is plausible: the team is not stuck
    t3 = clock.advance(minutes=10)
    r = client.put(f"/v1/teams/{a}/position", json={"lon": far.lon, "lat": far.lat, "at": t3.isoformat()},
                   headers=users["admin"]["headers"])
    assert r.json() == {"received": 1, "updated": 1, "flagged": []}


def test_the_fix_accuracy_widens_what_counts_as_a_jump(client, users, api_engine, clock, field, two_teams):
    a, _ = two_teams
    here = _team_at(api_engine, a)
    t = transformer("EPSG:4326", MEASURE_CRS)
    x, y = t.transform(here.lon, here.lat)
    lon, lat = transformer(MEASURE_CRS, "EPSG:4326").transform(x + 300.0, y)  # 300 m east
    now = clock.advance(seconds=5)  # 300 m in 5 s: 216 km/h ...
    body = {"lon": lon, "lat": lat, "at": now.isoformat()}
    r = client.put(f"/v1/teams/{a}/position", json={**body, "accuracy_m": 400.0}, headers=users["admin"]["headers"])
    assert r.status_code == 200 and r.json()["flagged"] == [] and r.json()["updated"] == 1, r.text  # ... or noise
    back = {"lon": here.lon, "lat": here.lat, "at": clock.advance(seconds=5).isoformat()}
    r = client.put(f"/v1/teams/{a}/position", json=back, headers=users["admin"]["headers"])
    assert len(r.json()["flagged"]) == 1  # the same 300 m, from a precise fix: a jump
    r = client.put(f"/v1/teams/{a}/position", json={**back, "accuracy_m": -1}, headers=users["admin"]["headers"])
    assert r.status_code == 422


def test_refreshing_the_live_state_makes_recommend_pick_teams(client, users, api_engine, clock, street):
    """An hour without reports: every team is stale and nobody is picked; the sample's refresh brings the
    on-duty teams to now, and the running app's index follows (the database announces each new position)."""
    now = clock.advance(hours=1)
    with api_engine.begin() as conn:  # as loaded: nobody busy (the sample's teams are on or off duty)
        conn.execute(text("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')"))
        conn.execute(text("UPDATE teams t SET status = b.status FROM testkit.teams b WHERE b.id = t.id"))
    p = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat "
                          "FROM buildings ORDER BY code OFFSET 2500 LIMIT 1")[0]
    params = {"lon": p.lon, "lat": p.lat, "k": 5}
    headers = users["operator"]["headers"]
    deadline = time.monotonic() + 15
    while True:  # the status reset above reaches the app's cache through LISTEN/NOTIFY
        r = client.get("/v1/dispatch/recommend", params=params, headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["picked"] == [] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.json()["picked"] == []
    assert any("stale" in " ".join(c["reasons"]) for c in r.json()["passed_over"])

    result = sample.refresh_live_state(api_engine, now)
    assert result.stamped > 0
    deadline = time.monotonic() + 15
    while True:
        picked = client.get("/v1/dispatch/recommend", params=params, headers=headers).json()["picked"]
        if len(picked) == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(picked) == 5
    assert all(c["eta_s"] is not None for c in picked)
