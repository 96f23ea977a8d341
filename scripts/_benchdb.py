"""The scratch database of a benchmark: one per script in the embedded cluster, the sample street loaded once."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import Engine

from gridmap.config import Settings, get_settings
from gridmap.services import sample
from gridmap.storage import migrate
from gridmap.storage.db import cluster_for, database_url, libpq_url, make_engine


def scratch_database(name: str, *, fresh: bool = False, settings: Settings | None = None,
                     load_sample: bool = True, **engine_kw) -> tuple[Engine, float | None]:
    """Database ``name`` of the embedded cluster (started if needed): created if missing, dropped first if
    ``fresh``, migrated, the sample street loaded unless already there. Returns (engine, seconds the load
    took, or None when it was already loaded)."""
    settings = settings or get_settings()
    if not settings.embedded:
        raise SystemExit("the benchmarks run on the embedded cluster (unset GRIDMAP_DATABASE_URL)")
    cluster = cluster_for(settings)
    cluster.start()
    with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(database_url(settings, dbname=name), **engine_kw)
    migrate.upgrade(engine)
    load_s = None
    if load_sample:
        t0 = time.perf_counter()
        res = sample.load_sample_street(engine, settings=settings)
        print(res.message, flush=True)
        load_s = time.perf_counter() - t0 if res.loaded else None
    return engine, load_s


def libpq(name: str, settings: Settings | None = None) -> str:
    """The libpq URL of database ``name`` in the embedded cluster."""
    return libpq_url(cluster_for(settings or get_settings()).url(name))
