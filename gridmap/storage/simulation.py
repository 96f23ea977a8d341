"""SQL of simulation databases: the ``simulation_mark`` row (the clock and the dispatch rule of a simulation
database) and copies of a database. (What the simulator reads of the street is read like any other data:
:mod:`~gridmap.storage.teams`, :mod:`~gridmap.storage.areas`, :mod:`~gridmap.storage.events`.)

Every function runs on the caller's connection and transaction (SQLAlchemy ``Connection``), except
:func:`read_clock` (the API reads the clock at the start of every request: one prepared statement on the
process's own psycopg connection, no pool checkout) and the database-level statements (:func:`copy_database`
and the like), which need an autocommit psycopg connection to the cluster's ``postgres`` database (CREATE and
DROP DATABASE cannot run inside a transaction).
"""

from __future__ import annotations

import datetime as dt
import re

import psycopg
from sqlalchemy import Connection, RowMapping, text

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def mark(conn: Connection) -> RowMapping | None:
    """The simulation mark, or None (no row, or a database not migrated to 0007 yet)."""
    if conn.execute(text("SELECT to_regclass('simulation_mark')")).scalar_one() is None:
        return None
    return conn.execute(text("SELECT id, created_at, source, seed, clock_at, dispatch_rule, note "
                             "FROM simulation_mark WHERE id = 1")).mappings().first()


def put_mark(conn: Connection, *, source: str, seed: int | None, clock_at: dt.datetime,
             dispatch_rule: str | None = None, note: str | None = None) -> None:
    """Make (or remake) the database a simulation database."""
    conn.execute(text("""
        INSERT INTO simulation_mark (id, source, seed, clock_at, dispatch_rule, note)
        VALUES (1, :source, :seed, :clock_at, :rule, :note)
        ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, seed = EXCLUDED.seed, clock_at = EXCLUDED.clock_at,
          dispatch_rule = EXCLUDED.dispatch_rule, note = EXCLUDED.note, created_at = now()"""),
                 {"source": source, "seed": seed, "clock_at": clock_at, "rule": dispatch_rule, "note": note})


def clock_at(conn: Connection) -> dt.datetime | None:
    return conn.execute(text("SELECT clock_at FROM simulation_mark WHERE id = 1")).scalar_one_or_none()


def read_clock(conn: psycopg.Connection) -> dt.datetime | None:
    """The clock, on a raw psycopg connection (the API reads it at the start of every request)."""
    row = conn.execute("SELECT clock_at FROM simulation_mark WHERE id = 1", prepare=True).fetchone()
    return None if row is None else row[0]


def move_clock(conn: Connection, at: dt.datetime) -> tuple[dt.datetime | None, bool]:
    """Move the clock to ``at`` unless that is earlier than it is. Returns (the clock now, moved?)."""
    row = conn.execute(text("SELECT clock_at FROM simulation_mark WHERE id = 1 FOR UPDATE")).first()
    if row is None:
        return None, False
    if at < row[0]:
        return row[0], False
    conn.execute(text("UPDATE simulation_mark SET clock_at = :at WHERE id = 1"), {"at": at})
    return at, True


def copy_database(admin: psycopg.Connection, source: str, target: str) -> None:
    """``target`` becomes a fresh copy of ``source`` (a file copy: ``CREATE DATABASE ... TEMPLATE``); an
    existing ``target`` is dropped first, its connections ended. Nobody may be connected to ``source``."""
    for name in (source, target):
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a plain database name")
    admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')


def tune_for_simulation(admin: psycopg.Connection, name: str) -> None:
    """A simulation database gives up durability for speed: commits do not wait for the disk (a crash loses the
    last moments of a run, which its seed replays anyway)."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain database name")
    admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')


def vacuum_hot_tables(conn: psycopg.Connection) -> None:
    """VACUUM ``teams`` (an autocommit connection): a fast simulation rewrites every team's row with each batch of
    fixes, a day's worth in minutes, faster than autovacuum (once a minute) clears the dead rows, and every read
    of ``teams`` slows down with them."""
    conn.execute("VACUUM teams")


def drop_database(admin: psycopg.Connection, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain database name")
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(admin: psycopg.Connection, name: str) -> bool:
    row = admin.execute("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)", (name,)).fetchone()
    return bool(row is not None and row[0])


