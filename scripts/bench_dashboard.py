"""Benchmark: the command-centre page with 1k / 10k / 100k buildings, in a real headless Chromium.

For each size, the sample street is cut down (1k: the buildings nearest its centre) or tiled with
shifted copies of itself (10k, 100k), the app is served on a free loopback port, and the page is opened
in Debian's Chromium with software WebGL (SwiftShader). Reported per size:

  login              the page opens on the login form; from submitting it until the map's page has started
                     arriving (the POST /dashboard/login with its Argon2 check, then the navigation's commit)
  dashboard (cold)   first load after logging in as an admin: empty server caches; time from the map page's
                     navigation start until every layer has drawn (deck.gl reports all layers loaded and a
                     frame is rendered), bytes transferred by that page
  dashboard (warm)   a second browser context (no browser cache, a new login), server caches warm
  operator (cold)    the same as an operator: every layer confined to the street in SQL (its own caches)
  inline (peer)      the notebook way: ``gridmap.viz.to_html`` with every building inlined in one page
                     (one GeoJsonLayer, the same styling), opened from a file: what pydeck does by default

The page must show every building: the benchmark checks that the loaded tiles hold all N of them.
Target: the whole sample street (≈9k buildings) draws in under 5 s.

usage: python scripts/bench_dashboard.py [--sizes 1000,10000,100000] [--keep-db]
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import uvicorn
from _benchdb import scratch_database
from playwright.sync_api import sync_playwright
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.orm import Session

import gridmap.viz as gv
from api.app import create_app
from gridmap.config import get_settings
from gridmap.services import auth
from gridmap.services.dashboard import Dashboard
from gridmap.services.registry import Registry
from gridmap.storage.db import cluster_for, libpq_url

DB = "gridmap_bench_dashboard"
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 850}
console = Console(width=200)


def fresh_db(settings):
    engine, _ = scratch_database(DB, fresh=True, settings=settings)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA bench"))
        conn.execute(text("CREATE TABLE bench.buildings AS SELECT * FROM buildings"))
    return engine


def bench_users(engine) -> dict[str, dict]:
    """An admin and an operator of the sample street, with random passwords (the screen needs a login)."""
    with engine.connect() as conn:
        street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                   "ORDER BY population DESC NULLS LAST LIMIT 1")).scalar_one()
    users = {}
    with Session(engine) as session:
        for role, extra in (("admin", {}), ("operator", {"street_code": street})):
            name, password = f"bench_{role}", secrets.token_urlsafe(16)
            auth.create_user(session, username=name, password=password, role=role, **extra)
            users[role] = {"username": name, "password": password}
    return users


def set_buildings(engine, n: int) -> None:
    """Exactly n buildings: the n nearest the street's centre, or the street tiled with shifted copies."""
    with engine.begin() as conn:
        base = conn.execute(text("SELECT count(*) FROM bench.buildings")).scalar_one()
        conn.execute(text("DELETE FROM buildings WHERE code LIKE '%-copy-%'"))
        if n <= base:
            conn.execute(text("""
                DELETE FROM buildings WHERE id NOT IN (
                  SELECT id FROM bench.buildings ORDER BY geom <-> (
                    SELECT ST_SetSRID(ST_Centroid(ST_Extent(geom)::geometry), 4326) FROM bench.buildings) LIMIT :n)"""),
                         {"n": n})
            return
        w, h = conn.execute(text("SELECT ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e) FROM "
                                 "(SELECT ST_Extent(geom) e FROM bench.buildings) s")).one()
        copies = math.ceil(n / base) - 1
        cols = math.ceil(math.sqrt(copies + 1))
        left = n - base
        for k in range(1, copies + 1):
            i, j = k % cols, k // cols
            take = min(base, left)
            conn.execute(text("""
                INSERT INTO buildings (code, name, address, floors, height_m, use, units, year_built, community_code,
                                       grid_code, geom)
                SELECT code || '-copy-' || :k, name, address, floors, height_m, use, units, year_built, community_code,
                       grid_code, ST_Translate(geom, :dx, :dy)
                FROM bench.buildings ORDER BY id LIMIT :take"""),
                         {"k": k, "dx": i * w * 1.02, "dy": j * h * 1.02, "take": take})
            left -= take
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM buildings")).scalar_one() == n


def serve(engine, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)), "escalation_interval_s": 0})
    srv = uvicorn.Server(uvicorn.Config(create_app(cfg, registry=Registry(engine, cfg)), host="127.0.0.1", port=port,
                                        log_level="warning", access_log=False))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    return srv, th, f"http://127.0.0.1:{port}"


def transferred(pg) -> int:
    return int(pg.evaluate("""() => performance.getEntriesByType('navigation').concat(
        performance.getEntriesByType('resource')).reduce((s, e) => s + (e.transferSize || e.encodedBodySize || 0), 0)"""))


def open_dashboard(browser, url: str, at: str, user: dict) -> dict:
    ctx = browser.new_context(viewport=VIEWPORT)
    foreign: list[str] = []
    ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else (foreign.append(r.request.url),
                                                                                        r.abort()))
    pg = ctx.new_page()
    pg.goto(f"{url}/dashboard?at={at}")
    pg.wait_for_selector("#gm-login", timeout=60_000)  # no session yet: the login form
    pg.fill("#gm-username", user["username"])
    pg.fill("#gm-password", user["password"])
    t0 = time.perf_counter()
    with pg.expect_navigation(timeout=60_000, wait_until="commit"):
        pg.click("#gm-login-submit")
    login_ms = (time.perf_counter() - t0) * 1000  # the POST (Argon2 check) and the map page's first bytes
    pg.wait_for_function("window.gridmap && window.gridmap.ready()", timeout=300_000, polling=100)
    out = {"ms": pg.evaluate("window.gridmap.state.drawnAt"), "bytes": transferred(pg), "login_ms": login_ms,
           "buildings": len(pg.evaluate("window.gridmap.buildingCodes()")), "foreign": len(foreign),
           "requests": pg.evaluate("performance.getEntriesByType('resource').length")}
    ctx.close()
    return out


def open_inline(browser, engine) -> dict:
    dash = Dashboard(engine)
    gdf = dash.buildings()
    t0 = time.perf_counter()
    d = gv.deck([gv.buildings_layer(gdf)], bbox=dash.extent())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inline.html"
        gv.to_html(d, path)
        build_s = time.perf_counter() - t0
        size = path.stat().st_size
        ctx = browser.new_context(viewport=VIEWPORT)
        pg = ctx.new_page()
        pg.goto(path.as_uri())
        pg.wait_for_function("""() => { try { const d = deckInstance; return d && d.layerManager &&
            d.props.layers.length > 0 && d.props.layers.every(l => l.isLoaded) && d.layerManager.layers.length > 0 &&
            !d.needsRedraw({clearRedrawFlags: false}); } catch (e) { return false; } }""", timeout=600_000, polling=100)
        ms = pg.evaluate("performance.now()")
        ctx.close()
    return {"ms": ms, "bytes": size, "build_s": build_s, "buildings": len(gdf)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,8966,10000,100000", help="8966: the sample street as it is")
    ap.add_argument("--keep-db", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = get_settings()
    console.print(f"building the bench database {DB} (the sample street) …")
    engine = fresh_db(settings)
    users = bench_users(engine)
    with engine.connect() as conn:
        at = conn.execute(text("SELECT max(position_at) FROM teams")).scalar_one().isoformat().replace("+", "%2B")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        # 10k and 100k grow the sample; 1k cuts it down, so it goes last
        for n in sorted(sizes, key=lambda s: (s < 8966, s)):
            set_buildings(engine, n)
            srv, th, url = serve(engine, settings)
            try:
                cold = open_dashboard(browser, url, at, users["admin"])
                warm = open_dashboard(browser, url, at, users["admin"])
                oper = open_dashboard(browser, url, at, users["operator"])
            finally:
                srv.should_exit = True
                th.join(10)
            peer = open_inline(browser, engine)
            assert cold["buildings"] == warm["buildings"] == n, (n, cold, warm)
            assert cold["foreign"] == warm["foreign"] == oper["foreign"] == 0
            cold["load"] = os.getloadavg()[0]
            rows.append((n, cold, warm, oper, peer))
            console.print(f"{n:,} buildings: cold {cold}, warm {warm}, operator {oper}, inline {peer}")
        browser.close()
    table = Table(title="command-centre page: time until every layer has drawn, and bytes transferred "
                        "(headless Chromium, SwiftShader; 2 cores)")
    for c in ("buildings", "login", "dashboard cold", "bytes", "requests", "dashboard warm", "bytes",
              "operator cold", "inline peer", "HTML bytes", "peer build", "load (1 min)"):
        table.add_column(c, justify="right")
    for n, cold, warm, oper, peer in sorted(rows, key=lambda r: r[0]):
        table.add_row(f"{n:,}", f"{cold['login_ms']:.0f} ms", f"{cold['ms'] / 1000:.2f} s",
                      f"{cold['bytes'] / 1e6:.2f} MB", str(cold["requests"]), f"{warm['ms'] / 1000:.2f} s",
                      f"{warm['bytes'] / 1e6:.2f} MB", f"{oper['ms'] / 1000:.2f} s ({oper['buildings']:,})",
                      f"{peer['ms'] / 1000:.2f} s", f"{peer['bytes'] / 1e6:.1f} MB", f"{peer['build_s']:.1f} s",
                      f"{cold['load']:.2f}")
    console.print(table)
    console.print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    console.print("Every layer (grids, boundaries, buildings, equipment, routes, teams, events) is drawn; the "
                  "page never contacted anything but the app. Target: the sample street (~9k) under 5 s.")
    engine.dispose()
    if not args.keep_db:
        cluster = cluster_for(settings)
        with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
