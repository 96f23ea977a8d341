"""SQL for the events API: intake (placement, near-duplicates, idempotency), the lifecycle and its audit
trail, escalation ladders, the volunteer's feed and the metrics.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Connection, RowMapping, text

from gridmap.storage import dispatch_sql, scopes
from gridmap.storage._rows import one
from gridmap.storage.db import driver_connection

OPEN = ("reported", "dispatched", "accepted", "on_site")

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


def building_location(conn: Connection, *, code: str | None = None, address: str | None = None) -> RowMapping | None:
    """A building by code or exact address: its id, address and a point on it (lon/lat)."""
    where = "code = :v" if code is not None else "address = :v"
    return conn.execute(text(
        "SELECT id, code, name, address, ST_X(p) AS lon, ST_Y(p) AS lat "
        f"FROM (SELECT *, ST_PointOnSurface(geom) AS p FROM buildings WHERE {where}) s LIMIT 1"),
        {"v": code if code is not None else address}).mappings().first()


def place_location(conn: Connection, code: str) -> RowMapping | None:
    """What a place's QR code (余安码) stands for: a business (shop, school, ...) or a building."""
    row = conn.execute(text(
        "SELECT 'business' AS kind, s.code, s.name, s.kind AS place_kind, s.address, s.building_id, "
        "b.code AS building_code, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat "
        "FROM businesses s LEFT JOIN buildings b ON b.id = s.building_id WHERE s.code = :c"),
        {"c": code}).mappings().first()
    if row is not None:
        return row
    return conn.execute(text(
        "SELECT 'building' AS kind, b.code, b.name, b.use AS place_kind, b.address, b.id AS building_id, "
        "b.code AS building_code, "
        "ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat "
        "FROM buildings b WHERE b.code = :c"), {"c": code}).mappings().first()


def place_point(conn: Connection, lon: float, lat: float, at: dt.datetime) -> RowMapping | None:
    """The grid (version valid at ``at``) containing the point, with its community and street."""
    return conn.execute(text("""
        SELECT g.id AS grid_area_id, g.code AS grid_code, g.parent_code AS community_code,
               c.parent_code AS street_code
        FROM areas g
        LEFT JOIN areas c ON c.code = g.parent_code AND c.level = 'community'
             AND c.valid_from <= :at AND (c.valid_to IS NULL OR :at < c.valid_to)
        WHERE g.level = 'grid' AND g.valid_from <= :at AND (g.valid_to IS NULL OR :at < g.valid_to)
          AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY g.code LIMIT 1"""), {"lon": lon, "lat": lat, "at": at}).mappings().first()


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
        return cur.execute("""
        WITH d AS (
            SELECT e.id, e.code, e.reported_at,
                   ST_Distance(e.geom::geography,
                               ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) AS distance_m
            FROM events e
            WHERE e.category = %(category)s AND e.status IN ('reported', 'dispatched', 'accepted', 'on_site')
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
    raw = _raw(conn)
    for _ in range(times):
        intake_context(conn, channel="", external_id="", category="", lon=lon, lat=lat, at=at)
        dispatch_sql.event_for_dispatch(raw, 0)
        dispatch_sql.dispatch_state(raw, 0)
        dispatch_sql.offer(raw, team="", event_id=0, rank=0, eta_s=0.0, distance_m=0.0, method="", explanation={},
                           route=None, respond_by=at, now=at)  # no team "" : nothing is written
    conn.execute(text(
        "SELECT count(*) FROM events e WHERE e.category = '' AND e.reported_at BETWEEN :at AND :at "
        "AND ST_DWithin(e.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 1)"),
        {"lon": lon, "lat": lat, "at": at})
    event(conn, 0)
    active_assignment(conn, 0)


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


def events(conn: Connection, *, where: Sequence[str], params: dict, limit: int, offset: int) -> list[RowMapping]:
    q = f"SELECT {EVENT_COLUMNS} {EVENT_FROM}"
    if where:
        q += " WHERE " + " AND ".join(f"({w})" for w in where)
    q += " ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit OFFSET :offset"
    return list(conn.execute(text(q), {**params, "limit": limit, "offset": offset}).mappings())


def team_ever_assigned(conn: Connection, event_id: int, team_id: int) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM assignments WHERE event_id = :e AND team_id = :t)"),
                        {"e": event_id, "t": team_id}).scalar_one()


def transitions(conn: Connection, event_id: int) -> list[RowMapping]:
    return list(conn.execute(text(
        "SELECT id, at, action, from_status, to_status, rung, actor, actor_role, note, ST_X(geom) AS lon, "
        "ST_Y(geom) AS lat, detail FROM event_transitions WHERE event_id = :e ORDER BY at, id"),
        {"e": event_id}).mappings())


def set_status(conn: Connection, event_id: int, status: str, at: dt.datetime) -> None:
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


# -- assignments --------------------------------------------------------------------------------------------
ASSIGNMENT_COLUMNS = """
    a.id, a.event_id, a.team_id, t.code AS team_code, a.status, a.rank, a.eta_s, a.distance_m, a.method,
    a.offered_at, a.respond_by, a.responded_at, ST_AsGeoJSON(a.route, 6) AS route_geojson,
    e.code AS event_code, e.category, e.severity, e.title, e.status AS event_status, e.reported_at,
    ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.address, e.grid_code"""
ASSIGNMENT_FROM = "FROM assignments a JOIN teams t ON t.id = a.team_id JOIN events e ON e.id = a.event_id"


def assignment(conn: Connection, assignment_id: int, *, lock: bool = False) -> RowMapping | None:
    q = f"SELECT {ASSIGNMENT_COLUMNS} {ASSIGNMENT_FROM} WHERE a.id = :id"
    if lock:
        q += " FOR UPDATE OF a"
    return conn.execute(text(q), {"id": assignment_id}).mappings().first()


def team_assignments(conn: Connection, team_id: int, statuses: Sequence[str], limit: int) -> list[RowMapping]:
    return list(conn.execute(text(
        f"SELECT {ASSIGNMENT_COLUMNS} {ASSIGNMENT_FROM} WHERE a.team_id = :t AND a.status = ANY(:s) "
        "ORDER BY a.offered_at DESC, a.id DESC LIMIT :n"), {"t": team_id, "s": list(statuses), "n": limit}).mappings())


def active_assignment(conn: Connection, event_id: int) -> RowMapping | None:
    return conn.execute(text(
        "SELECT a.id, a.team_id, t.code AS team_code, a.status FROM assignments a JOIN teams t ON t.id = a.team_id "
        "WHERE a.event_id = :e AND a.status IN ('offered', 'accepted') FOR UPDATE OF a"), {"e": event_id}).mappings().first()


def close_assignment(conn: Connection, assignment_id: int, status: str, at: dt.datetime) -> None:
    conn.execute(text("UPDATE assignments SET status = :s, responded_at = COALESCE(responded_at, :at) WHERE id = :id"),
                 {"s": status, "at": at, "id": assignment_id})


def set_team_status(conn: Connection, team_id: int, status: str) -> None:
    conn.execute(text("UPDATE teams SET status = :s WHERE id = :id"), {"s": status, "id": team_id})


def team(conn: Connection, code: str) -> RowMapping | None:
    """A team with the street of its home grid."""
    return conn.execute(text("""
        SELECT t.id, t.code, t.name, t.kind, t.status, t.skills, t.home_grid_code, t.position_at,
               ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, c.parent_code AS street_code, c.code AS community_code
        FROM teams t
        LEFT JOIN areas g ON g.code = t.home_grid_code AND g.level = 'grid' AND g.valid_to IS NULL
        LEFT JOIN areas c ON c.code = g.parent_code AND c.level = 'community' AND c.valid_to IS NULL
        WHERE t.code = :c"""), {"c": code}).mappings().first()


def teams_in_street(conn: Connection, street: str | None, codes: Sequence[str] | None = None) -> list[RowMapping]:
    """Teams (with the street and community of their home grid) of area ``street`` (a district, street or
    community: :func:`gridmap.storage.scopes.teams`), or of every area when it is None."""
    q = f"""
        SELECT t.id, t.code, t.name, t.kind, t.status, t.skills, t.home_grid_code, t.position_at,
               ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, c.parent_code AS street_code, c.code AS community_code
        FROM teams t
        LEFT JOIN areas g ON g.code = t.home_grid_code AND g.level = 'grid' AND g.valid_to IS NULL
        LEFT JOIN areas c ON c.code = g.parent_code AND c.level = 'community' AND c.valid_to IS NULL
        WHERE {scopes.unconfined_or(':street', scopes.teams('t.', ':street'))}"""
    params: dict[str, Any] = {"street": street}
    if codes is not None:
        q += " AND t.code = ANY(:codes)"
        params["codes"] = list(codes)
    return list(conn.execute(text(q + " ORDER BY t.code"), params).mappings())


def current_streets(conn: Connection) -> list[RowMapping]:
    """The current street polygons (code, WKB in EPSG:4326): the managed area."""
    return list(conn.execute(text(
        "SELECT code, ST_AsBinary(geom) AS wkb FROM areas WHERE level = 'street' AND valid_to IS NULL ORDER BY code"
    )).mappings())


def free_idle_busy_teams(conn: Connection) -> int:
    """Teams marked assigned or on site that hold no active (offered/accepted) assignment: make them available."""
    return conn.execute(text("""
        UPDATE teams t SET status = 'available'
        WHERE t.status IN ('assigned', 'on_site')
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN ('offered', 'accepted'))
        """)).rowcount


def busy_teams_without_assignment(conn: Connection) -> list[str]:
    """Codes of teams marked assigned or on site that hold no active assignment (never any, if consistent)."""
    return list(conn.execute(text("""
        SELECT t.code FROM teams t WHERE t.status IN ('assigned', 'on_site')
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN ('offered', 'accepted'))
        ORDER BY t.code""")).scalars())


def restamp_on_duty_positions(conn: Connection, now: dt.datetime) -> int:
    """The last position of every on-duty team, as reported again at ``now`` (never moved backwards)."""
    return conn.execute(text("""
        UPDATE teams SET position_at = :now
        WHERE status <> 'off_duty' AND geom IS NOT NULL AND (position_at IS NULL OR position_at < :now)
        """), {"now": now}).rowcount


# -- escalation ---------------------------------------------------------------------------------------------
RUNG_COLUMNS = "category, rung, level, name, name_zh, time_limit_min, auto_escalate, unit_kind, unit_code"


def rung(conn: Connection, category: str, rung_no: int) -> RowMapping | None:
    return conn.execute(text(
        f"SELECT {RUNG_COLUMNS} FROM escalation_ladders "
        "WHERE category = :c AND rung = :r"), {"c": category, "r": rung_no}).mappings().first()


def ladders(conn: Connection, category: str | None = None) -> list[RowMapping]:
    return list(conn.execute(text(
        f"SELECT {RUNG_COLUMNS} FROM escalation_ladders "
        "WHERE CAST(:c AS text) IS NULL OR category = :c ORDER BY category, rung"), {"c": category}).mappings())


def replace_ladders(conn: Connection, rows: list[dict]) -> int:
    conn.execute(text("DELETE FROM escalation_ladders"))
    if rows:
        conn.execute(text(
            f"INSERT INTO escalation_ladders ({RUNG_COLUMNS}) "
            "VALUES (:category, :rung, :level, :name, :name_zh, :time_limit_min, :auto_escalate, :unit_kind, "
            ":unit_code)"), [{"unit_kind": None, "unit_code": None, **r} for r in rows])
    return len(rows)


def set_rung(conn: Connection, event_id: int, rung_no: int, at: dt.datetime, due_at: dt.datetime | None) -> None:
    conn.execute(text("UPDATE events SET escalation_rung = :r, rung_started_at = :at, due_at = :due WHERE id = :id"),
                 {"r": rung_no, "at": at, "due": due_at, "id": event_id})


def overdue_to_escalate(conn: Connection, now: dt.datetime, limit: int, street: str | None = None) -> list[int]:
    """Open events past their rung's limit, whose rung escalates automatically and has a rung above it (of one
    street, or of all when ``street`` is None)."""
    return list(conn.execute(text(f"""
        SELECT e.id FROM events e
        JOIN escalation_ladders l ON l.category = e.category AND l.rung = e.escalation_rung AND l.auto_escalate
        WHERE e.status IN ('reported', 'dispatched', 'accepted', 'on_site') AND e.duplicate_of IS NULL
          AND e.due_at < :now AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
          AND EXISTS (SELECT 1 FROM escalation_ladders n WHERE n.category = e.category AND n.rung = e.escalation_rung + 1)
        ORDER BY e.due_at LIMIT :n FOR UPDATE OF e SKIP LOCKED"""), {"now": now, "n": limit, "street": street}).scalars())


def waiting_events(conn: Connection, limit: int, street: str | None = None) -> list[int]:
    """Open events on the first rung, reported for automatic dispatch, that no team holds now (nobody could
    take them when they came in, or the teams declined or let the offer lapse); of one street, or all."""
    return list(conn.execute(text(f"""
        SELECT e.id FROM events e
        WHERE e.status = 'reported' AND e.duplicate_of IS NULL AND e.escalation_rung = 0
          AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.event_id = e.id AND a.status IN ('offered', 'accepted'))
          AND EXISTS (SELECT 1 FROM event_transitions t WHERE t.event_id = e.id AND t.action = 'report'
                      AND (t.detail ->> 'auto_dispatch')::boolean)
        ORDER BY e.severity DESC, e.reported_at LIMIT :n"""), {"n": limit, "street": street}).scalars())


def overdue_count(conn: Connection, now: dt.datetime, street: str | None) -> int:
    return conn.execute(text(
        "SELECT count(*) FROM events e WHERE e.status IN ('reported', 'dispatched', 'accepted', 'on_site') "
        f"AND e.duplicate_of IS NULL AND e.due_at < :now AND {scopes.unconfined_or(':s', scopes.events('e.', ':s'))}"),
        {"now": now, "s": street}).scalar_one()


# -- metrics ------------------------------------------------------------------------------------------------
def event_metrics(conn: Connection, *, key: str, period: str | None, start: dt.datetime, end: dt.datetime,
                  street: str | None, now: dt.datetime, tz: str) -> list[RowMapping]:
    """Counts, closure/resolution rates and durations (minutes) by ``key`` column and period."""
    bucket = f"date_trunc('{period}', e.reported_at AT TIME ZONE :tz)" if period else "NULL::timestamp"
    group = f"e.{key}" if key != "all" else "'all'"
    return list(conn.execute(text(f"""
        SELECT {group} AS key, {bucket} AS period,
          count(*) AS reported,
          count(*) FILTER (WHERE e.status IN ('resolved', 'closed')) AS resolved,
          count(*) FILTER (WHERE e.status = 'closed') AS closed,
          count(*) FILTER (WHERE e.status IN ('reported', 'dispatched', 'accepted', 'on_site')) AS open,
          count(*) FILTER (WHERE e.due_at IS NOT NULL AND (
              (e.status IN ('reported', 'dispatched', 'accepted', 'on_site') AND e.due_at < :now)
              OR (e.resolved_at IS NOT NULL AND e.resolved_at > e.due_at))) AS overdue,
          avg(extract(epoch FROM e.on_site_at - e.reported_at)) / 60 AS response_avg_min,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at)) / 60
            AS response_p50_min,
          percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM e.on_site_at - e.reported_at)) / 60
            AS response_p90_min,
          avg(extract(epoch FROM e.resolved_at - e.on_site_at)) / 60 AS handling_avg_min,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.resolved_at - e.on_site_at)) / 60
            AS handling_p50_min,
          avg(extract(epoch FROM e.closed_at - e.reported_at)) / 60 AS closure_avg_min
        FROM events e
        WHERE e.duplicate_of IS NULL AND e.reported_at >= :start AND e.reported_at < :end
          AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
        GROUP BY 1, 2 ORDER BY 1, 2"""), {"start": start, "end": end, "street": street, "now": now, "tz": tz}).mappings())


def overdue_by(conn: Connection, *, now: dt.datetime, street: str | None) -> list[RowMapping]:
    return list(conn.execute(text(f"""
        SELECT e.street_code, e.community_code, e.category, e.escalation_rung AS rung, count(*) AS overdue
        FROM events e
        WHERE e.status IN ('reported', 'dispatched', 'accepted', 'on_site') AND e.duplicate_of IS NULL
          AND e.due_at < :now AND {scopes.unconfined_or(':street', scopes.events('e.', ':street'))}
        GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4"""), {"now": now, "street": street}).mappings())


# -- live push ----------------------------------------------------------------------------------------------
def notifications(libpq_url: str, channel: str, stop: Any, poll_s: float = 0.5,
                  on_listen: Any = None) -> Iterator[dict]:
    """Yield the JSON payloads NOTIFYed on ``channel`` until ``stop.is_set()`` (a threading.Event).

    ``on_listen()`` is called once LISTEN is in force (nothing committed after it is missed).
    """
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {channel}")
        if on_listen is not None:
            on_listen()
        while not stop.is_set():
            for n in conn.notifies(timeout=poll_s):
                try:
                    yield json.loads(n.payload)
                except ValueError:
                    continue
                if stop.is_set():
                    return
