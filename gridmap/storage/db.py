"""Engines and connections: the embedded cluster by default, an external PostGIS when configured."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url

from gridmap.config import Settings
from gridmap.errors import DatabaseError
from gridmap.storage.cluster import EmbeddedCluster, find_bindir

MIN_POSTGIS = (3, 1)


def cluster_for(settings: Settings) -> EmbeddedCluster:
    bindir = settings.pg_bindir or None
    return EmbeddedCluster(settings.data_dir, settings.db_port, find_bindir(bindir) if bindir else None)


def _normalise(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://``; always use psycopg 3."""
    u = make_url(url.replace("postgres://", "postgresql://", 1))
    if u.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"GRIDMAP_DATABASE_URL must point at PostgreSQL/PostGIS, not {u.get_backend_name()!r}",
            field="GRIDMAP_DATABASE_URL",
            fix="use postgresql://user:password@host:5432/dbname",
        )
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def ensure_database(cluster: EmbeddedCluster, dbname: str) -> None:
    """Create ``dbname`` in the embedded cluster if it is missing (external servers are never changed)."""
    admin = _libpq(cluster.url("postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process made it meanwhile
                conn.execute(f'CREATE DATABASE "{dbname}"')


def database_url(settings: Settings, *, start: bool = True, dbname: str | None = None) -> str:
    """The SQLAlchemy URL to use. In embedded mode this starts the cluster and creates the database."""
    if settings.database_url:
        return _normalise(settings.database_url)
    cluster = cluster_for(settings)
    name = dbname or settings.db_name
    if start:
        cluster.start()
        ensure_database(cluster, name)
    return cluster.url(name)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string for raw psycopg."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    return _libpq(url)


def driver_connection(conn: Connection) -> psycopg.Connection:
    """The psycopg connection under the SQLAlchemy connection ``conn``, in the same transaction."""
    raw = conn.connection.driver_connection
    if raw is None:  # SQLAlchemy's type allows it: a pool entry whose connection was closed
        raise RuntimeError("the SQLAlchemy connection has no psycopg connection under it")
    return raw


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with a connection pool sized for one API worker process: a request holds at most one
    connection at a time, so ``pool_size`` is the number of concurrent requests served without opening a
    connection (a connection beyond it is opened and closed again per use, a new PostgreSQL backend each
    time). The pool opens connections only when they are needed, and hands out the one used last (LIFO):
    under light load the same few warm connections serve, and the others may time out on the server."""
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_use_lifo", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def open_pool(engine: Engine, n: int | None = None, warm: Callable[[Connection], object] | None = None) -> int:
    """Open ``n`` pooled connections now (default: the pool's size) and run ``warm(connection)`` on each, so
    that the first requests of a server pay neither for new PostgreSQL backends nor for their cold caches
    (PostGIS loads in each backend on first use, the catalog entries of each table on first touch).
    Returns how many were opened."""
    size = getattr(engine.pool, "size", None)
    n = n if n is not None else (size() if callable(size) else 0)
    with contextlib.ExitStack() as stack:
        for _ in range(n):
            conn = stack.enter_context(engine.connect())
            if warm is not None:
                warm(conn)
                conn.rollback()
    return n


def check_postgis(engine: Engine) -> str:
    """Return the PostGIS version, or raise if the server has none or one older than 3.1."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT extversion FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone()
        if row is None:
            avail = conn.exec_driver_sql(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
            ).fetchone()
            if avail is None:
                raise DatabaseError(
                    "the database server has no PostGIS extension available",
                    fix="install PostGIS >= 3.1 on the server (Debian: postgresql-15-postgis-3)",
                )
            version = avail[0]
        else:
            version = row[0]
    parts = tuple(int(x) for x in version.split(".")[:2])
    if parts < MIN_POSTGIS:
        raise DatabaseError(f"PostGIS {version} is too old", fix="gridmap needs PostGIS >= 3.1")
    return version
