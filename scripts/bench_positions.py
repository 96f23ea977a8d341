"""Benchmark: team position updates in batches, database and dispatch index in step, against peers in one run.

    .venv/bin/python scripts/bench_positions.py [--teams 10000] [--batch 1000] [--positions 100000] [--fresh]

The scratch database ``gridmap_bench_positions`` holds the sample street (real OSM roads) plus ``--teams``
extra teams spread over it. Every method receives the same stream: rounds in which every team reports a
new position (a small move along the street grid, a later timestamp), cut into batches of ``--batch``,
until ``--positions`` have been sent. Timed per method, end to end, sustained over the whole stream:

  gridmap Dispatcher.report_positions     what the API's ``POST /v1/teams/positions`` calls: validation,
                                          one ``UPDATE ... FROM unnest(...)`` per batch (newer reports only,
                                          ``RETURNING``), then the team index (edge snap, node slots) and
                                          the hierarchy's bucket searches for the moved teams
  ... without the hierarchy               the same with ``DispatchPolicy(hierarchy=False)``
  peer: executemany UPDATE                a row-by-row ``UPDATE teams SET ... WHERE code = %s`` through
                                          psycopg's pipelined ``executemany``, then the same index update
  peer: SQLAlchemy ORM bulk UPDATE        ``session.execute(update(Team), [{id, geom, position_at}, ...])``

and, for the in-memory index alone (no database):

  gridmap TeamIndex.move_teams               snap to the road edge + O(1) slot surgery per team
  peer: rtree                             ``Index.delete`` + ``Index.insert`` per team (points), as an
                                          rtree-based live-team index would do

After each database method, "in step" is checked: every team's position and time in PostGIS equal the
the team index's (positions to 1e-7 degrees). Target (issue 3): at least 20,000 positions/s sustained in batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import rtree
from rich.console import Console
from rich.table import Table
from sqlalchemy import text, update
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _benchdb import scratch_database  # noqa: E402

from gridmap.config import MEASURE_CRS  # noqa: E402
from gridmap.core.crs import transformer  # noqa: E402
from gridmap.services.dispatch import Dispatcher, DispatchPolicy  # noqa: E402
from gridmap.storage.models import Team  # noqa: E402

DB = "gridmap_bench_positions"
TZ = dt.timezone(dt.timedelta(hours=8))
TARGET = 20_000


def prepare(n_extra: int, fresh: bool):
    engine, _ = scratch_database(DB, fresh=fresh)
    with engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM teams WHERE code LIKE 'BENCH-%'")).scalar_one()
        if have != n_extra:
            conn.execute(text("DELETE FROM teams WHERE code LIKE 'BENCH-%'"))
            # spread over the street: at random road nodes, fresh positions
            conn.execute(text(
                "INSERT INTO teams (code, name, kind, skills, status, position_at, geom) "
                "SELECT 'BENCH-' || lpad(i::text, 6, '0'), 'bench team ' || i, 'volunteer', ARRAY['patrol'], "
                "'available', now(), (SELECT geom FROM road_nodes ORDER BY id OFFSET (i * 7919) % "
                "(SELECT count(*) FROM road_nodes) LIMIT 1) FROM generate_series(1, :n) AS i"), {"n": n_extra})
        conn.execute(text("ANALYZE teams"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, code, ST_X(geom), ST_Y(geom) FROM teams WHERE geom IS NOT NULL "
                                 "ORDER BY id")).all()
        latest = conn.execute(text("SELECT max(position_at) FROM teams")).scalar_one()
    return engine, rows, latest


def stream(rows, n_positions: int, batch: int, seed: int, start: dt.datetime):
    """Batches of (code, lon, lat, at): rounds in which every team moves a little, later each round."""
    rng = np.random.default_rng(seed)
    codes = [r[1] for r in rows]
    lon0 = np.array([r[2] for r in rows])
    lat0 = np.array([r[3] for r in rows])
    out, sent, rnd = [], 0, 0
    while sent < n_positions:
        rnd += 1
        at = start + dt.timedelta(seconds=10 * rnd)
        lon = lon0 + rng.normal(0, 2e-4, len(codes))
        lat = lat0 + rng.normal(0, 2e-4, len(codes))
        order = rng.permutation(len(codes))
        for a in range(0, len(codes), batch):
            sel = order[a:a + batch][: n_positions - sent]
            if not len(sel):
                break
            out.append([(codes[j], float(lon[j]), float(lat[j]), at) for j in sel.tolist()])
            sent += len(sel)
            if sent >= n_positions:
                break
    return out


def in_step(engine, d: Dispatcher) -> tuple[bool, str]:
    """Every team's stored position and time equal the team index's."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, ST_X(geom), ST_Y(geom), extract(epoch FROM position_at) "
                                 "FROM teams WHERE geom IS NOT NULL")).all()
    r = d.teams
    to_xy = transformer("EPSG:4326", MEASURE_CRS)
    codes = [x[0] for x in rows]
    idx = np.array([r.index[c] for c in codes])
    x, y = to_xy.transform(np.array([x[1] for x in rows]), np.array([x[2] for x in rows]))
    at = np.array([float(x[3]) for x in rows])
    dx = np.abs(r.x[idx] - x).max()
    dy = np.abs(r.y[idx] - y).max()
    dt_ = np.abs(r.pos_at[idx] - at).max()
    pending = r.buckets.pending if r.buckets is not None else 0
    ok = dx < 0.01 and dy < 0.01 and dt_ < 1e-3 and pending == 0  # 1 cm ≈ 1e-7 degrees
    return ok, f"{len(rows):,} teams: max |Δx| {dx:.1e} m, |Δy| {dy:.1e} m, |Δt| {dt_:.1e} s, buckets pending {pending}"


def run_gridmap(engine, batches, policy) -> tuple[float, Dispatcher]:
    d = Dispatcher.from_database(engine, policy)
    d.wait_for_hierarchy()
    newer = 0
    t0 = time.perf_counter()
    for b in batches:
        newer += d.report_positions(b)
    secs = time.perf_counter() - t0
    sent = sum(len(b) for b in batches)
    if newer != sent:  # every report is newer than the stored one: each must have been written
        raise SystemExit(f"only {newer:,} of {sent:,} positions were newer than the stored ones")
    return secs, d


def _index_update(d: Dispatcher, b) -> None:
    to_xy = transformer("EPSG:4326", MEASURE_CRS)
    x, y = to_xy.transform(np.array([p[1] for p in b]), np.array([p[2] for p in b]))
    d.teams.move_teams([p[0] for p in b], x, y, np.array([p[3].timestamp() for p in b]))
    d.teams.refresh_buckets()


def run_executemany(engine, batches) -> tuple[float, Dispatcher]:
    d = Dispatcher.from_database(engine)
    t0 = time.perf_counter()
    for b in batches:
        with engine.begin() as sa:
            conn = sa.connection.driver_connection
            with conn.cursor() as cur:
                cur.executemany("UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), position_at = %s "
                                "WHERE code = %s AND (position_at IS NULL OR position_at <= %s)",
                                [(p[1], p[2], p[3], p[0], p[3]) for p in b])
        _index_update(d, b)
    return time.perf_counter() - t0, d


def run_orm(engine, batches, ids: dict[str, int]) -> tuple[float, Dispatcher]:
    d = Dispatcher.from_database(engine)
    t0 = time.perf_counter()
    for b in batches:
        with Session(engine) as s, s.begin():
            s.execute(update(Team), [{"id": ids[p[0]], "geom": f"SRID=4326;POINT({p[1]} {p[2]})", "position_at": p[3]}
                                     for p in b])
        _index_update(d, b)
    return time.perf_counter() - t0, d


def run_index_only(d: Dispatcher, batches) -> tuple[float, float]:
    """gridmap's team index vs an rtree of points, the same moves (projected beforehand for both)."""
    to_xy = transformer("EPSG:4326", MEASURE_CRS)
    pre = []
    for b in batches:
        x, y = to_xy.transform(np.array([p[1] for p in b]), np.array([p[2] for p in b]))
        pre.append(([p[0] for p in b], x, y, np.array([p[3].timestamp() for p in b])))
    r = d.teams
    t0 = time.perf_counter()
    for codes, x, y, at in pre:
        r.move_teams(codes, x, y, at)
    t_gm = time.perf_counter() - t0
    idx = rtree.index.Index()
    where: dict[int, tuple[float, float]] = {}
    num = {c: i for i, c in enumerate(r.codes)}
    for c in r.codes:
        i = num[c]
        where[i] = (float(r.x[r.index[c]]), float(r.y[r.index[c]]))
        idx.insert(i, (*where[i], *where[i]))
    t0 = time.perf_counter()
    for codes, x, y, _ in pre:
        for c, xx, yy in zip(codes, x.tolist(), y.tolist(), strict=True):
            i = num[c]
            old = where[i]
            idx.delete(i, (*old, *old))
            where[i] = (xx, yy)
            idx.insert(i, (xx, yy, xx, yy))
    t_rt = time.perf_counter() - t0
    return t_gm, t_rt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teams", type=int, default=10_000, help="extra teams on the street (besides its 150)")
    ap.add_argument("--batch", type=int, default=1000, help="positions per batch")
    ap.add_argument("--positions", type=int, default=100_000, help="positions per method")
    ap.add_argument("--peer-positions", type=int, default=20_000, help="positions for the slow peers")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    console = Console(width=150)
    load0 = os.getloadavg()
    engine, rows, latest = prepare(args.teams, args.fresh)
    ids = {r[1]: r[0] for r in rows}
    start = max(dt.datetime.now(TZ), latest) + dt.timedelta(minutes=1)  # every report newer than the stored
    results = []

    def record(name, n, secs, d=None):
        ok, detail = in_step(engine, d) if d is not None else (None, "")
        results.append((name, n, secs, ok, detail))
        console.print(f"  {name}: {n / secs:,.0f} positions/s {detail}")

    big = stream(rows, args.positions, args.batch, args.seed, start)
    secs, d = run_gridmap(engine, big, DispatchPolicy())
    record("gridmap Dispatcher.report_positions (with hierarchy buckets)", args.positions, secs, d)
    big2 = stream(rows, args.positions, args.batch, args.seed + 1, start + dt.timedelta(hours=1))
    secs, d2 = run_gridmap(engine, big2, DispatchPolicy(hierarchy=False))
    record("gridmap, without the hierarchy", args.positions, secs, d2)
    small = stream(rows, args.peer_positions, args.batch, args.seed + 2, start + dt.timedelta(hours=2))
    secs, d3 = run_executemany(engine, small)
    record("peer: psycopg executemany UPDATE per row (+ the same index)", args.peer_positions, secs, d3)
    small2 = stream(rows, args.peer_positions, args.batch, args.seed + 3, start + dt.timedelta(hours=3))
    secs, d4 = run_orm(engine, small2, ids)
    record("peer: SQLAlchemy ORM bulk UPDATE (+ the same index)", args.peer_positions, secs, d4)
    t_gm, t_rt = run_index_only(d2, big)
    results.append(("index only: gridmap TeamIndex.move_teams (edge snap + slots)", args.positions, t_gm, None, ""))
    results.append(("index only: peer rtree delete + insert per team", args.positions, t_rt, None, ""))

    load1 = os.getloadavg()
    table = Table(title=f"bench_positions: {len(rows):,} teams on the sample street, batches of {args.batch:,}, "
                        f"{dt.date.today()}, {os.cpu_count()} CPUs, load {load0[0]:.2f} → {load1[0]:.2f}")
    for col in ("method", "positions", "seconds", "positions/s", "÷ gridmap", "database and index in step"):
        table.add_column(col, justify="left" if col in ("method", "database and index in step") else "right")
    base = results[0][1] / results[0][2]
    for name, n, secs, ok, detail in results:
        rate = n / secs
        table.add_row(name, f"{n:,}", f"{secs:.2f}", f"{rate:,.0f}", f"{base / rate:,.1f}×" if name != results[0][0] else "1",
                      "—" if ok is None else ("yes" if ok else "[red]NO[/red]") + f" ({detail})")
    console.print(table)
    rate = results[0][1] / results[0][2]
    console.print(f"target ≥ {TARGET:,} positions/s sustained in batches: measured {rate:,.0f} — "
                  + ("met" if rate >= TARGET and results[0][3] else "[red]NOT met[/red]"))
    engine.dispose()


if __name__ == "__main__":
    main()
