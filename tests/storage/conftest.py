"""Storage tests: the SQL of :mod:`gridmap.storage` on the real PostGIS test database (emptied around each
test by the ``db`` fixture), with a few rows written by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, text

pytestmark = [pytest.mark.db]
TZ = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=TZ)


@pytest.fixture
def conn(db) -> Iterator[Connection]:
    """A connection in a transaction on the emptied test database, rolled back after the test."""
    with db.engine.connect() as c:
        yield c
        c.rollback()


def category(conn: Connection) -> str:
    """A category of the seeded ``event_categories``."""
    return conn.execute(text("SELECT code FROM event_categories ORDER BY code LIMIT 1")).scalar_one()


def add_team(conn: Connection, code: str, status: str = "available", lon: float = 120.1, lat: float = 30.28) -> int:
    return conn.execute(text(
        "INSERT INTO teams (code, name, kind, status, geom, position_at) "
        "VALUES (:c, :c, 'grid_patrol', :s, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :at) RETURNING id"),
        {"c": code, "s": status, "lon": lon, "lat": lat, "at": T0}).scalar_one()


def add_event(conn: Connection, code: str, *, status: str = "reported", due_at: dt.datetime | None = None,
              reported_at: dt.datetime = T0, lon: float = 120.1, lat: float = 30.28) -> int:
    return conn.execute(text(
        "INSERT INTO events (code, channel, category, reported_at, status, due_at, geom) "
        "VALUES (:c, 'hotline_12345', :cat, :at, :s, :due, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"),
        {"c": code, "cat": category(conn), "at": reported_at, "s": status, "due": due_at, "lon": lon,
         "lat": lat}).scalar_one()


def add_assignment(conn: Connection, event_id: int, team_id: int, status: str = "offered") -> int:
    return conn.execute(text(
        "INSERT INTO assignments (event_id, team_id, status, offered_at, respond_by) "
        "VALUES (:e, :t, :s, :at, :by) RETURNING id"),
        {"e": event_id, "t": team_id, "s": status, "at": T0, "by": T0 + dt.timedelta(minutes=3)}).scalar_one()
