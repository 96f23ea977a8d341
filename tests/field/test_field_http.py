"""The field app's and the QR page's HTTP routes, in-process (Starlette's TestClient runs the app's lifespan) on
their own copy of the sample street, with a settable clock: device sessions, the context and the map, answers
made idempotent, photos (type, size, EXIF, who sees them), positions' accuracy and flagged fixes, the resident's
report, receipt and throttle, the notifier of unanswered offers, and the QR sheet (decoded back)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.app import create_app
from gridmap.services import auth
from gridmap.services.photos import _gps_exif
from gridmap.services.qr import sheet, write_sheet
from gridmap.services.registry import Registry
from tests.api.conftest import START, Clock
from tests.field.conftest import PASSWORD, jpeg

pytestmark = [pytest.mark.db]


class World:
    def __init__(self, client: TestClient, engine: Any, clock: Clock, app: Any, team: str, lon: float, lat: float,
                 street: str, community: str, place: str) -> None:
        self.client, self.engine, self.clock, self.app = client, engine, clock, app
        self.team, self.lon, self.lat, self.street, self.community, self.place = team, lon, lat, street, community, place
        self.h: dict[str, dict[str, str]] = {}
        self.n = 0

    def sql(self, q: str, **kw: Any) -> list[Any]:
        with self.engine.begin() as conn:
            r = conn.execute(text(q), kw)
            return list(r.all()) if r.returns_rows else []

    def fresh(self) -> None:
        """An hour later, no open assignment, the team available at its spot (now)."""
        now = self.clock.advance(hours=1)
        self.sql("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')")
        self.sql("UPDATE teams SET status = CASE WHEN code = :t THEN 'available' ELSE 'off_duty' END", t=self.team)
        self.app.state.dispatcher.rebuild(now)
        r = self.client.post("/v1/teams/positions", headers=self.h["admin"], json={"positions": [
            {"team": self.team, "lon": self.lon, "lat": self.lat, "at": now.isoformat()}]})
        assert r.status_code == 200, r.text

    def offer(self) -> tuple[int, int]:
        self.fresh()
        self.n += 1
        r = self.client.post("/v1/events", headers=self.h["admin"], json={
            "channel": "hotline_12345", "external_id": f"FH-{self.n}-{uuid.uuid4().hex[:6]}", "category": "elderly_care",
            "location": {"lon": self.lon + 0.0003, "lat": self.lat}, "reporter": {"name": "钱七", "phone": "13900001111"}})
        assert r.status_code == 201 and r.json()["dispatch"]["team"] == self.team, r.text
        return r.json()["event"]["id"], r.json()["dispatch"]["assignment_id"]

    def post(self, who: str, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.h[who], **kw.pop("headers", {})}, **kw)

    def get(self, who: str, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers={**self.h.get(who, {}), **kw.pop("headers", {})}, **kw)


@pytest.fixture(scope="module")
def w(sample_street_db, settings) -> Iterator[World]:
    engine = sample_street_db("field_http", pool_size=10, max_overflow=10)
    with engine.begin() as conn:
        team, member, lon, lat, grid = conn.execute(text(
            "SELECT t.code, m.code, ST_X(t.geom), ST_Y(t.geom), t.home_grid_code FROM teams t "
            "JOIN team_members m ON m.team_id = t.id WHERE t.kind = 'volunteer' AND 'elderly_care' = ANY(t.skills) "
            "AND t.geom IS NOT NULL ORDER BY t.code, m.code LIMIT 1")).one()
        street, community = conn.execute(text(
            "SELECT c.parent_code, c.code FROM areas g JOIN areas c ON c.code = g.parent_code WHERE g.code = :g "
            "AND g.valid_to IS NULL AND c.valid_to IS NULL"), {"g": grid}).one()
        place = conn.execute(text("SELECT code FROM businesses ORDER BY code LIMIT 1")).scalar_one()
    clock = Clock(START)
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0, "token_ttl_s": 30 * 86400,
                                      "argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1,
                                      "qr_reports_per_device": 3, "qr_reports_per_address": 6})
    app = create_app(cfg, Registry(engine, cfg), clock=clock)
    with TestClient(app) as client:
        world = World(client, engine, clock, app, team, lon, lat, street, community, place)
        with Session(engine) as s:
            for role, extra in (("admin", {}), ("operator", {"street_code": street}), ("planner", {}),
                                ("volunteer", {"member_code": member})):
                auth.create_user(s, username=f"fh_{role}", password=PASSWORD, role=role, **extra)
        for role in ("admin", "operator", "planner"):
            r = client.post("/v1/auth/token", json={"username": f"fh_{role}", "password": PASSWORD})
            world.h[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post("/v1/field/session", json={"username": "fh_volunteer", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["team"] == team, r.text
        world.h["volunteer"] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield world
    engine.dispose()


# -- sessions, context, map -----------------------------------------------------------------------------------
def test_device_session_is_for_team_roles_only_and_ends_like_any_other(w):
    kinds = w.sql("SELECT s.kind FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'fh_volunteer'")
    assert ("device",) in kinds
    r = w.client.post("/v1/field/session", json={"username": "fh_planner", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["field"] == "role"
    open_device = w.sql("SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = "
                        "'fh_planner' AND s.kind = 'device' AND s.revoked_at IS NULL")
    assert open_device[0][0] == 0  # the refused login keeps no session
    # a second device session ends on logout, and every one on deactivation
    tok = w.client.post("/v1/field/session", json={"username": "fh_volunteer", "password": PASSWORD}).json()
    h = {"Authorization": f"Bearer {tok['access_token']}"}
    assert w.client.get("/v1/field/context", headers=h).status_code == 200
    assert w.client.post("/v1/auth/logout", headers=h).status_code == 200
    assert w.client.get("/v1/field/context", headers=h).status_code == 401
    assert w.client.post("/v1/field/session", json={"username": "fh_volunteer", "password": "wrong"}).status_code == 401


def test_a_device_session_ends_on_deactivation_and_on_a_change_of_role(w):
    member = w.sql("SELECT member_code FROM users WHERE username = 'fh_volunteer'")[0][0]
    for name, change in (("fh_dev_off", {"active": False}), ("fh_dev_role", {"role": "grid_worker"})):
        with Session(w.engine) as s:
            auth.create_user(s, username=name, password=PASSWORD, role="volunteer", member_code=member)
        tok = w.client.post("/v1/field/session", json={"username": name, "password": PASSWORD})
        assert tok.status_code == 200, tok.text
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        assert w.client.get("/v1/field/context", headers=h).status_code == 200
        r = w.client.patch(f"/v1/users/{name}", headers=w.h["admin"], json=change)
        assert r.status_code == 200, r.text
        assert w.client.get("/v1/field/context", headers=h).status_code == 401, change


def test_context_and_map(w):
    ctx = w.get("volunteer", "/v1/field/context").json()
    assert ctx["team"]["code"] == w.team and ctx["street"] == w.street and ctx["position_every_s"] == 30
    assert "elderly_care" in ctx["categories"] and ctx["ladders"]["elderly_care"][0]["time_limit_min"] > 0
    assert "background" in ctx["notice"]
    r = w.get("volunteer", "/v1/field/map", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["etag"].strip('"') == ctx["map"]["version"]
    fc = r.json()
    kinds = {f["properties"]["k"] for f in fc["features"]}
    assert kinds == {"r", "b"}
    assert max(len(str(c).split(".")[-1]) for f in fc["features"][:50] for c in f["geometry"]["coordinates"][0]) <= 5
    again = w.get("volunteer", "/v1/field/map", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert w.get("planner", "/v1/field/map").status_code == 403


# -- answers, idempotent ---------------------------------------------------------------------------------------
def test_an_answer_with_an_idempotency_key_is_applied_once_and_answered_the_same(w):
    eid, aid = w.offer()
    key = str(uuid.uuid4())
    first = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={"note": "on my way"},
                   headers={"Idempotency-Key": key})
    second = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={"note": "on my way"},
                    headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() and second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert w.sql("SELECT count(*) FROM event_transitions WHERE event_id = :e AND action = 'accept'", e=eid)[0][0] == 1
    other = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={"note": "something else"},
                   headers={"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    assert w.post("volunteer", f"/v1/assignments/{aid}/arrive", json={},
                  headers={"Idempotency-Key": "short"}).status_code == 422
    # without a key the old behaviour: a second accept is a conflict
    assert w.post("volunteer", f"/v1/assignments/{aid}/accept", json={"note": "on my way"}).status_code == 409


def test_a_refused_answer_is_stored_and_refused_again_with_the_same_reason(w):
    eid, aid = w.offer()
    assert w.post("admin", f"/v1/assignments/{aid}/decline", json={"note": "reassigned"}).status_code == 200
    key = str(uuid.uuid4())
    first = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={}, headers={"Idempotency-Key": key})
    again = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json() and "declined" in first.json()["message"]
    assert again.headers.get("idempotent-replayed") == "true"


def test_an_action_whose_answer_was_lost_after_it_applied_is_not_applied_again(w):
    """A claim marked applied but never answered (the process died in between): the retry answers the state."""
    eid, aid = w.offer()
    key = str(uuid.uuid4())
    r = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={}, headers={"Idempotency-Key": key})
    assert r.status_code == 200
    w.sql("UPDATE idempotency_keys SET completed_at = NULL, status_code = NULL, response = NULL, "
          "created_at = created_at - interval '1 hour' WHERE key = :k", k=key)
    again = w.post("volunteer", f"/v1/assignments/{aid}/accept", json={}, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["assignment"]["status"] == "accepted"
    assert w.sql("SELECT count(*) FROM event_transitions WHERE event_id = :e AND action = 'accept'", e=eid)[0][0] == 1


# -- photos ----------------------------------------------------------------------------------------------------
def _exif(lon: float, lat: float, make: str = "SpyCam 3000") -> bytes:
    ex = Image.Exif()
    ex.load(_gps_exif(lon, lat))
    ex[0x010F] = make
    ex[0x0131] = "secret software"
    return ex.tobytes()


def test_photos_are_checked_reencoded_and_linked_to_the_resolve(w):
    eid, aid = w.offer()
    url = f"/v1/assignments/{aid}/photos"
    img = {"Content-Type": "image/jpeg"}
    inside = jpeg(exif=_exif(w.lon, w.lat))
    outside = jpeg("red", exif=_exif(121.5, 31.2))
    for body in (inside, outside):
        r = w.post("volunteer", url, content=body, headers={**img, "Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 200, r.text
    photos = w.sql("SELECT id, lon, lat, sha256, attached_at FROM event_photos WHERE assignment_id = :a ORDER BY id",
                   a=aid)
    assert photos[0][1] == pytest.approx(w.lon, abs=1e-5) and photos[1][1] is None  # kept inside the street only
    assert all(p[4] is None for p in photos)  # waiting for the resolve
    # bad type, a lie about the type, too big, not a team member
    gif = io.BytesIO()
    Image.new("P", (10, 10)).save(gif, "GIF")
    assert w.post("volunteer", url, content=gif.getvalue(), headers={"Content-Type": "image/gif"}).status_code == 422
    assert w.post("volunteer", url, content=b"%PDF-1.4 not a picture", headers=img).status_code == 422
    assert w.post("volunteer", url, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 422
    big = w.post("volunteer", url, content=b"\xff" * (8_000_001), headers=img)
    assert big.status_code == 413
    assert w.post("operator", url, content=inside, headers=img).status_code == 403
    for action in ("accept", "arrive", "resolve"):
        assert w.post("volunteer", f"/v1/assignments/{aid}/{action}", json={"note": "done"}).status_code == 200
    detail = w.sql("SELECT detail FROM event_transitions WHERE event_id = :e AND action = 'resolve'", e=eid)[0][0]
    assert [p["id"] for p in detail["photos"]] == [p[0] for p in photos]
    assert {p["sha256"] for p in detail["photos"]} == {p[3] for p in photos}
    assert all(p[0] == "resolve" for p in w.sql("SELECT action FROM event_photos WHERE assignment_id = :a", a=aid))
    # who sees them
    listed = w.get("operator", f"/v1/events/{eid}/photos")
    assert listed.status_code == 200 and len(listed.json()) == 2
    for who in ("planner", "volunteer"):
        assert w.get(who, f"/v1/events/{eid}/photos").status_code == 403
        assert w.get(who, f"/v1/photos/{photos[0][0]}").status_code == 403
    r = w.get("operator", f"/v1/photos/{photos[0][0]}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(r.content))
    exif = stored.getexif()
    assert 0x010F not in exif and 0x0131 not in exif  # camera and software gone
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)[2][0] == pytest.approx(int(w.lat))  # the position, kept
    assert Image.open(io.BytesIO(w.get("operator", f"/v1/photos/{photos[1][0]}").content)).getexif() == {}
    thumb = Image.open(io.BytesIO(w.get("admin", f"/v1/photos/{photos[0][0]}?thumb=true").content))
    assert max(thumb.size) <= 320
    logged = w.sql("SELECT count(*) FROM pii_access_log WHERE actor = 'fh_operator' AND table_name = 'event_photos'")
    assert logged[0][0] >= 2


def test_at_most_four_photos_wait_for_one_answer(w):
    _eid, aid = w.offer()
    for i in range(4):
        r = w.post("volunteer", f"/v1/assignments/{aid}/photos", content=jpeg(("red", "blue", "green", "gray")[i]),
                   headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
    fifth = w.post("volunteer", f"/v1/assignments/{aid}/photos", content=jpeg("white"),
                   headers={"Content-Type": "image/jpeg"})
    assert fifth.status_code == 409 and "at most 4" in fifth.json()["message"]


def test_a_photo_upload_retried_is_stored_once(w):
    _eid, aid = w.offer()
    key = str(uuid.uuid4())
    a = w.post("volunteer", f"/v1/assignments/{aid}/photos", content=jpeg("pink"),
               headers={"Content-Type": "image/jpeg", "Idempotency-Key": key})
    b = w.post("volunteer", f"/v1/assignments/{aid}/photos", content=jpeg("pink"),
               headers={"Content-Type": "image/jpeg", "Idempotency-Key": key})
    assert a.json() == b.json() and b.headers.get("idempotent-replayed") == "true"
    assert w.sql("SELECT count(*) FROM event_photos WHERE assignment_id = :a", a=aid)[0][0] == 1


# -- positions ---------------------------------------------------------------------------------------------
def test_positions_keep_their_accuracy_and_flagged_fixes_are_recorded(w):
    w.fresh()
    now = w.clock()
    r = w.post("volunteer", "/v1/teams/positions", json={"positions": [
        {"team": w.team, "lon": w.lon, "lat": w.lat, "at": (now + dt.timedelta(seconds=5)).isoformat(), "accuracy_m": 7.5},
        {"team": w.team, "lon": w.lon + 0.05, "lat": w.lat, "at": (now + dt.timedelta(seconds=10)).isoformat(),
         "accuracy_m": 20}]})
    assert r.status_code == 200 and len(r.json()["flagged"]) == 1
    acc = w.sql("SELECT position_accuracy_m FROM teams WHERE code = :t", t=w.team)[0][0]
    assert acc == pytest.approx(7.5)
    flags = w.sql("SELECT f.lon, f.accuracy_m, f.speed_kmh, f.reported_by FROM team_fix_flags f JOIN teams t "
                  "ON t.id = f.team_id WHERE t.code = :t", t=w.team)
    assert flags and flags[-1][0] == pytest.approx(w.lon + 0.05) and flags[-1][1] == 20 and flags[-1][2] > 150
    assert flags[-1][3] == "fh_volunteer"


# -- the resident's page ---------------------------------------------------------------------------------------
def _report(w: World, cookies: dict[str, str] | None = None, photo: bytes | None = None, **fields: str) -> Any:
    data = {"category": "elderly_care", "description": "门口有老人需要帮助", **fields}
    files = {"photo": ("p.jpg", photo, "image/jpeg")} if photo is not None else None
    w.client.cookies.clear()  # the device is the cookie jar (httpx deprecates per-request cookies)
    w.client.cookies.update(cookies or {})
    return w.client.post(f"/q/{w.place}/report", data=data, files=files)


def test_a_resident_reports_follows_the_receipt_and_not_fixed_reopens(w):
    w.fresh()
    w.sql("DELETE FROM report_throttle")
    page = w.client.get(f"/q/{w.place}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "gridmap_device" in page.cookies and "content-security-policy" in page.headers
    r = _report(w, cookies=dict(page.cookies), photo=jpeg(exif=_exif(w.lon, w.lat)), phone="13700002222")
    assert r.status_code == 201, r.text
    token = r.json()["receipt"].split("/")[-1]
    eid = w.sql("SELECT id FROM events WHERE code = :c", c=r.json()["event_code"])[0][0]
    assert w.sql("SELECT channel, place_code FROM events WHERE id = :e", e=eid) == [("qr_code", w.place)]
    assert w.sql("SELECT phone FROM event_reporters WHERE event_id = :e", e=eid) == [("13700002222",)]
    assert w.sql("SELECT source, lon FROM event_photos WHERE event_id = :e", e=eid) == [("resident", None)]
    status = w.client.get(f"/r/{token}/status").json()
    assert status["status"] == "dispatched" and not status["ask_fixed"]
    assert "13700002222" not in json.dumps(status) and w.team not in json.dumps(status)
    assert w.client.get(f"/r/{token}").status_code == 200
    assert w.client.get(f"/r/{'x' * 32}/status").status_code == 404
    assert w.client.post(f"/r/{token}/answer", json={"fixed": False}).status_code == 409  # not resolved yet
    aid = w.sql("SELECT id FROM assignments WHERE event_id = :e", e=eid)[0][0]
    for action in ("accept", "arrive", "resolve"):
        assert w.post("volunteer", f"/v1/assignments/{aid}/{action}", json={}).status_code == 200
    status = w.client.get(f"/r/{token}/status").json()
    assert status["status"] == "resolved" and status["ask_fixed"]
    out = w.client.post(f"/r/{token}/answer", json={"fixed": False})
    assert out.status_code == 200 and out.json()["reopened"]
    assert w.sql("SELECT status FROM events WHERE id = :e", e=eid)[0][0] == "dispatched"  # offered again
    assert w.sql("SELECT count(*) FROM assignments WHERE event_id = :e AND status = 'offered'", e=eid)[0][0] == 1
    reopen = w.sql("SELECT actor, actor_role FROM event_transitions WHERE event_id = :e AND action = 'reopen'", e=eid)
    assert reopen == [("resident (QR receipt)", "resident")]
    other = w.client.post(f"/q/{w.place}/report", data={"category": "elderly_care"},
                          headers={"Origin": "http://evil.example"})
    assert other.status_code == 403


def test_the_qr_page_is_throttled_per_device_and_per_address(w):
    w.sql("DELETE FROM report_throttle")
    w.clock.advance(hours=2)
    dev = {"gridmap_device": "d" * 24}
    codes = [_report(w, cookies=dev, description=f"report {i}").status_code for i in range(4)]
    assert codes[:3] == [201, 201, 201] and codes[3] == 429  # per device: 3
    r = _report(w, cookies=dev)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    codes = [_report(w, cookies={"gridmap_device": f"{i:024d}"}).status_code for i in range(3)]
    assert codes[-1] == 429  # per address: 6 in all (4 + 2 more got through, the 3rd not)
    w.clock.advance(hours=1, minutes=1)
    assert _report(w, cookies={"gridmap_device": "n" * 24}).status_code == 201  # a new window


def test_unanswered_offers_reach_the_notifier_once(w):
    _eid, aid = w.offer()
    chaser = w.app.state.chaser
    assert chaser.sweep() == 0  # not yet
    w.clock.advance(seconds=w.app.state.settings.notify_after_s + 1)
    assert chaser.sweep() >= 1 and chaser.sweep() == 0
    sent = [o for o, _phones in w.app.state.notifier.sent if o.assignment_id == aid]
    assert len(sent) == 1 and sent[0].team == w.team
    assert w.sql("SELECT channel, outcome FROM offer_notifications WHERE assignment_id = :a", a=aid)[0][0] == "log"


# -- the QR sheet ------------------------------------------------------------------------------------------
def test_the_qr_sheet_decodes_to_each_places_url(w, tmp_path: Path):
    sh = sheet(w.engine, w.community, "https://gridmap.example.cn", limit=24)
    assert sh.count == 24 and len(sh.pages) == 2
    decoded = sorted(r.text for page in sh.pages for r in zxingcpp.read_barcodes(page))
    assert decoded == sorted(sh.urls)
    assert all(u.startswith("https://gridmap.example.cn/q/") for u in decoded)
    pdf = write_sheet(sh, tmp_path / "sheet.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_gridmap_qr_sheet_cli(w, tmp_path: Path, monkeypatch):
    from gridmap import cli
    from gridmap.config import get_settings

    monkeypatch.setenv("GRIDMAP_DATABASE_URL", w.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GRIDMAP_PUBLIC_URL", "http://10.0.0.1:8000")
    get_settings.cache_clear()
    try:
        out = tmp_path / "codes.png"
        r = CliRunner().invoke(cli.app, ["qr", "sheet", "--community", w.community, "--out", str(out)])
        assert r.exit_code == 0, r.output
        first = zxingcpp.read_barcodes(Image.open(out))
        assert first and all(b.text.startswith("http://10.0.0.1:8000/q/") for b in first)
        bad = CliRunner().invoke(cli.app, ["qr", "sheet", "--community", "nope", "--out", str(out)])
        assert bad.exit_code == 1 and "no current community" in bad.output
    finally:
        get_settings.cache_clear()


def test_gzip_map_is_the_same_data(w):
    a = w.get("volunteer", "/v1/field/map", headers={"Accept-Encoding": "identity"})
    assert a.headers.get("content-encoding") is None
    assert json.loads(a.content)["type"] == "FeatureCollection"
    assert len(gzip.compress(a.content)) < len(a.content) / 4
