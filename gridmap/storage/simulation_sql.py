"""SQL of the simulator and of simulation databases: the ``simulation_mark`` row (the clock and the dispatch
rule of a simulation database), copies of a database, and what the simulator reads of the street (its teams,
grids and the year of events its arrivals and behaviour are drawn from).

Every function runs on the caller's connection and transaction (SQLAlchemy ``Connection``), except
:func:`copy_database`, which needs an autocommit psycopg connection to the cluster's ``postgres`` database.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
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


# -- what the simulator reads of the street -----------------------------------------------------------------
def event_history(conn: Connection, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The events reported in [start, end) (not near-duplicates): what the arrivals and the behaviour figures are
    drawn from. Places as lon/lat, with the building's code when there is one; milestones as timestamps."""
    rows = conn.execute(text("""
        SELECT e.channel, e.category, e.severity, e.grid_code, e.reported_at, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
               b.code AS building_code, e.title, e.dispatched_at, e.accepted_at, e.on_site_at, e.resolved_at,
               e.closed_at
        FROM events e LEFT JOIN buildings b ON b.id = e.building_id
        WHERE e.reported_at >= :start AND e.reported_at < :end AND e.duplicate_of IS NULL AND e.grid_code IS NOT NULL
        ORDER BY e.reported_at, e.id"""), {"start": start, "end": end}).mappings().all()
    cols = ["channel", "category", "severity", "grid_code", "reported_at", "lon", "lat", "building_code", "title",
            "dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at"]
    return pd.DataFrame([dict(r) for r in rows], columns=cols)


def teams(conn: Connection) -> list[RowMapping]:
    """Every team: kind, status, skills, home grid, its own grids (staffed, else the home grid), last position,
    and the code of one of its members (the one its phone's user stands for)."""
    return list(conn.execute(text("""
        SELECT t.code, t.kind, t.status, t.skills, t.home_grid_code, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat,
               t.position_at,
               COALESCE((SELECT array_agg(DISTINCT s.grid_code ORDER BY s.grid_code) FROM grid_staff s
                         JOIN team_members m ON m.id = s.member_id WHERE m.team_id = t.id),
                        CASE WHEN t.home_grid_code IS NULL THEN ARRAY[]::text[] ELSE ARRAY[t.home_grid_code] END)
                 AS grids,
               (SELECT m.code FROM team_members m WHERE m.team_id = t.id ORDER BY m.code LIMIT 1) AS member_code
        FROM teams t ORDER BY t.code""")).mappings())


def member_roles(conn: Connection, codes: list[str]) -> dict[str, str]:
    """Team member code -> role (grid_worker, volunteer, micro_fire_crew, ...)."""
    return dict(conn.execute(text("SELECT code, role FROM team_members WHERE code = ANY(:c)"), {"c": codes}).all())


def grids(conn: Connection) -> list[RowMapping]:
    """The current grids: code, community, street, district and the polygon as WKB (EPSG:4326)."""
    return list(conn.execute(text("""
        SELECT g.code, g.parent_code AS community_code, c.parent_code AS street_code, s.parent_code AS district_code,
               ST_AsBinary(g.geom) AS wkb
        FROM areas g LEFT JOIN areas c ON c.code = g.parent_code AND c.valid_to IS NULL
             LEFT JOIN areas s ON s.code = c.parent_code AND s.valid_to IS NULL
        WHERE g.level = 'grid' AND g.valid_to IS NULL ORDER BY g.code""")).mappings())


def first_rungs(conn: Connection) -> dict[str, tuple[int, str]]:
    """Per category, the first rung's time limit (minutes) and handler: the target of the first response."""
    rows = conn.execute(text("SELECT category, time_limit_min, name FROM escalation_ladders WHERE rung = 0"))
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def rungs(conn: Connection) -> dict[tuple[str, int], tuple[int, str, bool]]:
    """(category, rung) -> (time limit in minutes, handler, auto_escalate)."""
    rows = conn.execute(text("SELECT category, rung, time_limit_min, name, auto_escalate FROM escalation_ladders"))
    return {(r[0], int(r[1])): (int(r[2]), r[3], bool(r[4])) for r in rows}


def run_outcome(conn: Connection, since: dt.datetime) -> pd.DataFrame:
    """Every event reported since ``since``: status, rung, milestones, its team and near-duplicate link, and the
    count of its assignments by outcome (what the study measures, read like any other data)."""
    rows = conn.execute(text("""
        SELECT e.id, e.external_id, e.channel, e.category, e.severity, e.grid_code, e.status, e.escalation_rung,
               e.duplicate_of, e.reported_at, e.dispatched_at, e.accepted_at, e.on_site_at, e.resolved_at, e.closed_at,
               e.due_at, t.code AS team,
               (SELECT count(*) FROM assignments a WHERE a.event_id = e.id) AS offers,
               (SELECT count(*) FROM assignments a WHERE a.event_id = e.id AND a.status = 'declined') AS declines,
               (SELECT count(*) FROM assignments a WHERE a.event_id = e.id AND a.status = 'timeout') AS timeouts
        FROM events e LEFT JOIN teams t ON t.id = e.team_id
        WHERE e.reported_at >= :since ORDER BY e.id"""), {"since": since}).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def assignments_since(conn: Connection, since: dt.datetime) -> pd.DataFrame:
    """Every assignment offered since ``since``: team, event, status, the ETA and road distance it promised."""
    rows = conn.execute(text("""
        SELECT a.id, a.event_id, t.code AS team, a.status, a.rank, a.eta_s, a.distance_m, a.offered_at,
               a.responded_at
        FROM assignments a JOIN teams t ON t.id = a.team_id WHERE a.offered_at >= :since ORDER BY a.id"""),
                        {"since": since}).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])
