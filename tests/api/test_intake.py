"""Intake through HTTP: every channel's way of saying where, placement in the grid valid at report time,
idempotency, near-duplicates, and 4xx errors that name the field and the fix and write nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
import shapely
from sqlalchemy import text

from gridmap.core.crs import wgs84_to_gcj02
from gridmap.services.registry import Registry
from tests.api.conftest import query

pytestmark = [pytest.mark.db]
_ids = itertools.count(1)


def xid(prefix: str = "IN") -> str:
    return f"{prefix}-{next(_ids):05d}"


@pytest.fixture(scope="module")
def spots(api_engine):
    """Buildings in different grids (a point on each), with a business inside where there is one."""
    rows = query(api_engine, """
        SELECT DISTINCT ON (b.grid_code) b.code, b.address, b.grid_code, b.community_code,
               ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat,
               (SELECT s.code FROM businesses s WHERE s.building_id = b.id ORDER BY s.code LIMIT 1) AS business
        FROM buildings b WHERE b.grid_code IS NOT NULL ORDER BY b.grid_code, b.code""")
    return [r._asdict() for r in rows]


def count_events(engine) -> tuple[int, int, int]:
    return query(engine, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_transitions), "
                         "(SELECT count(*) FROM event_reporters)")[0]


def post(client, headers, **body):
    body.setdefault("external_id", xid())
    return client.post("/v1/events", json=body, headers=headers)


def test_wgs84_report_is_placed_in_its_grid_community_and_street(client, users, spots, street, api_engine, field):
    s = spots[10]
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="environment",
             location={"lon": s["lon"], "lat": s["lat"]}, title="垃圾未及时清运",
             reporter={"name": "王小明", "phone": "13812345678"})
    assert r.status_code == 201, r.text
    ev = r.json()["event"]
    assert ev["area"] == {"street": street, "community": s["community_code"], "grid": s["grid_code"],
                          "grid_area_id": ev["area"]["grid_area_id"]}
    (grid_id,) = query(api_engine, "SELECT id FROM areas WHERE code = :c AND valid_to IS NULL", c=s["grid_code"])[0]
    assert ev["area"]["grid_area_id"] == grid_id
    assert ev["location"]["source"] == "wgs84" and ev["reported_at"].startswith(field.date().isoformat())
    assert ev["reporter"] is None  # not even the intake client reads personal data back
    assert ev["escalation"]["rung"] == 0 and ev["escalation"]["due_at"] is not None
    (name, phone), = query(api_engine, "SELECT name, phone FROM event_reporters WHERE event_id = :e", e=ev["id"])
    assert (name, phone) == ("王小明", "13812345678")  # kept apart, in event_reporters


def test_gcj02_coordinates_are_converted_to_wgs84(client, users, spots, field):
    s = spots[11]
    glon, glat = (float(v) for v in wgs84_to_gcj02(s["lon"], s["lat"]))
    assert abs(glon - s["lon"]) > 1e-3  # the offset is hundreds of metres: getting it wrong misplaces the event
    r = post(client, users["intake"]["headers"], channel="chat_group", category="parking",
             location={"lon": glon, "lat": glat, "coords": "gcj02"})
    assert r.status_code == 201, r.text
    loc = r.json()["event"]["location"]
    assert loc["source"] == "gcj02"
    assert loc["lon"] == pytest.approx(s["lon"], abs=1e-7) and loc["lat"] == pytest.approx(s["lat"], abs=1e-7)
    assert r.json()["event"]["area"]["grid"] == s["grid_code"]


def test_qr_code_scan_fills_in_the_place_and_its_location(client, users, spots, api_engine, field):
    s = next(x for x in spots[12:] if x["business"])
    place = client.get(f"/v1/places/{s['business']}", headers=users["intake"]["headers"])
    assert place.status_code == 200 and place.json()["kind"] == "business"
    r = post(client, users["intake"]["headers"], channel="qr_code", category="consumer_dispute",
             location={"place_code": s["business"]})
    assert r.status_code == 201, r.text
    ev = r.json()["event"]
    (lon, lat, addr), = query(api_engine, "SELECT ST_X(geom), ST_Y(geom), address FROM businesses WHERE code = :c",
                              c=s["business"])
    assert (ev["location"]["lon"], ev["location"]["lat"]) == pytest.approx((lon, lat))
    assert ev["location"]["place_code"] == s["business"] and ev["location"]["address"] == addr
    assert ev["location"]["building_code"] == s["code"]
    assert ev["area"] == place.json()["area"]
    # a QR report without its code is refused
    r = post(client, users["intake"]["headers"], channel="qr_code", category="parking",
             location={"lon": s["lon"], "lat": s["lat"]})
    assert r.status_code == 422 and r.json()["field"] == "location.place_code"


def test_building_code_and_address_locate_the_event(client, users, spots, field):
    s = spots[13]
    by_code = post(client, users["intake"]["headers"], channel="smart_alarm", category="fire_hazard",
                   location={"building_code": s["code"]})
    by_addr = post(client, users["operator"]["headers"], channel="hotline_12345", category="road_facility",
                   location={"address": s["address"]})
    for r, source in ((by_code, "building"), (by_addr, "address")):
        assert r.status_code == 201, r.text
        ev = r.json()["event"]
        assert ev["location"]["source"] == source and ev["location"]["building_code"] == s["code"]
        assert ev["area"]["grid"] == s["grid_code"]
    unknown = post(client, users["intake"]["headers"], channel="smart_alarm", category="fire_hazard",
                   location={"building_code": "B999999"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "location.building_code"


def test_the_grid_version_valid_at_report_time_is_used(client, users, spots, api_engine, api_settings, field):
    s = spots[14]
    reg = Registry(api_engine, api_settings)
    grid = reg.layer("grids").set_index("code").geometry[s["grid_code"]]
    old_id = query(api_engine, "SELECT id FROM areas WHERE code = :c AND valid_to IS NULL", c=s["grid_code"])[0][0]
    redrawn_at = field - dt.timedelta(minutes=30)
    new_id = reg.redraw(s["grid_code"], shapely.buffer(grid, 0.00001), redrawn_at)
    try:
        before = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking",
                      location={"lon": s["lon"], "lat": s["lat"]},
                      reported_at=(redrawn_at - dt.timedelta(minutes=10)).isoformat(), dispatch=False)
        after = post(client, users["intake"]["headers"], channel="hotline_12345", category="environment",
                     location={"lon": s["lon"], "lat": s["lat"]}, dispatch=False)
        assert before.status_code == after.status_code == 201
        assert before.json()["event"]["area"]["grid_area_id"] == old_id
        assert after.json()["event"]["area"]["grid_area_id"] == new_id
    finally:
        with api_engine.begin() as conn:
            conn.execute(text("UPDATE events SET grid_area_id = :o WHERE grid_area_id = :n"), {"o": old_id, "n": new_id})
            conn.execute(text("DELETE FROM areas WHERE id = :n"), {"n": new_id})
            conn.execute(text("UPDATE areas SET valid_to = NULL WHERE id = :o"), {"o": old_id})


def test_the_same_channel_and_external_id_give_the_same_event(client, users, spots, api_engine, field):
    s = spots[15]
    body = {"channel": "hotline_12345", "external_id": "HZ12345-20261102-0042", "category": "neighbour_dispute",
            "location": {"lon": s["lon"], "lat": s["lat"]}, "title": "楼上漏水纠纷"}
    first = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    again = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["created"] and not again.json()["created"]
    assert again.json()["event"]["id"] == first.json()["event"]["id"]
    assert again.json()["dispatch"] is None  # not dispatched twice
    other_channel = client.post("/v1/events", json=body | {"channel": "chat_group"}, headers=users["intake"]["headers"])
    assert other_channel.status_code == 201 and other_channel.json()["event"]["id"] != first.json()["event"]["id"]
    changed = client.post("/v1/events", json=body | {"title": "别的事"}, headers=users["intake"]["headers"])
    assert changed.status_code == 409 and changed.json()["field"] == "external_id"
    n = query(api_engine, "SELECT count(*) FROM events WHERE external_id = :x", x=body["external_id"])[0][0]
    assert n == 2  # one per channel
    n = query(api_engine, "SELECT count(*) FROM assignments a JOIN events e ON e.id = a.event_id "
                          "WHERE e.external_id = :x AND e.channel = 'hotline_12345'", x=body["external_id"])[0][0]
    assert n == 1


def test_concurrent_retries_of_one_report_make_one_event(client, users, spots, api_engine, field):
    s = spots[16]
    body = {"channel": "smart_alarm", "external_id": "SA-RACE-1", "category": "fire_hazard",
            "location": {"building_code": s["code"]}, "dispatch": False}
    codes, barrier = [], threading.Barrier(6)

    def send():
        barrier.wait()
        codes.append(client.post("/v1/events", json=body, headers=users["intake"]["headers"]).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200] * 5 + [201]
    assert query(api_engine, "SELECT count(*) FROM events WHERE external_id = 'SA-RACE-1'")[0][0] == 1


def test_near_duplicates_are_linked_not_dispatched_twice(client, users, spots, api_engine, clock, field):
    s = spots[17]
    h = users["intake"]["headers"]
    first = post(client, h, channel="hotline_12345", category="environment", location={"lon": s["lon"], "lat": s["lat"]})
    assert first.status_code == 201 and first.json()["dispatch"]["team"] is not None
    clock.advance(minutes=5)
    near = post(client, h, channel="chat_group", category="environment",
                location={"lon": s["lon"] + 0.0003, "lat": s["lat"]})  # ~29 m east
    other_category = post(client, h, channel="chat_group", category="parking",
                          location={"lon": s["lon"] + 0.0003, "lat": s["lat"]})
    f = next(x for x in spots if 0.004 < abs(x["lon"] - s["lon"]) + abs(x["lat"] - s["lat"]) < 0.01)
    far = post(client, h, channel="chat_group", category="environment",
               location={"lon": f["lon"], "lat": f["lat"]})  # a few hundred metres away
    master = first.json()["event"]
    dup = near.json()
    assert near.status_code == 201 and dup["duplicate"]["id"] == master["id"] and dup["dispatch"] is None
    assert dup["event"]["duplicate_of"] == {"id": master["id"], "code": master["code"]}
    assert 20 < dup["duplicate"]["distance_m"] < 40 and dup["duplicate"]["minutes_apart"] == 5.0
    assert other_category.json()["duplicate"] is None and far.json()["duplicate"] is None
    assert query(api_engine, "SELECT count(*) FROM assignments WHERE event_id = :e", e=dup["event"]["id"])[0][0] == 0
    hist = client.get(f"/v1/events/{dup['event']['id']}/history", headers=users["operator"]["headers"]).json()
    assert [h["action"] for h in hist] == ["report", "link_duplicate"]
    # too late to be the same thing: 31 minutes after the first report
    clock.advance(minutes=26)
    late = post(client, h, channel="chat_group", category="environment", location={"lon": s["lon"], "lat": s["lat"]})
    assert late.json()["duplicate"] is None


@pytest.mark.parametrize("location, field_name, words", [
    ({"lon": 30.27, "lat": 120.1}, "location.lon/lat", "lat/lon swapped"),
    ({"lon": 116.40, "lat": 39.90}, "location.lon/lat", "outside the configured area"),
    ({"lon": 120.5, "lat": 30.0}, "location", "falls in no grid"),
    ({"lon": 13_360_000.0, "lat": 3_540_000.0}, "location.lon/lat", "not degrees"),
    ({"lon": 120.1}, "location", "no location"),
    ({"lon": "east", "lat": 30.2}, "location.lon", "valid number"),
    ({"lon": 120.1, "lat": 30.27, "coords": "bd09"}, "location.coords", "wgs84"),
])
def test_bad_locations_are_refused_naming_the_field_and_the_fix(client, users, api_engine, location, field_name, words):
    before = count_events(api_engine)
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking", location=location)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field_name and words in body["message"] + " " + (body["fix"] or ""), body
    assert body["fix"]
    assert count_events(api_engine) == before


def test_swapped_coordinates_say_how_to_fix_them(client, users, spots):
    s = spots[18]
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking",
             location={"lon": s["lat"], "lat": s["lon"]})
    assert r.status_code == 422
    assert f"lon={s['lon']}" in r.json()["fix"] and f"lat={s['lat']}" in r.json()["fix"]


def test_unknown_category_future_time_and_wrong_channel_are_refused(client, users, spots, api_engine, clock):
    s = spots[19]
    before = count_events(api_engine)
    loc = {"lon": s["lon"], "lat": s["lat"]}
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="ufo_sighting", location=loc)
    assert r.status_code == 422 and r.json()["field"] == "category" and "neighbour_dispute" in r.json()["fix"]
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking", location=loc,
             reported_at=(clock() + dt.timedelta(hours=2)).isoformat())
    assert r.status_code == 422 and r.json()["field"] == "reported_at"
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking", location=loc,
             reported_at="2026-11-02T09:00:00")
    assert r.status_code == 422 and "time zone" in r.json()["message"]
    r = post(client, users["gridworker"]["headers"], channel="hotline_12345", category="parking", location=loc)
    assert r.status_code == 403 and r.json()["field"] == "channel" and "patrol" in r.json()["fix"]
    r = post(client, users["planner"]["headers"], channel="patrol", category="parking", location=loc)
    assert r.status_code == 403
    r = post(client, users["intake"]["headers"], channel="hotline_12345", category="parking", location=loc,
             colour="red")
    assert r.status_code == 422 and r.json()["field"] == "colour"
    assert count_events(api_engine) == before


def test_oversize_bodies_are_refused_before_anything_is_written(client, users, spots, api_engine, api_settings):
    s = spots[20]
    before = count_events(api_engine)
    body = {"channel": "hotline_12345", "external_id": xid(), "category": "parking",
            "location": {"lon": s["lon"], "lat": s["lat"]}, "description": "x" * (api_settings.max_body_bytes + 10)}
    r = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert r.status_code == 413 and r.json()["field"] == "body" and "split" in r.json()["fix"]

    def chunks():  # no Content-Length: the limit holds while reading
        yield b'{"channel": "hotline_12345", "description": "'
        for _ in range(30):
            yield b"y" * 10_000
        yield b'"}'

    r = client.post("/v1/events", content=chunks(), headers=users["intake"]["headers"] | {
        "Content-Type": "application/json"})
    assert r.status_code == 413
    long_text = body | {"description": "z" * 4001}
    r = client.post("/v1/events", json=long_text, headers=users["intake"]["headers"])
    assert r.status_code == 422 and r.json()["field"] == "description" and "4000" in r.json()["fix"]
    assert count_events(api_engine) == before
