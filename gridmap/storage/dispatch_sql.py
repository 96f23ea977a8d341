"""SQL for dispatch: read the road graph and the live teams, record positions, claim teams, assignments.

Every function runs on the caller's psycopg connection and transaction.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import psycopg
import shapely

from gridmap.storage import scopes
from gridmap.storage._rows import one


def road_graph(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (id, lon, lat) and directed edges (id, source, target, length_m, travel_time_s, wkb) in EPSG:4326."""
    nodes = pd.DataFrame(
        conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM road_nodes ORDER BY id").fetchall(),
        columns=["id", "lon", "lat"],
    )
    edges = pd.DataFrame(
        conn.execute(
            "SELECT id, source, target, length_m, travel_time_s, ST_AsBinary(geom) FROM road_edges ORDER BY id"
        ).fetchall(),
        columns=["id", "source", "target", "length_m", "travel_time_s", "wkb"],
    )
    return nodes, edges


def teams(conn: psycopg.Connection, workload_since: dt.datetime) -> pd.DataFrame:
    """Every team with its status, skills, home grid, last position, workload (assignments since ...) and the
    grids that are its own: those its members staff, or else its home grid."""
    rows = conn.execute(
        """
        SELECT t.id, t.code, t.status, t.skills, t.home_grid_code, ST_X(t.geom), ST_Y(t.geom), t.position_at,
               (SELECT count(*) FROM assignments a WHERE a.team_id = t.id
                 AND (a.status IN ('offered', 'accepted') OR a.offered_at >= %s)) AS workload,
               COALESCE((SELECT array_agg(DISTINCT s.grid_code ORDER BY s.grid_code) FROM grid_staff s
                         JOIN team_members m ON m.id = s.member_id WHERE m.team_id = t.id),
                        CASE WHEN t.home_grid_code IS NULL THEN ARRAY[]::text[] ELSE ARRAY[t.home_grid_code] END)
        FROM teams t ORDER BY t.id""",
        (workload_since,),
    ).fetchall()
    return pd.DataFrame(rows, columns=["id", "code", "status", "skills", "grid", "lon", "lat", "position_at",
                                       "workload", "grids"])


def category_skills(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {code: list(skills) for code, skills in conn.execute("SELECT code, skills FROM event_categories")}


def equipment(conn: psycopg.Connection, kinds: tuple[str, ...]) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT code, kind, status, name, ST_X(geom), ST_Y(geom) FROM fire_equipment WHERE kind = ANY(%s) ORDER BY id",
        (list(kinds),),
    ).fetchall()
    return pd.DataFrame(rows, columns=["code", "kind", "status", "name", "lon", "lat"])


def save_positions(conn: psycopg.Connection, codes: list[str], lon: np.ndarray, lat: np.ndarray,
                   at: list[dt.datetime]) -> tuple[list[str], list[str]]:
    """Store last known positions in one statement; a report older than the stored one is ignored.

    Returns (codes updated, codes of no team). Parameters go in binary (``%b``): psycopg's text
    dumping of a 1,000-element array quotes every element (a regex each), which cost more than the
    UPDATE itself (measured in scripts/bench_positions.py). The caller rolls back if any code is unknown.
    """
    row = one(conn.execute(
        """
        WITH u AS (SELECT * FROM unnest(%b::text[], %b::float8[], %b::float8[], %b::timestamptz[])
                   AS u(code, lon, lat, at)),
        upd AS (UPDATE teams t SET geom = ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326), position_at = u.at
                FROM u WHERE t.code = u.code AND (t.position_at IS NULL OR u.at >= t.position_at)
                RETURNING t.code)
        SELECT ARRAY(SELECT code FROM upd),
               ARRAY(SELECT u.code FROM u WHERE NOT EXISTS (SELECT 1 FROM teams t WHERE t.code = u.code))""",
        (codes, np.asarray(lon, dtype=float).tolist(), np.asarray(lat, dtype=float).tolist(), at),
    ))
    return list(row[0]), list(row[1])


def known_teams(conn: psycopg.Connection, codes: list[str]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT code FROM teams WHERE code = ANY(%s)", (codes,))}


def set_team_status(conn: psycopg.Connection, code: str, status: str) -> None:
    conn.execute("UPDATE teams SET status = %s WHERE code = %s", (status, code))


def event_for_dispatch(conn: psycopg.Connection, event_id: int) -> tuple | None:
    """(id, lon, lat, category, severity, grid_code, status), locking the event row."""
    return conn.execute(
        "SELECT id, ST_X(geom), ST_Y(geom), category, severity, grid_code, status FROM events WHERE id = %s FOR UPDATE",
        (event_id,), prepare=True,
    ).fetchone()


def dispatch_state(conn: psycopg.Connection, event_id: int) -> tuple[tuple | None, set[str]]:
    """In one round trip: the event's active assignment (id, team code, status) or None, and the teams that
    declined it or let the offer lapse. Lock the event first (:func:`event_for_dispatch`, an earlier
    statement), so that this sees what a concurrent dispatch of the same event committed."""
    row = one(conn.execute(
        """
        SELECT (SELECT ARRAY[a.id::text, t.code, a.status] FROM assignments a JOIN teams t ON t.id = a.team_id
                WHERE a.event_id = %(e)s AND a.status IN ('offered', 'accepted') LIMIT 1),
               ARRAY(SELECT t.code FROM assignments a JOIN teams t ON t.id = a.team_id
                     WHERE a.event_id = %(e)s AND a.status IN ('declined', 'timeout'))""",
        {"e": event_id}, prepare=True,
    ))
    active = None if row[0] is None else (int(row[0][0]), row[0][1], row[0][2])
    return active, set(row[1])


def offer(conn: psycopg.Connection, *, team: str, event_id: int, rank: int, eta_s: float, distance_m: float,
          method: str, explanation: dict, route: shapely.LineString | None, respond_by: dt.datetime,
          now: dt.datetime) -> int | None:
    """In one statement: claim ``team``, offer it the event and mark the event dispatched to it. Returns the
    assignment's id, or None (nothing written) if the team was not free.

    The claim is a conditional update of an AVAILABLE team (row lock and re-check, so two dispatches never
    both get it); a team that still holds an open offer or accepted assignment is not free, whatever its
    status says.
    """
    row = conn.execute(
        """
        WITH c AS (
            UPDATE teams t SET status = 'assigned'
            WHERE t.code = %(team)s AND t.status = 'available' AND NOT EXISTS
                  (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN ('offered', 'accepted'))
            RETURNING t.id),
        a AS (
            INSERT INTO assignments (event_id, team_id, status, rank, eta_s, distance_m, method, explanation,
                                     offered_at, respond_by, route)
            SELECT %(event)s, c.id, 'offered', %(rank)s, %(eta)s, %(dist)s, %(method)s, %(explanation)s::jsonb,
                   %(now)s, %(respond_by)s, ST_GeomFromWKB(%(route)s, 4326)
            FROM c RETURNING id, team_id),
        e AS (
            UPDATE events SET status = 'dispatched', team_id = a.team_id, dispatched_at = %(now)s
            FROM a WHERE events.id = %(event)s RETURNING events.id)
        SELECT a.id, (SELECT count(*) FROM e) FROM a""",
        {"team": team, "event": event_id, "rank": rank, "eta": eta_s, "dist": distance_m, "method": method,
         "explanation": json.dumps(explanation, ensure_ascii=False), "now": now, "respond_by": respond_by,
         "route": None if route is None else shapely.to_wkb(route)}, prepare=True,
    ).fetchone()
    return None if row is None else row[0]


def set_event_status(conn: psycopg.Connection, event_id: int, status: str, *, at: dt.datetime,
                     team_id: int | None = None) -> None:
    column = {"dispatched": "dispatched_at", "accepted": "accepted_at", "on_site": "on_site_at",
              "resolved": "resolved_at", "closed": "closed_at", "reported": None}[status]
    stamp = f", {column} = %(at)s" if column else ""
    conn.execute(
        f"UPDATE events SET status = %(s)s, team_id = COALESCE(%(team)s, team_id){stamp} WHERE id = %(id)s",
        {"s": status, "at": at, "team": team_id, "id": event_id},
    )


def assignment(conn: psycopg.Connection, assignment_id: int) -> tuple | None:
    """(id, event_id, team code, status, respond_by), locking the row."""
    return conn.execute(
        "SELECT a.id, a.event_id, t.code, a.status, a.respond_by FROM assignments a JOIN teams t ON t.id = a.team_id "
        "WHERE a.id = %s FOR UPDATE OF a", (assignment_id,)
    ).fetchone()


def close_assignment(conn: psycopg.Connection, assignment_id: int, status: str, at: dt.datetime) -> None:
    conn.execute("UPDATE assignments SET status = %s, responded_at = %s WHERE id = %s", (status, at, assignment_id))


def overdue_offers(conn: psycopg.Connection, now: dt.datetime, street: str | None = None) -> list[int]:
    """Offers past their answer time (of the events of area ``street`` — a district, street or community —, or
    all), locked."""
    return [r[0] for r in conn.execute(
        "SELECT a.id FROM assignments a WHERE a.status = 'offered' AND a.respond_by < %(now)s "
        "AND (%(street)s::text IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id "
        f"AND {scopes.events('e.', '%(street)s')})) ORDER BY a.respond_by FOR UPDATE OF a SKIP LOCKED",
        {"now": now, "street": street})]
