"""SQL of ``teams`` and their members: status, last known position (and the fixes flagged as implausible),
the frames dispatch, the map and the simulator read, and who to call for a team.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, RowMapping, text

from gridmap.core.vocabulary import ACTIVE_ASSIGNMENT_STATUSES
from gridmap.storage import scopes
from gridmap.storage._filters import _ENVELOPE, _bbox, _frame, _in_street, _q
from gridmap.storage._rows import one
from gridmap.storage.db import driver_connection


def teams_for_dispatch(conn: Connection, workload_since: dt.datetime) -> pd.DataFrame:
    """Every team with its status, skills, home grid, last position, workload (assignments since ...) and the
    grids that are its own: those its members staff, or else its home grid."""
    rows = _q(conn,
        f"""
        SELECT t.id, t.code, t.status, t.skills, t.home_grid_code, ST_X(t.geom), ST_Y(t.geom), t.position_at,
               (SELECT count(*) FROM assignments a WHERE a.team_id = t.id
                 AND (a.status IN {ACTIVE_ASSIGNMENT_STATUSES} OR a.offered_at >= :since)) AS workload,
               COALESCE((SELECT array_agg(DISTINCT s.grid_code ORDER BY s.grid_code) FROM grid_staff s
                         JOIN team_members m ON m.id = s.member_id WHERE m.team_id = t.id),
                        CASE WHEN t.home_grid_code IS NULL THEN ARRAY[]::text[] ELSE ARRAY[t.home_grid_code] END)
        FROM teams t ORDER BY t.id""",
        {"since": workload_since},
    ).all()
    return pd.DataFrame(rows, columns=["id", "code", "status", "skills", "grid", "lon", "lat", "position_at",
                                       "workload", "grids"])


def save_positions(conn: Connection, codes: list[str], lon: np.ndarray, lat: np.ndarray,
                   at: list[dt.datetime]) -> tuple[list[str], list[str]]:
    """Store last known positions in one statement; a report older than the stored one is ignored.

    Returns (codes updated, codes of no team). Parameters go in binary (``%b``): psycopg's text
    dumping of a 1,000-element array quotes every element (a regex each), which cost more than the
    UPDATE itself (measured in scripts/bench_positions.py), so this statement runs on the psycopg connection
    under ``conn`` (same transaction). The caller rolls back if any code is unknown.
    """
    row = one(driver_connection(conn).execute(
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


def save_accuracy(conn: Connection, rows: Sequence[tuple[str, float | None, dt.datetime]]) -> int:
    """(team code, accuracy in metres or None, time of the fix): stored where that fix is the team's position."""
    if not rows:
        return 0
    return conn.execute(text("""
        UPDATE teams t SET position_accuracy_m = u.acc
        FROM unnest(CAST(:codes AS text[]), CAST(:acc AS float8[]), CAST(:at AS timestamptz[])) AS u(code, acc, at)
        WHERE t.code = u.code AND t.position_at = u.at"""),
        {"codes": [r[0] for r in rows], "acc": [r[1] for r in rows], "at": [r[2] for r in rows]}).rowcount


def insert_flags(conn: Connection, flags: Sequence[dict], reported_by: str | None) -> int:
    """The flagged fixes: team code, at, lon, lat, accuracy_m, speed_kmh, distance_m, reason."""
    if not flags:
        return 0
    return conn.execute(text("""
        INSERT INTO team_fix_flags (team_id, at, lon, lat, accuracy_m, speed_kmh, distance_m, reason, reported_by)
        SELECT t.id, u.at, u.lon, u.lat, u.acc, u.kmh, u.dist, u.reason, :by
        FROM unnest(CAST(:codes AS text[]), CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                    CAST(:acc AS float8[]), CAST(:kmh AS float8[]), CAST(:dist AS float8[]), CAST(:reason AS text[]))
             AS u(code, at, lon, lat, acc, kmh, dist, reason)
        JOIN teams t ON t.code = u.code"""),
        {"codes": [f["team"] for f in flags], "at": [f["at"] for f in flags], "lon": [f["lon"] for f in flags],
         "lat": [f["lat"] for f in flags], "acc": [f.get("accuracy_m") for f in flags],
         "kmh": [f["speed_kmh"] for f in flags], "dist": [f["distance_m"] for f in flags],
         "reason": [f["reason"] for f in flags], "by": reported_by}).rowcount


def set_team_status(conn: Connection, team_id: int, status: str) -> None:
    """The one way a team's status is written (dispatch, the lifecycle, a manual toggle)."""
    conn.execute(text("UPDATE teams SET status = :s WHERE id = :id"), {"s": status, "id": team_id})


#: A team with the street and community of its home grid (current boundaries).
_TEAM_WITH_AREA = """
        SELECT t.id, t.code, t.name, t.kind, t.status, t.skills, t.home_grid_code, t.position_at,
               ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, c.parent_code AS street_code, c.code AS community_code
        FROM teams t
        LEFT JOIN areas g ON g.code = t.home_grid_code AND g.level = 'grid' AND g.valid_to IS NULL
        LEFT JOIN areas c ON c.code = g.parent_code AND c.level = 'community' AND c.valid_to IS NULL"""


def team(conn: Connection, code: str) -> RowMapping | None:
    """A team with the street of its home grid."""
    return conn.execute(text(_TEAM_WITH_AREA + " WHERE t.code = :c"), {"c": code}).mappings().first()


def teams_in_street(conn: Connection, street: str | None, codes: Sequence[str] | None = None) -> list[RowMapping]:
    """Teams (with the street and community of their home grid) of area ``street`` (a district, street or
    community: :func:`gridmap.storage.scopes.teams`), or of every area when it is None."""
    q = _TEAM_WITH_AREA + f" WHERE {scopes.unconfined_or(':street', scopes.teams('t.', ':street'))}"
    params: dict[str, Any] = {"street": street}
    if codes is not None:
        q += " AND t.code = ANY(:codes)"
        params["codes"] = list(codes)
    return list(conn.execute(text(q + " ORDER BY t.code"), params).mappings())


def team_row(conn: Connection, team_id: int) -> RowMapping | None:
    return conn.execute(text(
        "SELECT t.id, t.code, t.name, t.kind, t.status, t.home_grid_code, t.position_at, t.position_accuracy_m, "
        "ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat FROM teams t WHERE t.id = :t"), {"t": team_id}).mappings().first()


def teams_in_view(conn: Connection, bbox: tuple[float, float, float, float] | None, *, limit: int, street: str | None = None) -> pd.DataFrame:
    """Teams with a known position in the bbox, with their active assignment (if any); with ``street``, only
    the teams whose home grid is in that street (where they are now does not matter)."""
    cur = _q(conn,
        f"""SELECT t.id, t.code, t.name, t.kind, t.status, t.position_at, t.home_grid_code,
                   ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, a.id AS assignment_id, a.event_id,
                   a.status AS assignment_status
            FROM teams t
            LEFT JOIN assignments a ON a.team_id = t.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES}
            WHERE t.geom IS NOT NULL AND t.geom && {_ENVELOPE} AND {_in_street("t.home_grid_code", "grids")}
            ORDER BY t.id LIMIT :limit""",
        _bbox(bbox) | {"limit": limit, "street": street})
    return _frame(cur)


def team_card(conn: Connection, code: str, street: str | None = None) -> dict | None:
    """One team: its members as a COUNT (never who they are)."""
    cur = _q(conn,
        """SELECT t.id, t.code, t.name, t.kind, t.status, t.skills, t.home_grid_code, t.position_at,
                  ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat,
                  (SELECT count(*) FROM team_members m WHERE m.team_id = t.id)::int AS members
           FROM teams t WHERE t.code = :code AND """ + _in_street("t.home_grid_code", "grids"),
        {"code": code, "street": street})
    row = cur.mappings().first()
    return None if row is None else dict(row)


def teams_for_simulation(conn: Connection) -> list[RowMapping]:
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


def member_scope(conn: Connection, member_code: str) -> RowMapping | None:
    """A team member's team and grids: the grids they staff, or else their team's home grid."""
    return conn.execute(text("""
        SELECT m.code, m.team_id, t.code AS team_code,
               COALESCE((SELECT array_agg(s.grid_code ORDER BY s.grid_code) FROM grid_staff s WHERE s.member_id = m.id),
                        CASE WHEN t.home_grid_code IS NULL THEN ARRAY[]::text[] ELSE ARRAY[t.home_grid_code] END)
                 AS grids
        FROM team_members m LEFT JOIN teams t ON t.id = m.team_id WHERE m.code = :c"""), {"c": member_code}).mappings().first()


def team_member_phones(conn: Connection, team_id: int) -> list[RowMapping]:
    """Who to call for a team's offer: its members' codes and phones (personal data: only for the notifier)."""
    return list(conn.execute(text("SELECT code, phone FROM team_members WHERE team_id = :t AND phone IS NOT NULL "
                                  "ORDER BY code"), {"t": team_id}).mappings())


def free_idle_busy_teams(conn: Connection) -> int:
    """Teams marked assigned or on site that hold no active (offered/accepted) assignment: make them available."""
    return conn.execute(text(f"""
        UPDATE teams t SET status = 'available'
        WHERE t.status IN ('assigned', 'on_site')
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES})
        """)).rowcount


def busy_teams_without_assignment(conn: Connection) -> list[str]:
    """Codes of teams marked assigned or on site that hold no active assignment (never any, if consistent)."""
    return list(conn.execute(text(f"""
        SELECT t.code FROM teams t WHERE t.status IN ('assigned', 'on_site')
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.team_id = t.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES})
        ORDER BY t.code""")).scalars())


def restamp_on_duty_positions(conn: Connection, now: dt.datetime) -> int:
    """The last position of every on-duty team, as reported again at ``now`` (never moved backwards)."""
    return conn.execute(text("""
        UPDATE teams SET position_at = :now
        WHERE status <> 'off_duty' AND geom IS NOT NULL AND (position_at IS NULL OR position_at < :now)
        """), {"now": now}).rowcount
