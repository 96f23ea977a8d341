"""Use cases for the database itself: bring it up, stop it, report on it, migrate it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from gridmap.config import Settings
from gridmap.errors import DatabaseError
from gridmap.storage import migrate
from gridmap.storage.db import check_postgis, cluster_for, database_url, make_engine


@dataclass
class UpInfo:
    started: bool
    created: bool
    revision: str | None
    message: str


def up(settings: Settings, *, run_migrations: bool = True) -> UpInfo:
    """Start the embedded cluster (initialising it the first time) and migrate to head.

    With ``GRIDMAP_DATABASE_URL`` set nothing is started: the external server is checked and migrated.
    """
    created = started = False
    if settings.embedded:
        cluster = cluster_for(settings)
        created = cluster.init()
        started = cluster.start()
    engine = make_engine(database_url(settings))
    try:
        postgis = check_postgis(engine)
        if run_migrations:
            migrate.upgrade(engine)
        rev = migrate.current_revision(engine)
    finally:
        engine.dispose()
    where = (f"embedded cluster in {settings.data_dir} on 127.0.0.1:{cluster_for(settings).port}"
             if not settings.database_url  # settings.embedded, spelt so that mypy sees the URL below is a str
             else make_url(settings.database_url).render_as_string(hide_password=True))
    verb = "created and started" if created else ("started" if started else "already running")
    msg = f"database: {where} — {verb}; PostGIS {postgis}; schema at revision {rev}"
    return UpInfo(started, created, rev, msg)


def down(settings: Settings) -> str:
    if not settings.embedded:
        return "GRIDMAP_DATABASE_URL is set: gridmap does not manage that server, nothing to stop"
    stopped = cluster_for(settings).stop()
    return "stopped the embedded database" if stopped else "the embedded database was not running"


def status(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any]
    if not settings.database_url:  # settings.embedded
        st = cluster_for(settings).status()
        out = {"mode": "embedded", "data_dir": st.data_dir, "port": st.port, "initialised": st.initialised,
               "running": st.running, "pid": st.pid, "postgresql": st.pg_version}
        if not st.running:
            return out
    else:
        out = {"mode": "external", "url": make_url(settings.database_url).render_as_string(hide_password=True)}
    engine = make_engine(database_url(settings, start=False))
    try:
        out["postgis"] = check_postgis(engine)
        out["revision"] = migrate.current_revision(engine)
        out["head"] = migrate.head_revision()
        out["running"] = True
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - report the server as unreachable, whatever the driver says
        out["running"] = False
        out["error"] = str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return out


def upgrade(settings: Settings, revision: str = "head") -> str:
    engine = make_engine(database_url(settings))
    try:
        check_postgis(engine)
        migrate.upgrade(engine, revision)
        return f"schema at revision {migrate.current_revision(engine)}"
    finally:
        engine.dispose()


def downgrade(settings: Settings, revision: str) -> str:
    engine = make_engine(database_url(settings))
    try:
        migrate.downgrade(engine, revision)
        return f"schema at revision {migrate.current_revision(engine)}"
    finally:
        engine.dispose()
