"""The field app and the resident's page against their own copy of the sample street: the real app served by
uvicorn on a free loopback port, and Debian's Chromium with a phone's viewport, touch, geolocation and offline
mode. One server and one browser per session of these tests.

The field is made simple on purpose: one volunteer team (its own member signs in on the phone) is the only team
on duty, so every event posted near it is offered to it. Every page goes through the request guard of the
dashboard's tests: a request to anything but the app fails the test.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.services import auth
from gridmap.services.registry import Registry
from tests.dashboard.conftest import Guard
from tests.servers import free_port, served

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "field-app"
ARTIFACTS = ROOT / "artifacts" / "field"
PASSWORD = "a field test passphrase"
PHONE = {"width": 390, "height": 844}


def jpeg(color: str = "orange", size: tuple[int, int] = (640, 480), exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw: dict[str, Any] = {"quality": 80}
    if exif is not None:
        kw["exif"] = exif
    Image.new("RGB", size, color).save(buf, "JPEG", **kw)
    return buf.getvalue()


def shot(page: Page, name: str) -> None:
    """A screenshot for docs/field-app.md (a small palette PNG) and the artifacts folder, taken only when
    ``GRIDMAP_SCREENSHOTS=1`` (to refresh the docs): a test run leaves the tracked files alone, and Chromium's
    occasional "Unable to capture screenshot" on a loaded machine cannot fail a behaviour test."""
    if os.environ.get("GRIDMAP_SCREENSHOTS") != "1":
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = page.screenshot(timeout=90_000)  # a loaded 2-core machine can take long to settle fonts
    (ARTIFACTS / f"{name}.png").write_bytes(raw)
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    img = img.resize((img.width * 2 // 3, img.height * 2 // 3), Image.Resampling.LANCZOS).quantize(64)
    img.save(SHOTS / f"{name}.png", optimize=True)


@pytest.fixture(scope="session")
def field_db(sample_street_db) -> Iterator[types.SimpleNamespace]:
    """The sample street with one volunteer team on duty (the team whose member is the phone's user)."""
    engine: Engine = sample_street_db("field", pool_size=10, max_overflow=10)
    with engine.begin() as conn:
        team, member, lon, lat, grid = conn.execute(text(
            "SELECT t.code, m.code, ST_X(t.geom), ST_Y(t.geom), t.home_grid_code FROM teams t "
            "JOIN team_members m ON m.team_id = t.id WHERE t.kind = 'volunteer' AND 'elderly_care' = ANY(t.skills) "
            "AND t.geom IS NOT NULL ORDER BY t.code, m.code LIMIT 1")).one()
        conn.execute(text("UPDATE teams SET status = CASE WHEN code = :t THEN 'available' ELSE 'off_duty' END"),
                     {"t": team})
        street = conn.execute(text("SELECT c.parent_code FROM areas g JOIN areas c ON c.code = g.parent_code "
                                   "WHERE g.code = :g AND g.valid_to IS NULL AND c.valid_to IS NULL"),
                              {"g": grid}).scalar_one()
        community = conn.execute(text("SELECT parent_code FROM areas WHERE code = :g AND valid_to IS NULL"),
                                 {"g": grid}).scalar_one()
        place = conn.execute(text(
            "SELECT s.code FROM businesses s ORDER BY ST_Distance(s.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
            "LIMIT 1"), {"x": lon, "y": lat}).scalar_one()
    users = {}
    with Session(engine) as s:
        for role, extra in (("admin", {}), ("operator", {"street_code": street}), ("planner", {}), ("intake", {}),
                            ("volunteer", {"member_code": member})):
            name = f"field_{role}"
            auth.create_user(s, username=name, password=PASSWORD, role=role, **extra)
            users[role] = name
    yield types.SimpleNamespace(engine=engine, team=team, member=member, lon=lon, lat=lat, street=street,
                                community=community, place=place, users=users)
    engine.dispose()


@pytest.fixture(scope="session")
def field_server(field_db, settings) -> Iterator[str]:
    port = free_port()
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0,
                                      "argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1,
                                      "public_url": f"http://127.0.0.1:{port}", "qr_reports_per_address": 1000})
    app = create_app(cfg, registry=Registry(field_db.engine, cfg))
    with served(app, port=port):
        field_db.app = app
        yield f"http://127.0.0.1:{port}"


class Api:
    """The API as each user: bearer headers by role."""

    def __init__(self, base: str, users: dict[str, str]) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=30)
        self.headers: dict[str, dict[str, str]] = {}
        for role, name in users.items():
            r = self.client.post("/v1/auth/token", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def __call__(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, url, headers={**self.headers.get(who, {}), **kw.pop("headers", {})}, **kw)


@pytest.fixture(scope="session")
def api(field_server, field_db) -> Iterator[Api]:
    a = Api(field_server, field_db.users)
    yield a
    a.client.close()  # before the server stops: a pooled connection left to the garbage collector is an error


def phone_context(browser: Browser, base: str, lon: float, lat: float) -> BrowserContext:
    """A Pixel-class phone (390 x 844, touch, mobile) at (lon, lat) with the service worker allowed."""
    dev = dict(browser.devices["Pixel 7"])  # type: ignore[attr-defined]
    dev["viewport"] = PHONE
    dev.pop("default_browser_type", None)
    ctx = browser.new_context(**dev, geolocation={"longitude": lon, "latitude": lat, "accuracy": 12},
                              permissions=["geolocation", "notifications"], service_workers="allow", locale="zh-CN")
    guard = Guard(base)
    ctx.route("**/*", guard)
    ctx.guard = guard  # type: ignore[attr-defined]
    return ctx


def watch(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def real_errors(errors: list[str]) -> list[str]:
    """Console errors other than the browser's own notes on requests refused on purpose (offline, 401, 409)."""
    return [e for e in errors if not re.search(r"ERR_INTERNET_DISCONNECTED|Failed to load resource", e)]


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/field/")
    page.wait_for_selector("#login-form", timeout=20_000)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_function("() => window.gridmapField && window.gridmapField.state.ready", timeout=30_000)


def query(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())
