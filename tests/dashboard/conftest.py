"""The dashboard against the whole sample street: its own PostGIS database, the real app served by uvicorn
on a free loopback port, and a real headless Chromium (Debian's package) with software WebGL.

Every page a test opens goes through a request guard: a request to anything but the app fails the test.
Screenshots are written to ``artifacts/dashboard/`` (git-ignored). The screen needs a login: one user per
role is created in the dashboard's database (``dash_users``); ``open_dashboard`` logs in through the form.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import types
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.services import auth
from gridmap.services.dispatch import Dispatcher
from gridmap.services.registry import Registry
from tests.servers import served

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-default-apps", "--disable-extensions"]
VIEWPORT = {"width": 1400, "height": 850}
COOKIE_NAME = "gridmap_dashboard"


@pytest.fixture(scope="session")
def dash_engine(sample_street_db):
    engine = sample_street_db("dashboard")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sample_now(dash_engine):
    """The sample's 'now': its latest event or team position (its events end on the generation day)."""
    with dash_engine.connect() as conn:
        return conn.execute(text("SELECT GREATEST((SELECT max(reported_at) FROM events), "
                                 "(SELECT max(position_at) FROM teams))")).scalar_one()


def make_users(engine, prefix: str = "dash", street: str | None = None) -> dict[str, dict]:
    """One user per role (random passwords) in the database of ``engine``: ``{role: {username, password}}``.
    The operator gets ``street`` (default: the most populous street); the team roles real team members."""
    with engine.connect() as conn:
        if street is None:
            street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                       "ORDER BY population DESC NULLS LAST, code LIMIT 1")).scalar_one()
        worker = conn.execute(text("SELECT m.code FROM grid_staff s JOIN team_members m ON m.id = s.member_id "
                                   "WHERE m.team_id IS NOT NULL ORDER BY m.code LIMIT 1")).scalar_one()
        volunteer = conn.execute(text("SELECT code FROM team_members WHERE team_id IS NOT NULL AND role IN "
                                      "('volunteer', 'party_volunteer') ORDER BY code LIMIT 1")).scalar_one()
    users = {}
    with Session(engine) as session:
        for role, extra in (("admin", {}), ("operator", {"street_code": street}), ("planner", {}),
                            ("volunteer", {"member_code": volunteer}), ("grid_worker", {"member_code": worker}),
                            ("intake", {})):
            name, password = f"{prefix}_{role}", secrets.token_urlsafe(16)
            auth.create_user(session, username=name, password=password, role=role, **extra)
            users[role] = {"username": name, "password": password, "street": extra.get("street_code")}
    return users


@pytest.fixture(scope="session")
def dash_users(dash_engine) -> dict[str, dict]:
    return make_users(dash_engine)


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


@pytest.fixture(scope="session")
def server(dash_engine, settings, dispatched):
    """The real app (create_app) served by uvicorn in a thread; yields its base URL."""
    # a strong throw-away signing key (the app refuses to start without one); no background escalation
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(dash_engine, cfg))
    with served(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def browser(browser):
    """The session's one Chromium (tests/conftest.py), with the screenshots' folder ready."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return browser


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
    pg.allowed_errors = []  # regexes of console errors a test provokes on purpose (e.g. the browser's "401")
    yield pg
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        ctx.close()
    assert guard.foreign == [], f"the page requested something outside the app: {guard.foreign[:5]}"
    errors = [e for e in errors if not any(re.search(p, e) for p in pg.allowed_errors)]
    assert errors == [], f"errors in the page: {errors[:5]}"


DATA_PATHS = ("/dashboard/api/", "/dashboard/tiles/", "/dashboard/deck.json")


def data_requests(guard: Guard) -> list[str]:
    """The requests of a page to the dashboard's data endpoints (not the page, its assets or the login)."""
    return [u for u in guard.app if any(p in u for p in DATA_PATHS)]


def log_in(pg, user: dict, password: str | None = None, *, succeeds: bool = True) -> None:
    """Fill the login form on the current page and submit it; when it ``succeeds``, wait for the page that
    it opens (the map)."""
    pg.wait_for_selector("#gm-login", timeout=20_000)
    pg.fill("#gm-username", user["username"])
    pg.fill("#gm-password", password if password is not None else user["password"])
    if succeeds:
        with pg.expect_navigation(timeout=30_000):
            pg.click("#gm-login-submit")
    else:
        pg.click("#gm-login-submit")


def open_dashboard(pg, server: str, at, user: dict, timeout_ms: int = 90_000, extra: str = "") -> None:
    """Open the page at the sample's clock, log in through the form, and wait until every layer has drawn."""
    q = at.isoformat().replace("+", "%2B")
    pg.goto(f"{server}/dashboard?at={q}{extra}")
    log_in(pg, user)
    pg.wait_for_function("() => window.gridmap && window.gridmap.ready()", timeout=timeout_ms)


# -- a second street, for role scoping ------------------------------------------------------------------------
# (not 330106901: the sample has that second street of its own since issue 14)
OTHER = {"street": "330106997", "community": "330106997001", "grid": "330106997001001", "building": "OTHER-B1",
         "team": "OTHER-T1", "equipment": "OTHER-H1", "event": "OTHER-E1"}


class Clock:
    """The app's clock, movable (to expire sessions): the wall clock plus ``offset``."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture(scope="session")
def scope_db(sample_street_db):
    """A copy of the sample street plus a small second street to its east (its own community, grid, building,
    team, hydrant and open event): what an operator of either street must and must not see."""
    engine = sample_street_db("dashboard_scope")
    with engine.begin() as conn:
        now = conn.execute(text("SELECT GREATEST((SELECT max(reported_at) FROM events), "
                                "(SELECT max(position_at) FROM teams))")).scalar_one()
        x1, y0 = conn.execute(text("SELECT ST_XMax(e), ST_YMin(e) FROM (SELECT ST_Extent(geom) e FROM areas "
                                   "WHERE level = 'street' AND valid_to IS NULL) s")).one()
        box = {"x0": x1 + 0.01, "y0": y0, "x1": x1 + 0.03, "y1": y0 + 0.02}
        for level, code, parent in (("street", OTHER["street"], "330106"), ("community", OTHER["community"],
                                    OTHER["street"]), ("grid", OTHER["grid"], OTHER["community"])):
            conn.execute(text("INSERT INTO areas (code, level, name, name_zh, parent_code, population, geom) "
                              "VALUES (:c, :l, 'Other ' || :l, '别的' || :l, :p, 10, "
                              "ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"),
                         {"c": code, "l": level, "p": parent} | box)
        lon, lat = box["x0"] + 0.01, box["y0"] + 0.01
        pt = {"lon": lon, "lat": lat, "now": now}
        conn.execute(text(
            "INSERT INTO buildings (code, address, floors, use, community_code, grid_code, geom) VALUES "
            "(:code, '别的街道 1号', 4, 'residential', :c, :g, ST_Multi(ST_MakeEnvelope(:lon - 0.0002, :lat - 0.0002, "
            ":lon + 0.0002, :lat + 0.0002, 4326)))"),
            pt | {"code": OTHER["building"], "c": OTHER["community"], "g": OTHER["grid"]})
        conn.execute(text(
            "INSERT INTO teams (code, name, kind, home_grid_code, status, position_at, geom) VALUES "
            "(:code, 'other street patrol', 'grid_patrol', :g, 'available', :now, "
            "ST_SetSRID(ST_MakePoint(:lon + 0.001, :lat), 4326))"), pt | {"code": OTHER["team"], "g": OTHER["grid"]})
        conn.execute(text(
            "INSERT INTO fire_equipment (code, kind, name, status, geom) VALUES "
            "(:code, 'hydrant', 'other street hydrant', 'in_service', ST_SetSRID(ST_MakePoint(:lon, :lat + 0.001), 4326))"),
            pt | {"code": OTHER["equipment"]})
    new_event(engine, OTHER["event"], lon + 0.002, lat, now - dt.timedelta(minutes=10))
    yield engine, now
    engine.dispose()


@pytest.fixture(scope="session")
def scope_app(scope_db, settings):
    """The real app on the scope database, in-process (Starlette's TestClient runs its lifespan), with a
    movable clock; users of every role, and an operator of each street."""
    from fastapi.testclient import TestClient

    engine, now = scope_db
    clock = Clock()
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    app = create_app(cfg, registry=Registry(engine, cfg), clock=clock)
    users = make_users(engine, "scope")
    users["other_operator"] = make_users(engine, "scope_other", street=OTHER["street"])["operator"]
    with TestClient(app) as tc:
        yield types.SimpleNamespace(app=app, client=tc, clock=clock, engine=engine, now=now, users=users,
                                    ttl_s=cfg.token_ttl_s)
