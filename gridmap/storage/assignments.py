"""SQL of ``assignments``: a team offered an event, its answer and the route it was given; the claim of a
team and the offer in one statement (dispatch), the lapse of unanswered offers, the reads of the field app
and the map.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Connection, RowMapping, text

from gridmap.core.vocabulary import ACTIVE_ASSIGNMENT_STATUSES
from gridmap.storage import scopes
from gridmap.storage._filters import (
    _AREA,
    _ENVELOPE,
    OPEN_STATUSES,
    _bbox,
    _frame,
    _geo_frame,
    _geoms,
    _q,
    _street_events,
)
from gridmap.storage._rows import one
from gridmap.storage.db import driver_connection

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
        f"WHERE a.event_id = :e AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES} FOR UPDATE OF a"), {"e": event_id}).mappings().first()


def team_ever_assigned(conn: Connection, event_id: int, team_id: int) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM assignments WHERE event_id = :e AND team_id = :t)"),
                        {"e": event_id, "t": team_id}).scalar_one()


def close_assignment(conn: Connection, assignment_id: int, status: str, at: dt.datetime) -> None:
    """Set the assignment's status; ``responded_at`` keeps the FIRST answer's time (an acceptance, then the
    completion, must not move it: it is the measured response time)."""
    conn.execute(text("UPDATE assignments SET status = :s, responded_at = COALESCE(responded_at, :at) WHERE id = :id"),
                 {"s": status, "at": at, "id": assignment_id})


def cancel_active_assignment(conn: Connection, event_id: int, at: dt.datetime) -> RowMapping | None:
    """Cancel the event's offered/accepted assignment (its team is free again); returns it (team id, code)."""
    row = conn.execute(text(
        "UPDATE assignments a SET status = 'cancelled', responded_at = COALESCE(a.responded_at, :at) "
        f"FROM teams t WHERE t.id = a.team_id AND a.event_id = :e AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES} "
        "RETURNING a.id, a.team_id, t.code AS team_code"), {"e": event_id, "at": at}).mappings().first()
    if row is not None:
        conn.execute(text("UPDATE teams SET status = 'available' WHERE id = :t AND status <> 'off_duty'"),
                     {"t": row["team_id"]})
    return row


def dispatch_state(conn: Connection, event_id: int) -> tuple[tuple | None, set[str]]:
    """In one round trip: the event's active assignment (id, team code, status) or None, and the teams that
    declined it or let the offer lapse. Lock the event first (:func:`event_for_dispatch`, an earlier
    statement), so that this sees what a concurrent dispatch of the same event committed. A hot statement of
    dispatch: prepared, on the psycopg connection under ``conn``."""
    row = one(driver_connection(conn).execute(
        f"""
        SELECT (SELECT ARRAY[a.id::text, t.code, a.status] FROM assignments a JOIN teams t ON t.id = a.team_id
                WHERE a.event_id = %(e)s AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES} LIMIT 1),
               ARRAY(SELECT t.code FROM assignments a JOIN teams t ON t.id = a.team_id
                     WHERE a.event_id = %(e)s AND a.status IN ('declined', 'timeout'))""",
        {"e": event_id}, prepare=True,
    ))
    active = None if row[0] is None else (int(row[0][0]), row[0][1], row[0][2])
    return active, set(row[1])


def offer(conn: Connection, *, team: str, event_id: int, rank: int, eta_s: float, distance_m: float,
          method: str, explanation: dict, route: shapely.LineString | None, respond_by: dt.datetime,
          now: dt.datetime) -> int | None:
    """In one statement: claim ``team``, offer it the event and mark the event dispatched to it. Returns the
    assignment's id, or None (nothing written) if the team was not free.

    The claim is a conditional update of an AVAILABLE team (row lock and re-check, so two dispatches never
    both get it); a team that still holds an open offer or accepted assignment is not free, whatever its
    status says. A hot statement of dispatch: prepared, on the psycopg connection under ``conn`` (a team taken
    concurrently raises psycopg's ``UniqueViolation``).
    """
    row = driver_connection(conn).execute(
        f"""
        WITH c AS (
            UPDATE teams t SET status = 'assigned'
            WHERE t.code = %(team)s AND t.status = 'available' AND NOT EXISTS
                  (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES})
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


def overdue_offers(conn: Connection, now: dt.datetime, street: str | None = None) -> list[int]:
    """Offers past their answer time (of the events of area ``street`` — a district, street or community —, or
    all), locked."""
    return [r[0] for r in _q(conn,
        "SELECT a.id FROM assignments a WHERE a.status = 'offered' AND a.respond_by < :now "
        "AND (CAST(:street AS text) IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id "
        f"AND {scopes.events('e.', ':street')})) ORDER BY a.respond_by FOR UPDATE OF a SKIP LOCKED",
        {"now": now, "street": street})]


def routes_in_view(conn: Connection, bbox: tuple[float, float, float, float] | None, *, limit: int,
                   street: str | None = None) -> gpd.GeoDataFrame:
    """Routes of the active dispatches (offered or accepted assignments) that touch the bbox (to events of
    ``street``, if given)."""
    cur = _q(conn,
        f"""SELECT a.id AS assignment_id, a.event_id, t.code AS team, a.status, a.eta_s, a.distance_m,
                   a.offered_at, e.severity, ST_AsBinary(a.route) AS wkb
            FROM assignments a JOIN teams t ON t.id = a.team_id JOIN events e ON e.id = a.event_id
            WHERE a.status IN {ACTIVE_ASSIGNMENT_STATUSES} AND a.route IS NOT NULL AND a.route && {_ENVELOPE}
              AND (CAST(:street AS text) IS NULL OR {scopes.events("e.", _AREA)})
            ORDER BY a.id LIMIT :limit""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _geo_frame(cur)


def assignments_of_event(conn: Connection, event_id: int) -> pd.DataFrame:
    """Every assignment of an event, oldest first, with its ``route`` (a shapely line or None)."""
    cur = _q(conn,
        """SELECT a.id, t.code AS team, t.name AS team_name, a.status, a.rank, a.eta_s, a.distance_m, a.method,
                  a.offered_at, a.respond_by, a.responded_at, ST_AsBinary(a.route) AS wkb
           FROM assignments a JOIN teams t ON t.id = a.team_id WHERE a.event_id = :e ORDER BY a.offered_at, a.id""",
        {"e": event_id})
    df = _frame(cur)
    df["route"] = _geoms(df.pop("wkb"))
    return df


def team_current(conn: Connection, team_id: int, street: str | None = None) -> dict | None:
    """The team's active assignment with its event, else the event it is on site at (status on_site); with
    ``street``, only an event of that street. Its ``route``: a shapely line or None."""
    cur = _q(conn,
        f"""SELECT a.id AS assignment_id, a.status AS assignment_status, a.eta_s, a.distance_m, a.offered_at,
                   a.respond_by, e.id AS event_id, e.code AS event_code, e.category, e.severity, e.status AS event_status,
                   e.title, e.reported_at, ST_AsBinary(a.route) AS wkb
            FROM assignments a JOIN events e ON e.id = a.event_id
            WHERE a.team_id = :t AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES} AND {_street_events(street, False, "e.")}
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, e.id, e.code, e.category, e.severity, e.status, e.title,
                   e.reported_at, NULL
            FROM events e WHERE e.team_id = :t AND e.status IN {OPEN_STATUSES} AND {_street_events(street, False, "e.")}
            ORDER BY 1 NULLS LAST LIMIT 1""", {"t": team_id, "street": street})
    row = cur.mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["route"] = _geoms([out.pop("wkb")])[0]
    return out


def assignments_since(conn: Connection, since: dt.datetime) -> pd.DataFrame:
    """Every assignment offered since ``since``: team, event, status, the ETA and road distance it promised."""
    rows = conn.execute(text("""
        SELECT a.id, a.event_id, t.code AS team, a.status, a.rank, a.eta_s, a.distance_m, a.offered_at,
               a.responded_at
        FROM assignments a JOIN teams t ON t.id = a.team_id WHERE a.offered_at >= :since ORDER BY a.id"""),
                        {"since": since}).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])
