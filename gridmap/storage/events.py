"""SQL of ``events`` and what belongs to each: its category, reporter (personal data), audit trail
(``event_transitions``), status and milestones; intake (placement, near-duplicates) and the reads of the
API, the map and the planners.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction. The intake's
and dispatch's hot statements run on the psycopg connection under it (:func:`_raw`), same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Connection, RowMapping, text

from gridmap.errors import InvalidInput, NotFound
from gridmap.storage import assignments, scopes
from gridmap.storage._filters import (
    _AREA,
    _ENVELOPE,
    OPEN_STATUSES,
    AreaFilter,
    _bbox,
    _frame,
    _postgis_frame,
    _q,
    _sql_where,
    _street_events,
    _time_conds,
    _where,
)
from gridmap.storage._rows import one
from gridmap.storage.db import driver_connection

EVENT_COLUMNS = """
    e.id, e.code, e.channel, e.external_id, e.category, e.severity, e.title, e.description, e.status,
    e.reported_at, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.location_source, e.address, e.place_code,
    e.street_code, e.community_code, e.grid_code, e.grid_area_id, b.code AS building_code,
    e.team_id, t.code AS team_code, e.duplicate_of, d.code AS duplicate_of_code,
    e.dispatched_at, e.accepted_at, e.on_site_at, e.resolved_at, e.closed_at, e.created_at,
    e.escalation_rung, e.rung_started_at, e.due_at, l.level AS rung_level, l.name AS rung_name,
    l.name_zh AS rung_name_zh, e.intake_sha256, e.unit_code, e.outcome"""


EVENT_FROM = """
    FROM events e
    LEFT JOIN buildings b ON b.id = e.building_id
    LEFT JOIN teams t ON t.id = e.team_id
    LEFT JOIN events d ON d.id = e.duplicate_of
    LEFT JOIN escalation_ladders l ON l.category = e.category AND l.rung = e.escalation_rung"""


# -- who is acting (read by the audit trigger on events) ----------------------------------------------------
def set_actor(conn: Connection, *, actor: str, role: str | None, action: str | None = None, note: str | None = None,
              lon: float | None = None, lat: float | None = None, at: dt.datetime | None = None) -> None:
    """Transaction-local settings the status-audit trigger records with every status change."""
    conn.execute(text(
        "SELECT set_config('gridmap.actor', :actor, true), set_config('gridmap.role', :role, true), "
        "set_config('gridmap.action', :action, true), set_config('gridmap.note', :note, true), "
        "set_config('gridmap.lon', :lon, true), set_config('gridmap.lat', :lat, true), "
        "set_config('gridmap.at', :at, true)"),
        {"actor": actor, "role": role or "", "action": action or "", "note": note or "",
         "lon": "" if lon is None else repr(float(lon)), "lat": "" if lat is None else repr(float(lat)),
         "at": "" if at is None else at.isoformat()})


def set_action(conn: Connection, action: str) -> None:
    conn.execute(text("SELECT set_config('gridmap.action', :a, true)"), {"a": action})


# -- intake -------------------------------------------------------------------------------------------------
def category(conn: Connection, code: str) -> RowMapping | None:
    return conn.execute(text("SELECT code, name, name_zh, skills, default_severity FROM event_categories "
                             "WHERE code = :c"), {"c": code}).mappings().first()


def category_codes(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT code FROM event_categories ORDER BY code")).scalars())


def categories(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(text("SELECT code, name, name_zh, default_severity FROM event_categories ORDER BY code"))
                .mappings())


def category_skills(conn: Connection) -> dict[str, list[str]]:
    return {code: list(skills) for code, skills in _q(conn, "SELECT code, skills FROM event_categories")}


def _raw(conn: Connection) -> psycopg.Connection:
    """The psycopg connection under ``conn``, in the same transaction. The intake statements run on it
    directly: SQLAlchemy's statement layer costs ~0.1-0.2 ms of CPU per call with thirty parameters, which is
    a tenth of an intake's CPU."""
    return driver_connection(conn)


def _near(lat: float, radius_m: float) -> tuple[float, float]:
    """Degrees of longitude and latitude that ``radius_m`` around latitude ``lat`` spans at most: the
    shortest degree of latitude on the ellipsoid, the degree of longitude at the edge nearest the pole,
    and 1 % to spare. A box of these half-sides always covers the circle."""
    dlat = radius_m / 110_574.0 * 1.01
    edge = min(abs(lat) + dlat, 89.0)
    return radius_m / (111_319.0 * math.cos(math.radians(edge))) * 1.01, dlat


def intake_context(conn: Connection, *, channel: str, external_id: str, category: str, lon: float | None,
                   lat: float | None, at: dt.datetime, dedup_radius_m: float = 0.0) -> dict[str, Any]:
    """In one round trip: an event with this (channel, external id), the category and its first rung, and
    the grid (version valid at ``at``) containing (lon, lat); and the near-duplicate locks of ``category``
    around (lon, lat) (:func:`dedup_cells`, held until the transaction ends)."""
    cells = dedup_cells(lon, lat, dedup_radius_m) if lon is not None and lat is not None else []
    with _raw(conn).cursor(row_factory=dict_row) as cur:
        return one(cur.execute("""
        SELECT x.id AS existing_id, x.intake_sha256 AS existing_sha256, c.code AS category,
               c.default_severity, l.level AS rung_level, l.name AS rung_name, l.name_zh AS rung_name_zh,
               l.time_limit_min, l.rung, l.unit_kind, l.unit_code, g.grid_area_id, g.grid_code, g.community_code,
               g.street_code
        FROM (SELECT 1) one
        LEFT JOIN events x ON x.channel = %(ch)s AND x.external_id = %(x)s
        LEFT JOIN event_categories c ON c.code = %(cat)s
        LEFT JOIN escalation_ladders l ON l.category = %(cat)s AND l.rung = 0
        LEFT JOIN LATERAL (
            SELECT g.id AS grid_area_id, g.code AS grid_code, g.parent_code AS community_code,
                   c2.parent_code AS street_code
            FROM areas g
            LEFT JOIN areas c2 ON c2.code = g.parent_code AND c2.level = 'community'
                 AND c2.valid_from <= %(at)s AND (c2.valid_to IS NULL OR %(at)s < c2.valid_to)
            WHERE CAST(%(lon)s AS float8) IS NOT NULL AND g.level = 'grid' AND g.valid_from <= %(at)s
              AND (g.valid_to IS NULL OR %(at)s < g.valid_to)
              AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
            ORDER BY g.code LIMIT 1) g ON true
        CROSS JOIN LATERAL (  -- in ascending key order: two intakes never wait for each other in a cycle
            SELECT count(pg_advisory_xact_lock(k)) AS locks
            FROM (SELECT DISTINCT hashtextextended('gridmap.intake.' || CAST(%(cat)s AS text) || '.' || cell, 0)
                         AS k
                  FROM unnest(CAST(%(cells)s AS text[])) AS cell ORDER BY 1) keys) lk""",
            {"ch": channel, "x": external_id, "cat": category, "lon": lon, "lat": lat, "at": at, "cells": cells},
            prepare=True))


def insert_reported(conn: Connection, v: dict[str, Any], *, radius_m: float,
                    window: dt.timedelta) -> dict[str, Any] | None:
    """In one statement: link to the earliest open near-duplicate (same category, within ``radius_m`` and
    ``window``), insert the event, its reporter and its audit rows (report; link_duplicate).

    Returns (id, code, duplicate id/code/reported_at/distance_m), or None if (channel, external id) exists.
    Take the near-duplicate locks first (:func:`intake_context`, an earlier statement of the same
    transaction), so that concurrent reports that could be near-duplicates see each other.
    """
    dx, dy = _near(v["lat"], radius_m)
    with _raw(conn).cursor(row_factory=dict_row) as cur:
        return cur.execute(f"""
        WITH d AS (
            SELECT e.id, e.code, e.reported_at,
                   ST_Distance(e.geom::geography,
                               ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) AS distance_m
            FROM events e
            WHERE e.category = %(category)s AND e.status IN {OPEN_STATUSES}
              AND e.duplicate_of IS NULL AND e.reported_at BETWEEN %(t0)s AND %(t1)s
              AND e.geom && ST_Expand(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(dx)s, %(dy)s)
              AND ST_DWithin(e.geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography,
                             %(r)s)
            ORDER BY e.reported_at, e.id LIMIT 1),
        n AS (SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id),
        ins AS (
            INSERT INTO events (id, code, channel, external_id, category, severity, title, description, reported_at,
                                street_code, community_code, grid_code, grid_area_id, building_id, status, geom,
                                duplicate_of, location_source, address, place_code, escalation_rung,
                                rung_started_at, due_at, intake_sha256)
            SELECT n.id, 'EV' || lpad(n.id::text, 8, '0'), %(channel)s, %(external_id)s, %(category)s,
                   %(severity)s, %(title)s, %(description)s, %(reported_at)s, %(street_code)s, %(community_code)s,
                   %(grid_code)s, %(grid_area_id)s, %(building_id)s, 'reported',
                   ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), (SELECT id FROM d),
                   %(location_source)s, %(address)s, %(place_code)s, 0, %(reported_at)s,
                   CASE WHEN EXISTS (SELECT 1 FROM d) THEN NULL ELSE CAST(%(due_at)s AS timestamptz) END,
                   %(intake_sha256)s
            FROM n
            ON CONFLICT (channel, external_id) DO NOTHING
            RETURNING id, code, duplicate_of),
        rep AS (
            INSERT INTO event_reporters (event_id, name, phone)
            SELECT ins.id, %(reporter_name)s, %(reporter_phone)s FROM ins
            WHERE CAST(%(reporter_name)s AS text) IS NOT NULL OR CAST(%(reporter_phone)s AS text) IS NOT NULL),
        trail AS (
            INSERT INTO event_transitions (event_id, at, action, from_status, to_status, rung, actor, actor_role,
                                           note, geom, detail)
            SELECT ins.id, %(reported_at)s, 'report', NULL, 'reported', 0, %(actor)s, %(role)s,
                   'via ' || %(channel)s,
                   ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326),
                   jsonb_build_object('external_id', CAST(%(external_id)s AS text),
                                      'location_source', CAST(%(location_source)s AS text),
                                      'auto_dispatch', CAST(%(auto_dispatch)s AS boolean))
            FROM ins
            UNION ALL
            SELECT ins.id, %(reported_at)s, 'link_duplicate', 'reported', 'reported', 0, 'system', NULL,
                   format('near-duplicate of %%s (%%s m, %%s min apart): not dispatched', d.code,
                          round(d.distance_m::numeric, 1),
                          round((abs(extract(epoch FROM CAST(%(reported_at)s AS timestamptz) - d.reported_at)) / 60)::numeric, 1)),
                   NULL, jsonb_build_object('id', d.id, 'code', d.code, 'distance_m', round(d.distance_m::numeric, 1))
            FROM ins JOIN d ON true)
        SELECT ins.id, ins.code, d.id AS dup_id, d.code AS dup_code, d.reported_at AS dup_reported_at,
               d.distance_m AS dup_distance_m
        FROM ins LEFT JOIN d ON true""",
            {**v, "t0": v["reported_at"] - window, "t1": v["reported_at"] + window, "dx": dx, "dy": dy,
             "r": radius_m}, prepare=True).fetchone()


def warm(conn: Connection, times: int = 6) -> None:
    """Run the statements of intake and dispatch on a fresh connection without changing anything: PostGIS
    loads in the backend, the catalog entries of their tables are read, and the statements are prepared and
    planned (PostgreSQL plans a prepared statement afresh for its first five runs)."""
    row = conn.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) AS c FROM areas "
                            "WHERE level = 'grid' ORDER BY code LIMIT 1) g")).first()
    lon, lat = (row[0], row[1]) if row is not None else (0.0, 0.0)
    at = dt.datetime.now(dt.UTC)
    for _ in range(times):
        intake_context(conn, channel="", external_id="", category="", lon=lon, lat=lat, at=at)
        event_for_dispatch(conn, 0)
        assignments.dispatch_state(conn, 0)
        assignments.offer(conn, team="", event_id=0, rank=0, eta_s=0.0, distance_m=0.0, method="", explanation={},
                          route=None, respond_by=at, now=at)  # no team "" : nothing is written
    conn.execute(text(
        "SELECT count(*) FROM events e WHERE e.category = '' AND e.reported_at BETWEEN :at AND :at "
        "AND ST_DWithin(e.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 1)"),
        {"lon": lon, "lat": lat, "at": at})
    event(conn, 0)
    assignments.active_assignment(conn, 0)


#: the side of a near-duplicate lock cell, in degrees (~500 m at Hangzhou)
DEDUP_CELL_DEG = 0.005


def dedup_cells(lon: float, lat: float, radius_m: float) -> list[str]:
    """The lock cells (a ``DEDUP_CELL_DEG`` lon/lat grid) that the square around (lon, lat) with half-side
    ``radius_m`` touches.

    Two reports less than ``radius_m`` apart always share a cell: the second one's cell lies in the first
    one's square. So intakes of one category that could be near-duplicates of each other queue on a common
    lock, and the others (another part of town) do not wait at all. The square is :func:`_near`'s box.
    """
    dlon, dlat = _near(lat, radius_m)
    xs = range(math.floor((lon - dlon) / DEDUP_CELL_DEG), math.floor((lon + dlon) / DEDUP_CELL_DEG) + 1)
    ys = range(math.floor((lat - dlat) / DEDUP_CELL_DEG), math.floor((lat + dlat) / DEDUP_CELL_DEG) + 1)
    return [f"{x}:{y}" for x in xs for y in ys]


def reporter(conn: Connection, event_id: int) -> RowMapping | None:
    return conn.execute(text("SELECT name, phone FROM event_reporters WHERE event_id = :e"),
                        {"e": event_id}).mappings().first()


def reporter_names(conn: Connection, event_ids: Sequence[int]) -> dict[int, str]:
    """The reporters' names of these events, to blank them in free text (never shown, so not a logged read)."""
    ids = sorted({int(i) for i in event_ids if i is not None})
    if not ids:
        return {}
    rows = conn.execute(text("SELECT event_id, name FROM event_reporters WHERE event_id = ANY(:ids) "
                             "AND name IS NOT NULL"), {"ids": ids})
    return {r[0]: r[1] for r in rows}


def insert_transition(conn: Connection, *, event_id: int, at: dt.datetime, action: str, from_status: str | None,
                      to_status: str | None, rung: int | None, actor: str, role: str | None, note: str | None,
                      lon: float | None = None, lat: float | None = None, detail: dict | None = None) -> None:
    """An audit row that is not a status change (report, duplicate link, escalation, hand-up)."""
    conn.execute(text("""
        INSERT INTO event_transitions (event_id, at, action, from_status, to_status, rung, actor, actor_role, note,
                                       geom, detail)
        VALUES (:e, :at, :action, :fs, :ts, :rung, :actor, :role, :note,
                CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                     ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, CAST(:detail AS jsonb))"""),
        {"e": event_id, "at": at, "action": action, "fs": from_status, "ts": to_status, "rung": rung,
         "actor": actor, "role": role, "note": note, "lon": lon, "lat": lat,
         "detail": None if detail is None else json.dumps(detail, ensure_ascii=False, default=str)})


# -- reading events -----------------------------------------------------------------------------------------
def event(conn: Connection, event_id: int, *, lock: bool = False) -> RowMapping | None:
    q = f"SELECT {EVENT_COLUMNS} {EVENT_FROM} WHERE e.id = :id"
    if lock:
        q += " FOR UPDATE OF e"
    return conn.execute(text(q), {"id": event_id}).mappings().first()


def locked_event(conn: Connection, event_id: int, *, fix: str = "check the id") -> RowMapping:
    """The event, locked for this transaction (FOR UPDATE); NotFound (404 naming ``event_id``) if there is none."""
    ev = event(conn, event_id, lock=True)
    if ev is None:
        raise NotFound(f"no event {event_id}", field="event_id", fix=fix)
    return ev


def events(conn: Connection, *, where: Sequence[str], params: dict, limit: int, offset: int) -> list[RowMapping]:
    q = f"SELECT {EVENT_COLUMNS} {EVENT_FROM}"
    if where:
        q += " WHERE " + " AND ".join(f"({w})" for w in where)
    q += " ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit OFFSET :offset"
    return list(conn.execute(text(q), {**params, "limit": limit, "offset": offset}).mappings())


def transitions(conn: Connection, event_id: int) -> list[RowMapping]:
    return list(conn.execute(text(
        "SELECT id, at, action, from_status, to_status, rung, actor, actor_role, note, ST_X(geom) AS lon, "
        "ST_Y(geom) AS lat, detail FROM event_transitions WHERE event_id = :e ORDER BY at, id"),
        {"e": event_id}).mappings())


def event_for_dispatch(conn: Connection, event_id: int) -> tuple | None:
    """(id, lon, lat, category, severity, grid_code, status), locking the event row (a hot statement of dispatch:
    prepared, on the psycopg connection under ``conn``)."""
    return _raw(conn).execute(
        "SELECT id, ST_X(geom), ST_Y(geom), category, severity, grid_code, status FROM events WHERE id = %s FOR UPDATE",
        (event_id,), prepare=True,
    ).fetchone()


def set_status(conn: Connection, event_id: int, status: str, at: dt.datetime) -> None:
    """The one way an event's status is written: the status and the milestone it reaches (``reported``: none)."""
    column = {"dispatched": "dispatched_at", "accepted": "accepted_at", "on_site": "on_site_at",
              "resolved": "resolved_at", "closed": "closed_at", "reported": None}[status]
    stamp = f", {column} = :at" if column else ""
    conn.execute(text(f"UPDATE events SET status = :s{stamp} WHERE id = :id"), {"s": status, "at": at, "id": event_id})


def reopen(conn: Connection, event_id: int, at: dt.datetime, due_at: dt.datetime | None) -> None:
    """Back to reported: milestones after the report are cleared (they are kept in the audit trail)."""
    conn.execute(text(
        "UPDATE events SET status = 'reported', dispatched_at = NULL, accepted_at = NULL, on_site_at = NULL, "
        "resolved_at = NULL, closed_at = NULL, rung_started_at = :at, due_at = :due WHERE id = :id"),
        {"at": at, "due": due_at, "id": event_id})


def close_duplicates(conn: Connection, master_id: int, at: dt.datetime) -> int:
    return conn.execute(text(
        "UPDATE events SET status = 'closed', closed_at = :at WHERE duplicate_of = :m AND status <> 'closed'"),
        {"m": master_id, "at": at}).rowcount


def place_events(conn: Connection) -> int:
    """Place events without a grid version in the grid valid when each was reported."""
    cur = _q(conn, """
        UPDATE events e SET grid_area_id = g.id, grid_code = g.code,
          community_code = COALESCE(e.community_code, g.parent_code)
        FROM areas g
        WHERE e.grid_area_id IS NULL AND g.level = 'grid'
          AND g.valid_from <= e.reported_at AND (g.valid_to IS NULL OR e.reported_at < g.valid_to)
          AND ST_Intersects(g.geom, e.geom)""")
    return cur.rowcount


def events_in_view(conn: Connection, bbox: tuple[float, float, float, float] | None, *, now: dt.datetime, resolved_since: dt.datetime,
           limit: int, street: str | None = None) -> pd.DataFrame:
    """Open events (and those resolved since ``resolved_since``, not yet closed) reported by ``now`` (in
    ``street``, if given). No reporter and no free text: the title only."""
    cur = _q(conn,
        f"""SELECT e.id, e.code, e.channel, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                   e.reported_at, e.dispatched_at, e.on_site_at, e.grid_code, t.code AS team,
                   ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
            FROM events e LEFT JOIN teams t ON t.id = e.team_id
            LEFT JOIN event_categories c ON c.code = e.category
            WHERE e.geom && {_ENVELOPE} AND e.reported_at <= :now
              AND (e.status IN {OPEN_STATUSES} OR (e.status = 'resolved' AND e.resolved_at >= :since))
              AND (CAST(:street AS text) IS NULL OR {scopes.events("e.", _AREA)})
            ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit""",
        _bbox(bbox) | {"now": now, "since": resolved_since, "limit": limit, "street": street})
    return _frame(cur)


def event_card(conn: Connection, event_id: int, street: str | None = None) -> dict | None:
    """One event for the map's drill-down. Never the reporter (``event_reporters``) nor the free-text
    description, where callers write names and phone numbers: the title only."""
    cur = _q(conn,
        f"""SELECT e.id, e.code, e.channel, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                  e.reported_at, e.dispatched_at, e.accepted_at, e.on_site_at, e.resolved_at,
                  e.closed_at, e.grid_code, e.community_code, t.code AS team, t.name AS team_name,
                  ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
           FROM events e LEFT JOIN teams t ON t.id = e.team_id LEFT JOIN event_categories c ON c.code = e.category
           WHERE e.id = :id AND (CAST(:street AS text) IS NULL OR {scopes.events("e.", _AREA)})""",
        {"id": event_id, "street": street})
    row = cur.mappings().first()
    return None if row is None else dict(row)


def open_events(conn: Connection, street: str | None, *, now: dt.datetime, limit: int,
                unplaced: bool = True) -> pd.DataFrame:
    """Open events of ``street`` (all streets if None), oldest first; ``unplaced``: with those of no street."""
    cur = _q(conn,
        f"""SELECT e.id, e.code, e.category, c.name_zh AS category_zh, e.severity, e.status, e.title,
                   e.reported_at, e.dispatched_at, e.on_site_at, e.grid_code, t.code AS team
            FROM events e LEFT JOIN teams t ON t.id = e.team_id LEFT JOIN event_categories c ON c.code = e.category
            WHERE e.status IN {OPEN_STATUSES} AND e.reported_at <= :now AND {_street_events(street, unplaced, "e.")}
            ORDER BY e.reported_at, e.id LIMIT :limit""",
        {"now": now, "street": street, "limit": limit})
    return _frame(cur)


def latest_activity(conn: Connection) -> dt.datetime | None:
    """The latest time anything happened (an event reported or a team position): the sample's 'now'."""
    return _q(conn, "SELECT GREATEST((SELECT max(reported_at) FROM events), "
                    "(SELECT max(position_at) FROM teams))").scalar_one()


#: The columns :func:`events_frame` may read (no free text, no reporter).
FRAME_COLUMNS = ("id", "code", "channel", "category", "severity", "reported_at", "street_code", "community_code",
                 "grid_code", "building_id", "team_id", "status", "dispatched_at", "accepted_at", "on_site_at",
                 "resolved_at", "closed_at")


def events_frame(conn: Connection, flt: AreaFilter, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
           categories: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Events reported in [start, end), of the given categories, inside the area/bbox (points)."""
    cols = list(columns or FRAME_COLUMNS)
    unknown = [c for c in cols if c not in FRAME_COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown event column(s) {', '.join(unknown)}", field="columns",
                           fix=f"choose from {', '.join(FRAME_COLUMNS)}")
    bind: dict = {}
    conds = [*_where(conn, "e", flt, bind), *_time_conds("e", start, end, bind)]
    if categories is not None:
        conds.append("e.category = ANY(:cats)")
        bind["cats"] = list(categories)
    sel = ", ".join(f"e.{c}" for c in cols)
    q = f"SELECT {sel}, ST_AsBinary(e.geom) AS geom FROM events e{_sql_where(conds)} ORDER BY e.id"
    return _postgis_frame(conn, q, bind)


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
