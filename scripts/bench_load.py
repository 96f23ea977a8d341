"""Benchmark: load N points with attributes into PostGIS, four ways, in one run.

  gridmap      gridmap's loader (validation, CRS handling, type coercion, binary COPY, upsert safety)
  raw COPY     psycopg ``COPY ... (FORMAT BINARY)`` of the same rows, nothing else (the practical ceiling)
  to_postgis   ``GeoDataFrame.to_postgis`` (pandas to_sql)
  ORM add_all  SQLAlchemy ORM objects, ``Session.add_all`` + commit

Every method starts from the same in-memory GeoDataFrame and writes into the same empty
``fire_equipment`` table (GiST + unique indexes in place), in a scratch database ``gridmap_bench``.

usage: python scripts/bench_load.py [--rows 1000000] [--orm-rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.config import get_settings
from gridmap.services import loading
from gridmap.storage import migrate
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine
from gridmap.storage.models import FireEquipment

KINDS = np.array(["hydrant", "extinguisher_cabinet", "smart_alarm", "micro_fire_truck", "micro_fire_station"])
STATUSES = np.array(["in_service", "faulty", "out_of_service"])


def make_points(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    lon = rng.uniform(120.06, 120.135, n)
    lat = rng.uniform(30.255, 30.315, n)
    days = rng.integers(0, 365, n)
    return gpd.GeoDataFrame(
        {
            "code": np.char.add("FE", np.arange(n).astype(str)).astype(object),
            "kind": KINDS[rng.integers(0, len(KINDS), n)].astype(object),
            "name": np.char.add("设备", rng.integers(0, 10_000, n).astype(str)).astype(object),
            "status": STATUSES[rng.choice(3, n, p=[0.92, 0.05, 0.03])].astype(object),
            "last_inspected": (np.datetime64("2025-11-01") + days.astype("timedelta64[D]")),
        },
        geometry=shapely.points(lon, lat),
        crs="EPSG:4326",
    )


def bench_db():
    settings = get_settings()
    if not settings.embedded:
        raise SystemExit("bench_load runs on the embedded cluster (unset GRIDMAP_DATABASE_URL)")
    cluster = cluster_for(settings)
    cluster.start()
    with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "gridmap_bench" WITH (FORCE)')
        conn.execute('CREATE DATABASE "gridmap_bench"')
    engine = make_engine(database_url(settings, dbname="gridmap_bench"))
    migrate.upgrade(engine)
    return engine, settings


def truncate(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE fire_equipment RESTART IDENTITY CASCADE"))
        conn.execute(text("CHECKPOINT"))


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM fire_equipment")).scalar_one()


def run_gridmap(engine, settings, gdf) -> None:
    loading.load_frame(engine, "fire_equipment", gdf, settings=settings, source="bench")


def run_raw_copy(engine, settings, gdf) -> None:
    cols = [gdf[c].tolist() for c in ("code", "kind", "name", "status")]
    cols.append([d.date() for d in gdf["last_inspected"].tolist()])
    cols.append(shapely.to_wkb(shapely.set_srid(gdf.geometry.to_numpy(), 4326), include_srid=True).tolist())
    with engine.begin() as sa:
        conn = sa.connection.driver_connection
        with conn.cursor() as cur, cur.copy(
            "COPY fire_equipment (code, kind, name, status, last_inspected, geom) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["text", "text", "text", "text", "date", "bytea"])
            for row in zip(*cols, strict=True):
                cp.write_row(row)


def run_to_postgis(engine, settings, gdf) -> None:
    g = gdf.rename_geometry("geom")
    g.to_postgis("fire_equipment", engine, if_exists="append", index=False, chunksize=50_000)


def run_orm(engine, settings, gdf) -> None:
    wkt = shapely.to_wkt(gdf.geometry.to_numpy(), rounding_precision=-1)
    objs = [
        FireEquipment(code=c, kind=k, name=nm, status=s, last_inspected=d.date(), geom=f"SRID=4326;{w}")
        for c, k, nm, s, d, w in zip(gdf["code"], gdf["kind"], gdf["name"], gdf["status"], gdf["last_inspected"],
                                     wkt, strict=True)
    ]
    with Session(engine) as session:
        session.add_all(objs)
        session.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--orm-rows", type=int, default=None, help="rows for the (slow) ORM run; default --rows")
    ap.add_argument("--repeat", type=int, default=2, help="runs per method (best is kept)")
    args = ap.parse_args()
    console = Console()
    engine, settings = bench_db()
    gdf = make_points(args.rows)
    orm_rows = args.orm_rows or args.rows
    methods = [("raw COPY (binary)", run_raw_copy, gdf), ("gridmap loader", run_gridmap, gdf),
               ("GeoDataFrame.to_postgis", run_to_postgis, gdf), ("ORM add_all", run_orm, gdf.iloc[:orm_rows])]
    results = {}
    for name, fn, frame in methods:
        best = float("inf")
        for _ in range(args.repeat if name != "ORM add_all" else 1):
            truncate(engine)
            t0 = time.perf_counter()
            fn(engine, settings, frame)
            best = min(best, time.perf_counter() - t0)
            got = count(engine)
            assert got == len(frame), f"{name}: wrote {got} rows, expected {len(frame)}"
        results[name] = (len(frame), best)
        console.print(f"{name}: {len(frame):,} rows in {best:.2f} s")
    # gridmap again on the full table: every row already there (idempotent reload path)
    truncate(engine)
    run_gridmap(engine, settings, gdf)
    t0 = time.perf_counter()
    run_gridmap(engine, settings, gdf)
    reload_s = time.perf_counter() - t0
    assert count(engine) == len(gdf)

    raw_rate = results["raw COPY (binary)"][0] / results["raw COPY (binary)"][1]
    table = Table(title=f"bench_load: {args.rows:,} points with 5 attributes into fire_equipment "
                        f"({dt.date.today()}, PostgreSQL {cluster_for(settings).status().pg_version})")
    for col in ("method", "rows", "seconds", "rows/s", "vs raw COPY"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, (n, secs) in results.items():
        rate = n / secs
        table.add_row(name, f"{n:,}", f"{secs:.2f}", f"{rate:,.0f}", f"{rate / raw_rate:.0%}")
    table.add_row("gridmap reload (all unchanged)", f"{len(gdf):,}", f"{reload_s:.2f}",
                  f"{len(gdf) / reload_s:,.0f}", f"{len(gdf) / reload_s / raw_rate:.0%}")
    console.print(table)
    engine.dispose()


if __name__ == "__main__":
    main()
