"""The dashboard's HTTP endpoints and service on the whole sample street (no browser): tiles, per-viewport
layers, drill-down, figures, bounded sizes, compression, and no personal data anywhere."""

from __future__ import annotations

import datetime as dt
import gzip
import math

import httpx
import pytest
from sqlalchemy import text

from gridmap.errors import InvalidInput
from gridmap.services.dashboard import Dashboard, DashboardPolicy

pytestmark = [pytest.mark.db, pytest.mark.slow]


def tile_range(bbox, z):
    def tx(lon):
        return int((lon + 180) / 360 * 2**z)

    def ty(lat):
        r = math.radians(lat)
        return int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * 2**z)

    return range(tx(bbox[0]), tx(bbox[2]) + 1), range(ty(bbox[3]), ty(bbox[1]) + 1)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def q(at: dt.datetime) -> dict:
    return {"at": at.isoformat()}


def test_every_building_is_in_exactly_one_tile_with_its_counts(client, dash_engine):
    dash = Dashboard(dash_engine)
    xs, ys = tile_range(dash.extent(), 13)
    seen: dict[str, dict] = {}
    for x in xs:
        for y in ys:
            r = client.get(f"/dashboard/tiles/buildings/13/{x}/{y}.json")
            assert r.status_code == 200
            for f in r.json()["features"]:
                assert f["properties"]["code"] not in seen  # never twice
                seen[f["properties"]["code"]] = f["properties"]
    with dash_engine.connect() as conn:
        truth = dict(conn.execute(text(
            "SELECT b.code, count(r.id) FROM buildings b LEFT JOIN residents r ON r.building_id = b.id GROUP BY 1")).all())
    assert set(seen) == set(truth) and len(seen) == 8966
    assert all(seen[c]["residents"] == n for c, n in truth.items())
    assert sum(p["residents"] for p in seen.values()) == 260_000
    assert set(next(iter(seen.values()))) == {"code", "address", "floors", "height", "use", "residents", "businesses"}


def test_tiles_and_bboxes_are_checked(client):
    r = client.get("/dashboard/tiles/buildings/5/1/1.json")
    assert r.status_code == 422 and r.json()["field"] == "z"
    r = client.get("/dashboard/tiles/buildings/13/99999/1.json")
    assert r.status_code == 422 and r.json()["field"] == "x/y"
    r = client.get("/dashboard/api/equipment.json", params={"bbox": "30.27,120.09,30.28,120.10"})
    assert r.status_code == 422 and "swapped" in r.json()["message"]
    r = client.get("/dashboard/api/teams.json", params={"bbox": "1,2,3"})
    assert r.status_code == 422 and r.json()["field"] == "bbox"
    r = client.get("/dashboard/api/summary", params={"at": "2026-10-31T12:00:00"})
    assert r.status_code == 422 and r.json()["field"] == "at"


def test_viewport_layers_are_filtered_and_bounded(client, dash_engine, sample_now):
    box = (120.09, 30.27, 120.10, 30.28)
    r = client.get("/dashboard/api/equipment.json", params={"bbox": ",".join(map(str, box))})
    got = r.json()
    with dash_engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM fire_equipment WHERE geom && ST_MakeEnvelope(:a,:b,:c,:d,4326)"),
                         dict(zip("abcd", box, strict=True))).scalar_one()
    assert len(got) == n > 0
    assert all(box[0] <= e["position"][0] <= box[2] and box[1] <= e["position"][1] <= box[3] for e in got)
    small = Dashboard(dash_engine, DashboardPolicy(max_equipment=10))
    assert len(small.equipment()) == 10


def test_team_state_uses_the_clock(client, dash_engine, sample_now):
    later = sample_now + dt.timedelta(hours=1)
    now_states = {t["code"]: t["state"] for t in client.get("/dashboard/api/teams.json", params=q(sample_now)).json()}
    later_states = {t["code"]: t["state"] for t in client.get("/dashboard/api/teams.json", params=q(later)).json()}
    with dash_engine.connect() as conn:
        rows = conn.execute(text("SELECT code, status, position_at FROM teams WHERE geom IS NOT NULL")).all()
    for code, status, at in rows:
        fresh = (sample_now - at).total_seconds() <= 300
        assert now_states[code] == (status if fresh or status == "off_duty" else "stale"), code
        assert later_states[code] == ("off_duty" if status == "off_duty" else "stale")
    assert "available" in now_states.values() and "stale" in now_states.values()


def test_grids_carry_open_events_and_a_safety_index(client, dash_engine, sample_now):
    fc = client.get("/dashboard/api/grids.json", params=q(sample_now)).json()
    props = [f["properties"] for f in fc["features"]]
    assert len(props) == 149
    assert all(0 <= p["safety_index"] <= 100 for p in props)
    assert len({p["safety_index"] for p in props}) > 10
    with dash_engine.connect() as conn:
        n_open = conn.execute(text("SELECT count(*) FROM events WHERE status IN ('reported','dispatched','accepted',"
                                   "'on_site') AND reported_at <= :t AND grid_code IS NOT NULL"),
                              {"t": sample_now}).scalar_one()
    assert sum(p["open_events"] for p in props) == n_open


def test_summary_figures_match_sql(client, dash_engine, sample_now):
    s = client.get("/dashboard/api/summary", params=q(sample_now)).json()
    day = sample_now.replace(hour=0, minute=0, second=0, microsecond=0)
    with dash_engine.connect() as conn:
        n_open, median = conn.execute(text("""
            SELECT count(*) FILTER (WHERE status IN ('reported','dispatched','accepted','on_site')),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - reported_at))
                     FILTER (WHERE reported_at >= :day AND on_site_at <= :t)
            FROM events WHERE reported_at <= :t"""), {"t": sample_now, "day": day}).one()
    f = s["figures"]
    assert f["open_events"] == n_open == len(s["events"])
    assert f["median_response_s_today"] == pytest.approx(median)
    assert 0 < f["closure_rate"] < 1
    ov = [e["overdue"] for e in s["events"]]
    assert ov == sorted(ov, reverse=True) and any(ov)  # overdue first


def test_building_detail_has_counts_and_no_personal_data(client, dash_engine, sample_now):
    with dash_engine.connect() as conn:
        code, n_res, n_biz = conn.execute(text("""
            SELECT b.code, (SELECT count(*) FROM residents r WHERE r.building_id = b.id),
                   (SELECT count(*) FROM businesses z WHERE z.building_id = b.id) AS nb
            FROM buildings b WHERE EXISTS (SELECT 1 FROM residents r WHERE r.building_id = b.id)
            ORDER BY nb DESC, b.id LIMIT 1""")).one()
        pii = conn.execute(text("SELECT p.name, p.id_card, p.phone FROM resident_pii p JOIN residents r "
                                "ON r.id = p.resident_id JOIN buildings b ON b.id = r.building_id "
                                "WHERE b.code = :c"), {"c": code}).all()
    r = client.get(f"/dashboard/api/buildings/{code}", params=q(sample_now))
    b = r.json()
    assert b["residents"] == n_res and b["businesses_total"] == n_biz > 0
    n = b["nearest_responder"]
    assert n["kind"] in ("micro_fire_station", "micro_fire_truck") and n["status"] == "in_service"
    assert n["eta_s"] > 0 and len(n["path"]) >= 2
    body = r.text
    for _name, id_card, phone in pii:
        assert id_card not in body and (phone is None or phone not in body)
    assert not any(k in body for k in ('"id_card"', '"phone"', '"name":"' + pii[0][0]))
    assert client.get("/dashboard/api/buildings/NOPE").status_code == 404


def test_event_and_team_drilldown(client, dash_engine, dispatched, sample_now):
    e = client.get(f"/dashboard/api/events/{dispatched['event_id']}", params=q(sample_now)).json()
    assert e["team"] == dispatched["team"] and e["status"] == "dispatched"
    assert e["assignment"]["status"] == "offered" and e["assignment"]["eta_s"] > 0
    assert len(e["assignment"]["path"]) >= 2
    assert [t["what"] for t in e["timeline"]][:2] == ["reported", "dispatched"]
    t = client.get(f"/dashboard/api/teams/{dispatched['team']}", params=q(sample_now)).json()
    assert t["assignment"]["event_id"] == dispatched["event_id"] and t["state"] == "assigned"
    routes = client.get("/dashboard/api/routes.json").json()
    with dash_engine.connect() as conn:
        active = {r[0] for r in conn.execute(text("SELECT event_id FROM assignments WHERE status IN "
                                                   "('offered', 'accepted') AND route IS NOT NULL"))}
    assert {r["event_id"] for r in routes} == active and dispatched["event_id"] in active


def test_responses_are_compressed_and_the_deck_is_offline(client, server):
    r = client.get("/dashboard/api/grids.json", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and int(r.headers["content-length"]) < len(r.content) / 3
    raw = httpx.get(server + "/dashboard/api/grids.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.json() == r.json()
    b = client.get("/dashboard/static/deckgl-0.9.3.js", headers={"Accept-Encoding": "gzip"})
    assert b.status_code == 200 and "createDeck" in b.text and b.headers["cache-control"].startswith("public")
    assert len(gzip.compress(b.content)) > 500_000  # the real bundle, not a stub
    deck = client.get("/dashboard/deck.json").json()
    assert deck.get("mapProvider") is None and deck.get("mapStyle") is None
    assert [layer["id"] for layer in deck["layers"]] == ["grids", "boundaries", "buildings", "equipment", "routes",
                                                         "teams", "events", "selection"]
    urls = [layer["data"] for layer in deck["layers"] if isinstance(layer["data"], str)]
    assert len(urls) == 7 and all(u.startswith("/dashboard/") for u in urls)
    page = client.get("/dashboard").text
    assert "http://" not in page and "https://" not in page
    assert client.get("/dashboard/static/../app.py").status_code == 404


def test_service_rejects_a_naive_clock(dash_engine):
    with pytest.raises(InvalidInput, match="time zone"):
        Dashboard(dash_engine).summary(dt.datetime(2026, 10, 31, 12))
