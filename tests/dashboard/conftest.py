"""The dashboard against the whole sample street: its own PostGIS database, the real app served by uvicorn
on a free loopback port, and a real headless Chromium (Debian's package) with software WebGL.

Every page a test opens goes through a request guard: a request to anything but the app fails the test.
Screenshots are written to ``artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from gridmap.services import sample
from gridmap.services.dispatch import Dispatcher
from gridmap.services.registry import Registry
from gridmap.storage import migrate
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine

DASH_DB = "gridmap_test_dashboard_sample"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-default-apps", "--disable-extensions"]
VIEWPORT = {"width": 1400, "height": 850}


@pytest.fixture(scope="session")
def dash_engine(settings, db_url):
    cluster = cluster_for(settings)
    with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DASH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DASH_DB}"')
    engine = make_engine(database_url(settings, dbname=DASH_DB))
    migrate.upgrade(engine)
    assert sample.load_sample_street(engine, settings=settings).loaded
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sample_now(dash_engine):
    """The sample's 'now': its latest event or team position (its events end on the generation day)."""
    with dash_engine.connect() as conn:
        return conn.execute(text("SELECT GREATEST((SELECT max(reported_at) FROM events), "
                                 "(SELECT max(position_at) FROM teams))")).scalar_one()


def new_event(engine, code: str, lon: float, lat: float, at, *, category: str = "public_security",
              severity: int = 3) -> int:
    """A reported event at (lon, lat), placed in its grid (what intake does; the events API is issue 4)."""
    with engine.begin() as conn:
        return conn.execute(text("""
            INSERT INTO events (code, channel, category, severity, title, reported_at, street_code, community_code,
                                grid_code, grid_area_id, geom)
            SELECT :code, 'patrol', :category, :severity, 'dashboard test ' || :code, :at, c.parent_code,
                   g.parent_code, g.code, g.id, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
            FROM areas g JOIN areas c ON c.code = g.parent_code AND c.valid_to IS NULL
            WHERE g.level = 'grid' AND g.valid_to IS NULL AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
            RETURNING id"""), {"code": code, "category": category, "severity": severity, "at": at,
                                "lon": lon, "lat": lat}).scalar_one()


@pytest.fixture(scope="session")
def dispatched(dash_engine, sample_now):
    """One event dispatched before the page opens, so that the routes layer has a route to draw."""
    with dash_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM buildings ORDER BY id "
            "OFFSET 4000 LIMIT 1) s")).one()
    eid = new_event(dash_engine, "TEST-DASH-ROUTE", lon, lat, sample_now)
    result = Dispatcher.from_database(dash_engine, now=sample_now).dispatch(eid, now=sample_now)
    assert result.assignment_id is not None, result.message
    return {"event_id": eid, "team": result.team, "assignment_id": result.assignment_id}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(dash_engine, settings, dispatched):
    """The real app (create_app) served by uvicorn in a thread; yields its base URL."""
    port = _free_port()
    # a strong throw-away signing key (the app refuses to start without one); no background escalation
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(dash_engine, cfg))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert th.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(10)


@pytest.fixture(scope="session")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Guard:
    """Every request the page makes: those to the app go through; anything else is refused and remembered."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.app: list[str] = []
        self.foreign: list[str] = []

    def __call__(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base + "/") or url.startswith("data:"):
            self.app.append(url)
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


@pytest.fixture
def page(browser, server, request):
    """A fresh browser context + page with the request guard; fails the test on any foreign request or
    page error, and leaves a screenshot named after the test."""
    ctx = browser.new_context(viewport=VIEWPORT, service_workers="block")
    guard = Guard(server)
    ctx.route("**/*", guard)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.guard = guard
    pg.errors = errors
    yield pg
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        ctx.close()
    assert guard.foreign == [], f"the page requested something outside the app: {guard.foreign[:5]}"
    assert errors == [], f"errors in the page: {errors[:5]}"


def open_dashboard(pg, server: str, at, timeout_ms: int = 90_000, extra: str = "") -> None:
    """Open the page at the sample's clock and wait until every layer has drawn."""
    q = at.isoformat().replace("+", "%2B")
    pg.goto(f"{server}/dashboard?at={q}{extra}")
    pg.wait_for_function("window.gridmap && window.gridmap.ready()", timeout=timeout_ms)
