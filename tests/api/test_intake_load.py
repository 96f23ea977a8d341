"""Intake under load: near-duplicate reports that arrive at the same moment are still linked to one master
(the per-area locks of :func:`gridmap.storage.events.dedup_cells`) while reports elsewhere do not wait; the start-up
work is done before the first request (the connection pool open and warm); a report's fingerprint is the
one earlier versions stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import random
import threading

import pytest
from pyproj import Geod

from gridmap.services.events import Location, Report
from gridmap.storage import events as events_sql
from gridmap.storage.db import make_engine, open_pool
from tests.api.conftest import query
from tests.api.test_intake import spots  # noqa: F401 - the module fixture

CELL = events_sql.DEDUP_CELL_DEG


def _cell(lon: float, lat: float) -> str:
    return events_sql.dedup_cells(lon, lat, 0.0)[0]


@pytest.mark.parametrize("lat0", [30.27, 45.0, 60.0, -33.9])
def test_two_points_closer_than_the_radius_always_share_a_lock_cell(lat0):
    geod = Geod(ellps="WGS84")
    rng = random.Random(int(lat0 * 100))
    for radius in (30.0, 100.0, 400.0):
        for _ in range(2000):
            lon, lat = 120.0 + rng.uniform(-0.05, 0.05), lat0 + rng.uniform(-0.05, 0.05)
            lon2, lat2, _ = geod.fwd(lon, lat, rng.uniform(0, 360), radius * rng.uniform(0.9, 1.0))
            assert _cell(lon2, lat2) in events_sql.dedup_cells(lon, lat, radius), (lon, lat, lon2, lat2, radius)
    # and the squares stay small: at most 2 x 2 cells when the diameter is under a cell
    assert len(events_sql.dedup_cells(120.0 + CELL / 2, 30.0 + CELL / 2, 100.0)) == 1
    assert len(events_sql.dedup_cells(120.0, 30.0, 100.0)) == 4


def test_concurrent_near_duplicates_across_a_lock_cell_border_link_to_one_master(client, users, spots, api_engine,  # noqa: F811
                                                                                   field):
    s = min(spots, key=lambda x: abs(x["lon"] / CELL - round(x["lon"] / CELL)))  # the spot nearest a cell border
    border = round(s["lon"] / CELL) * CELL
    points = [(border + side * 0.00025, s["lat"]) for side in (-1, 1)]  # ~48 m apart, one in each cell
    assert _cell(*points[0]) != _cell(*points[1])
    n, barrier, answers = 8, threading.Barrier(8), []

    def send(i: int) -> None:
        lon, lat = points[i % 2]
        body = {"channel": "chat_group", "external_id": f"RACE-DUP-{i}", "category": "road_facility",
                "location": {"lon": lon, "lat": lat}}
        barrier.wait()
        answers.append(client.post("/v1/events", json=body, headers=users["intake"]["headers"]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in answers] == [201] * n, [r.text for r in answers]
    bodies = [r.json() for r in answers]
    masters = [b for b in bodies if b["duplicate"] is None]
    assert len(masters) == 1, [b["duplicate"] for b in bodies]
    master = masters[0]["event"]
    assert all(b["duplicate"]["id"] == master["id"] for b in bodies if b is not masters[0])
    rows = query(api_engine, "SELECT e.external_id, e.duplicate_of, count(a.id) FROM events e "
                             "LEFT JOIN assignments a ON a.event_id = e.id WHERE e.external_id LIKE 'RACE-DUP-%' "
                             "GROUP BY 1, 2")
    assert len(rows) == n
    assert sum(c for _, _, c in rows) == (1 if masters[0]["dispatch"]["team"] else 0)  # dispatched once at most
    assert all(d == master["id"] for x, d, _ in rows if x != master["external_id"])


def test_only_reports_that_could_be_near_duplicates_wait_for_each_other(api_engine, spots):  # noqa: F811
    """An open intake transaction holds the near-duplicate locks of its category around its place. A report
    of that category a few hundred metres away does not wait for it (one lock per category would make it);
    one 48 m away across a lock-cell border does (and gives up after ``lock_timeout`` here)."""
    s = min(spots, key=lambda x: abs(x["lon"] / CELL - round(x["lon"] / CELL)))
    border = round(s["lon"] / CELL) * CELL
    left, right = (border - 0.00025, s["lat"]), (border + 0.00025, s["lat"])
    far = next((x["lon"], x["lat"]) for x in spots if math.dist((x["lon"], x["lat"]), left) > 3 * CELL)
    at = query(api_engine, "SELECT now()")[0][0]

    def context(conn, lon, lat, category="parking"):
        return events_sql.intake_context(conn, channel="patrol", external_id="LOCK-TEST", category=category,
                                         lon=lon, lat=lat, at=at, dedup_radius_m=100.0)

    with api_engine.connect() as c1, api_engine.connect() as c2:
        assert context(c1, *left)["grid_code"] is not None
        c2.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        assert context(c2, *far)["grid_code"] is not None  # another place: no wait
        assert context(c2, *right, category="fire_hazard")["grid_code"] is not None  # another category: no wait
        with pytest.raises(Exception, match="lock timeout"):
            context(c2, *right)
        c1.rollback()
        c2.rollback()


def test_open_pool_opens_and_warms_the_pool(api_engine):
    engine = make_engine(api_engine.url.render_as_string(hide_password=False), pool_size=3, max_overflow=0)
    try:
        assert engine.pool.checkedin() == 0
        assert open_pool(engine, warm=events_sql.warm) == 3
        assert engine.pool.checkedin() == 3
        with engine.connect() as conn:  # a warmed connection is clean: no transaction left open
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                        "AND pid = pg_backend_pid()").scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("report", [
    Report("hotline_12345", "HZ-1", "parking", Location(lon=120.09, lat=30.26)),
    Report("qr_code", "QR-7", "fire_hazard", Location(place_code="S000123", coords="wgs84"), severity=3,
           title="消防通道堵塞", description="楼道", reported_at=dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC),
           reporter_name="王小明", reporter_phone="13812345678", dispatch=False),
])
def test_the_fingerprint_is_the_one_stored_for_earlier_reports(report):
    d = dataclasses.asdict(report)  # how the first version of intake built it
    d.pop("dispatch")
    d.pop("answered")  # (the first version had no ``answered``: a report without it hashes as before)
    d["reported_at"] = report.reported_at.isoformat() if report.reported_at else None
    want = hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert report.fingerprint() == want
    assert dataclasses.replace(report, dispatch=not report.dispatch).fingerprint() == want
    assert dataclasses.replace(report, title="other").fingerprint() != want
    assert dataclasses.replace(report, answered="已当场答复").fingerprint() != want
