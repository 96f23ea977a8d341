"""Dispatch advice over HTTP: the ranking for a point (nothing assigned) and batch road ETAs, with roles."""

from __future__ import annotations

import numpy as np
import pytest

from gridmap.core.crs import wgs84_to_gcj02
from tests.api.conftest import query

pytestmark = [pytest.mark.db]


def spot(api_engine, n=1):
    """Points on buildings of the sample street (inside a grid)."""
    rows = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings "
                             "ORDER BY code LIMIT :n", n=n)
    return [(float(x), float(y)) for x, y in rows]


def test_recommend_ranks_by_road_with_reasons_and_assigns_nothing(client, users, field, api_engine, app):
    (lon, lat), = spot(api_engine)
    before = query(api_engine, "SELECT count(*) FROM assignments")[0][0]
    r = client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat, "category": "fire_hazard",
                                                     "at": field.isoformat()}, headers=users["operator"]["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["street"] and body["grid"] and body["skills"] == ["fire"]
    assert body["search"] in ("dijkstra", "hierarchy")
    picked = body["picked"]
    assert 1 <= len(picked) <= 5 and [c["rank"] for c in picked] == list(range(1, len(picked) + 1))
    assert [c["eta_s"] for c in picked] == sorted(c["eta_s"] for c in picked)
    top = picked[0]
    assert top["method"] == "road" and top["reasons"] and len(top["route"]) >= 2
    assert abs(top["route"][-1][0] - lon) < 0.01 and abs(top["route"][-1][1] - lat) < 0.01  # ends at the spot
    # the same answer as the dispatcher itself gives, and for fire the equipment comes along
    rec = app.state.dispatcher.recommend(lon, lat, category="fire_hazard", grid=body["grid"], now=field)
    assert [(c["team"], c["eta_s"]) for c in picked] == [(c["team"], c["eta_s"]) for c in rec.picked]
    assert body["equipment"]["responders"] and body["equipment"]["hydrants"]
    assert query(api_engine, "SELECT count(*) FROM assignments")[0][0] == before  # advice only


def test_recommend_takes_gcj02_and_refuses_bad_points(client, users, field, api_engine):
    (lon, lat), = spot(api_engine)
    h = users["admin"]["headers"]
    glon, glat = wgs84_to_gcj02(lon, lat)
    a = client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat, "at": field.isoformat()}, headers=h).json()
    b = client.get("/v1/dispatch/recommend", params={"lon": float(glon), "lat": float(glat), "coords": "gcj02",
                                                     "at": field.isoformat()}, headers=h).json()
    assert abs(a["lon"] - b["lon"]) < 1e-5 and abs(a["lat"] - b["lat"]) < 1e-5
    assert [c["team"] for c in a["picked"]] == [c["team"] for c in b["picked"]]
    swapped = client.get("/v1/dispatch/recommend", params={"lon": lat, "lat": lon}, headers=h)
    assert swapped.status_code == 422 and "swapped" in swapped.json()["message"]
    assert swapped.json()["field"] == "location.lon/lat"
    far = client.get("/v1/dispatch/recommend", params={"lon": 110.0, "lat": 25.0}, headers=h)
    assert far.status_code == 422 and "outside the configured area" in far.json()["message"]
    cat = client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat, "category": "nonsense"}, headers=h)
    assert cat.status_code == 422 and cat.json()["field"] == "category"


def test_recommend_is_for_operators_and_admins(client, users, api_engine):
    (lon, lat), = spot(api_engine)
    for who in ("planner", "intake", "gridworker"):
        r = client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat}, headers=users[who]["headers"])
        assert r.status_code == 403, who
    assert client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat}).status_code == 401


def test_an_operator_of_another_street_gets_no_advice_here(client, users, api_engine):
    (lon, lat), = spot(api_engine)
    other = query(api_engine, "SELECT code FROM areas WHERE level = 'district' ORDER BY code LIMIT 1")[0][0] + "999"
    with api_engine.begin() as conn:
        from sqlalchemy import text
        conn.execute(text("INSERT INTO areas (code, level, name, parent_code, valid_from, geom) "
                          "SELECT :c, 'street', 'another street', parent_code, valid_from, "
                          "ST_Multi(ST_Translate(geom, 0.5, 0.5)) FROM areas WHERE level = 'street' "
                          "ON CONFLICT DO NOTHING"), {"c": other})
    r = client.post("/v1/users", json={"username": "op-elsewhere", "password": "correct horse battery staple",
                                       "role": "operator", "street_code": other}, headers=users["admin"]["headers"])
    assert r.status_code in (201, 409), r.text
    from tests.api.conftest import login
    op = login(client, "op-elsewhere")
    r = client.get("/v1/dispatch/recommend", params={"lon": lon, "lat": lat}, headers=op["headers"])
    assert r.status_code == 403 and r.json()["field"] == "street"


def test_batch_eta_equals_the_dispatchers_many_to_one_and_names_bad_points(client, users, field, api_engine, app):
    pts = spot(api_engine, 300)
    r = client.post("/v1/dispatch/eta", json={"kind": "micro_fire_station", "points": [list(p) for p in pts],
                                              "at": field.isoformat()}, headers=users["planner"]["headers"])
    assert r.status_code == 200, r.text
    got = r.json()["eta_s"]
    assert len(got) == 300 and all(v is None or v >= 0 for v in got)
    want = app.state.dispatcher.eta_to_nearest(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]),
                                               kind="micro_fire_station", now=field)
    assert np.allclose([np.inf if v is None else v for v in got], np.round(want, 1), atol=0.051)
    assert sum(v is not None and v <= 180 for v in got) > 100  # most of the street is within 3 minutes
    # teams by skill work too, and an unknown kind or a bad point is named
    r = client.post("/v1/dispatch/eta", json={"kind": "fire", "points": [list(pts[0])], "at": field.isoformat()},
                    headers=users["operator"]["headers"])
    assert r.status_code == 200 and len(r.json()["eta_s"]) == 1
    r = client.post("/v1/dispatch/eta", json={"kind": "unicorn", "points": [list(pts[0])]},
                    headers=users["planner"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == "kind"
    r = client.post("/v1/dispatch/eta", json={"kind": "hydrant", "points": [list(pts[0]), [pts[1][1], pts[1][0]]]},
                    headers=users["planner"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == "points[1]" and "swapped" in r.json()["message"]
    r = client.post("/v1/dispatch/eta", json={"kind": "hydrant", "points": [list(pts[0])]},
                    headers=users["gridworker"]["headers"])
    assert r.status_code == 403
