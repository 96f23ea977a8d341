"""SQL for units and the rung stints of events: which unit stands behind a rung for an event, a unit's inbox,
the rung's clock, and resolution metrics per unit, rung, kind and place.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from gridmap.storage import scopes
from gridmap.storage.events import EVENT_COLUMNS, EVENT_FROM

UNIT_COLUMNS = "u.code, u.kind, u.name, u.name_zh, u.area_code, u.place_code, u.active"
STINT_COLUMNS = ("s.id AS stint_id, s.rung AS stint_rung, s.unit_code AS stint_unit, s.entered_at, s.entered_how, "
                 "s.due_at AS stint_due_at, s.taken_at, s.taken_by, s.info_requested_at, s.left_at, s.left_how, "
                 "s.left_by")


# -- units --------------------------------------------------------------------------------------------------
def replace_units(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Upsert ``rows`` (code, kind, name, name_zh, area_code, place_code); units no longer listed are made
    inactive, not deleted (events and users may still name them). Returns counts."""
    before = set(conn.execute(text("SELECT code FROM units")).scalars())
    if rows:
        conn.execute(text("""
            INSERT INTO units (code, kind, name, name_zh, area_code, place_code, active)
            VALUES (:code, :kind, :name, :name_zh, :area_code, :place_code, true)
            ON CONFLICT (code) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, name_zh = EXCLUDED.name_zh,
                area_code = EXCLUDED.area_code, place_code = EXCLUDED.place_code, active = true"""), list(rows))
    listed = [r["code"] for r in rows]
    gone = conn.execute(text("UPDATE units SET active = false WHERE active AND NOT (code = ANY(:c))"),
                        {"c": listed}).rowcount
    return {"units": len(rows), "new": len(set(listed) - before), "deactivated": gone}


def units(conn: Connection, *, area: str | None = None, kind: str | None = None,
          active_only: bool = True) -> list[RowMapping]:
    """Units, with the area they serve; ``area``: those serving that area, an area under it or above it (a
    street's operator sees its communities' rooms, its own centre and the district's departments)."""
    where = ["(NOT CAST(:active AS boolean) OR u.active)", "(CAST(:kind AS text) IS NULL OR u.kind = :kind)"]
    if area is not None:
        where.append(f"""(u.area_code IN ({scopes.communities_of(':area')}) OR u.area_code IN ({scopes.streets_of(':area')})
                         OR u.area_code = :area OR u.area_code IN (
                            WITH RECURSIVE up AS (SELECT code, parent_code FROM areas WHERE code = :area
                                                  AND valid_to IS NULL
                                                  UNION SELECT a.code, a.parent_code FROM areas a JOIN up
                                                  ON a.code = up.parent_code AND a.valid_to IS NULL)
                            SELECT code FROM up))""")
    return list(conn.execute(text(
        f"SELECT {UNIT_COLUMNS}, a.name AS area_name, a.name_zh AS area_name_zh, a.level AS area_level "
        "FROM units u LEFT JOIN areas a ON a.code = u.area_code AND a.valid_to IS NULL "
        f"WHERE {' AND '.join(where)} ORDER BY u.code"), {"area": area, "kind": kind, "active": active_only}).mappings())


def unit(conn: Connection, code: str) -> RowMapping | None:
    return conn.execute(text(
        f"SELECT {UNIT_COLUMNS}, a.level AS area_level, "
        "CASE a.level WHEN 'district' THEN a.code WHEN 'street' THEN a.parent_code "
        "  WHEN 'community' THEN (SELECT s.parent_code FROM areas s WHERE s.code = a.parent_code AND s.valid_to IS NULL) "
        "END AS district_code, "
        "CASE a.level WHEN 'street' THEN a.code WHEN 'community' THEN a.parent_code END AS street_code, "
        "CASE a.level WHEN 'community' THEN a.code END AS community_code "
        "FROM units u LEFT JOIN areas a ON a.code = u.area_code AND a.valid_to IS NULL WHERE u.code = :c"),
        {"c": code}).mappings().first()


def resolve_unit(conn: Connection, event_id: int, *, kind: str | None, code: str | None) -> str | None:
    """The active unit behind a rung for an event: the unit ``code`` the rung names, or the unit of ``kind``
    that serves the event's place: one serving its building first (a mall's desks), then the most specific
    area that contains it (grid, community, street, district). None when no unit of the kind serves it."""
    if code is not None:
        return conn.execute(text("SELECT code FROM units WHERE code = :c AND active"), {"c": code}).scalar_one_or_none()
    if kind is None:
        return None
    return conn.execute(text("""
        WITH ev AS (
            SELECT e.grid_code, e.community_code, e.street_code, b.code AS building_code,
                   (SELECT s.parent_code FROM areas s WHERE s.code = e.street_code AND s.level = 'street'
                      AND s.valid_to IS NULL) AS district_code
            FROM events e LEFT JOIN buildings b ON b.id = e.building_id WHERE e.id = :e)
        SELECT u.code FROM units u, ev
        WHERE u.active AND u.kind = :k AND (
              (u.place_code IS NOT NULL AND u.place_code = ev.building_code)
           OR (u.place_code IS NULL AND u.area_code IN (ev.grid_code, ev.community_code, ev.street_code,
                                                         ev.district_code)))
        ORDER BY (u.place_code IS NULL),
                 CASE u.area_code WHEN ev.grid_code THEN 1 WHEN ev.community_code THEN 2 WHEN ev.street_code THEN 3
                                  ELSE 4 END, u.code
        LIMIT 1"""), {"e": event_id, "k": kind}).scalar_one_or_none()


def set_event_unit(conn: Connection, event_id: int, unit_code: str | None) -> None:
    conn.execute(text("UPDATE events SET unit_code = :u WHERE id = :id"), {"u": unit_code, "id": event_id})


def set_outcome(conn: Connection, event_id: int, outcome: str | None) -> None:
    conn.execute(text("UPDATE events SET outcome = :o WHERE id = :id"), {"o": outcome, "id": event_id})


def settle_event(conn: Connection, event_id: int, at: dt.datetime, outcome: str) -> None:
    """Close an open event at once (no team lifecycle): resolved and closed now, with its outcome. The audit
    trigger writes the status change (set the actor first)."""
    conn.execute(text(
        "UPDATE events SET status = 'closed', resolved_at = COALESCE(resolved_at, :at), closed_at = :at, "
        "outcome = :o, unit_code = NULL, due_at = NULL WHERE id = :id"), {"at": at, "o": outcome, "id": event_id})


# -- rung stints ----------------------------------------------------------------------------------------------
def open_stint(conn: Connection, event_id: int, *, lock: bool = False) -> RowMapping | None:
    q = ("SELECT id, event_id, rung, unit_code, entered_at, entered_how, due_at, taken_at, taken_by, "
         "info_requested_at FROM event_rung_stints WHERE event_id = :e AND left_at IS NULL")
    return conn.execute(text(q + (" FOR UPDATE" if lock else "")), {"e": event_id}).mappings().first()


def close_stint(conn: Connection, event_id: int, *, at: dt.datetime, how: str, by: str | None) -> RowMapping | None:
    """End the event's open stint (if any); returns it."""
    return conn.execute(text(
        "UPDATE event_rung_stints SET left_at = :at, left_how = :how, left_by = :by "
        "WHERE event_id = :e AND left_at IS NULL RETURNING id, rung, unit_code, entered_at"),
        {"e": event_id, "at": at, "how": how, "by": by}).mappings().first()


def insert_stint(conn: Connection, *, event_id: int, rung: int, unit_code: str | None, at: dt.datetime, how: str,
                 due_at: dt.datetime | None) -> int:
    return conn.execute(text(
        "INSERT INTO event_rung_stints (event_id, rung, unit_code, entered_at, entered_how, due_at) "
        "VALUES (:e, :r, :u, :at, :how, :due) RETURNING id"),
        {"e": event_id, "r": rung, "u": unit_code, "at": at, "how": how, "due": due_at}).scalar_one()


def take_stint(conn: Connection, stint_id: int, *, at: dt.datetime, by: str) -> None:
    conn.execute(text("UPDATE event_rung_stints SET taken_at = :at, taken_by = :by WHERE id = :id"),
                 {"at": at, "by": by, "id": stint_id})


def info_requested(conn: Connection, stint_id: int, at: dt.datetime) -> None:
    conn.execute(text("UPDATE event_rung_stints SET info_requested_at = :at WHERE id = :id"), {"at": at, "id": stint_id})


def stints(conn: Connection, event_id: int) -> list[RowMapping]:
    """Every rung the event stood on, oldest first, with the unit's name."""
    return list(conn.execute(text(
        "SELECT s.id, s.rung, s.unit_code, u.name AS unit_name, u.name_zh AS unit_name_zh, u.kind AS unit_kind, "
        "s.entered_at, s.entered_how, s.due_at, s.taken_at, s.taken_by, s.info_requested_at, s.left_at, s.left_how, "
        "s.left_by FROM event_rung_stints s LEFT JOIN units u ON u.code = s.unit_code "
        "WHERE s.event_id = :e ORDER BY s.entered_at, s.id"), {"e": event_id}).mappings())


def ever_at_unit(conn: Connection, event_id: int, unit_code: str) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM event_rung_stints WHERE event_id = :e AND unit_code = :u)"),
                        {"e": event_id, "u": unit_code}).scalar_one()


def inbox(conn: Connection, unit_code: str, *, limit: int, include_left: bool = False,
          since: dt.datetime | None = None, area: str | None = None) -> list[RowMapping]:
    """The events at the unit's rung now (its open stints), oldest first; with ``include_left`` also those that
    left it since ``since`` (newest first after the open ones); with ``area``, only the events of that area
    (an operator's: :func:`gridmap.storage.scopes.events`, before the limit)."""
    cond = ["s.unit_code = :u", "s.left_at IS NULL"]
    if include_left:
        cond[1] = "(s.left_at IS NULL OR s.left_at >= :since)"
    if area is not None:
        cond.append(scopes.events("e.", ":area"))
    return list(conn.execute(text(
        f"SELECT {EVENT_COLUMNS}, {STINT_COLUMNS} {EVENT_FROM} "
        f"JOIN event_rung_stints s ON s.event_id = e.id WHERE {' AND '.join(cond)} "
        "ORDER BY (s.left_at IS NOT NULL), COALESCE(s.due_at, s.entered_at), s.id LIMIT :n"),
        {"u": unit_code, "n": limit, "since": since, "area": area}).mappings())


def events_at_units_clause(alias: str, param: str) -> str:
    """Events that stand or stood at unit ``param`` (a unit member's events)."""
    return f"EXISTS (SELECT 1 FROM event_rung_stints us WHERE us.event_id = {alias}id AND us.unit_code = {param})"


# -- metrics --------------------------------------------------------------------------------------------------
UNIT_GROUPS = {"unit": "s.unit_code", "rung": "e.category || ':' || s.rung",
               "unit_rung": "s.unit_code || '/' || e.category || ':' || s.rung", "kind": "u.kind",
               "place": "COALESCE(u.place_code, s.unit_code)", "category": "e.category"}


def unit_metrics(conn: Connection, *, group_by: str, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                 resolved_outcomes: Sequence[str], area: str | None = None, unit_code: str | None = None,
                 units_only: bool = True) -> list[RowMapping]:
    """Per group (unit, ladder rung, a unit's rung ``unit/category:rung``, unit kind, place, category): the
    disputes (events) that entered it in [start, end), how many are still there, settled there, escalated from
    there (a failed mediation sent to a department too), referred from there (a failed mediation sent to
    litigation), returned, overdue there, done (left it) and resolved (their event ended resolved, wherever);
    the minutes they spent there (those that left: mean, median, p90, max), the minutes from arriving at the
    rung to being settled there (those settled there: mean, median, p90) and until a member took them. An
    event counts once per group even when it stood there twice; its time there is the sum of its stays."""
    where = ["s.entered_at >= :start", "s.entered_at < :end"]
    if units_only:
        where.append("s.unit_code IS NOT NULL")
    if area is not None:
        where.append(scopes.events("e.", ":area"))
    if unit_code is not None:
        where.append("s.unit_code = :unit")
    key = UNIT_GROUPS[group_by]
    return list(conn.execute(text(f"""
        WITH st AS (
            SELECT {key} AS key, s.event_id,
                   bool_or(s.left_at IS NULL) AS open_here,
                   bool_or(s.left_how = 'settled') AS settled_here,
                   bool_or(s.left_how IN ('escalated', 'auto_escalated')) AS escalated_here,
                   bool_or(s.left_how = 'referred') AS referred_here,
                   bool_or(s.left_how = 'returned') AS returned_here,
                   bool_or((s.left_at IS NULL AND s.due_at < :now) OR s.left_at > s.due_at) AS overdue_here,
                   sum(extract(epoch FROM s.left_at - s.entered_at)) AS secs_here,
                   max(extract(epoch FROM s.left_at - s.entered_at)) FILTER (WHERE s.left_how = 'settled')
                     AS settle_secs,
                   min(extract(epoch FROM s.taken_at - s.entered_at)) AS take_secs
            FROM event_rung_stints s JOIN events e ON e.id = s.event_id LEFT JOIN units u ON u.code = s.unit_code
            WHERE {' AND '.join(where)}
            GROUP BY 1, 2)
        SELECT st.key, count(*) AS events,
               count(*) FILTER (WHERE st.open_here) AS open,
               count(*) FILTER (WHERE st.settled_here) AS settled,
               count(*) FILTER (WHERE st.escalated_here) AS escalated,
               count(*) FILTER (WHERE st.referred_here) AS referred,
               count(*) FILTER (WHERE st.returned_here) AS returned,
               count(*) FILTER (WHERE st.overdue_here) AS overdue,
               count(*) FILTER (WHERE NOT st.open_here) AS done,
               count(*) FILTER (WHERE NOT st.open_here AND e.status IN ('resolved', 'closed')
                                AND (e.outcome IS NULL OR e.outcome = ANY(:resolved))) AS resolved,
               avg(st.secs_here) FILTER (WHERE NOT st.open_here) / 60 AS time_avg_min,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY st.secs_here) FILTER (WHERE NOT st.open_here) / 60
                 AS time_p50_min,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY st.secs_here) FILTER (WHERE NOT st.open_here) / 60
                 AS time_p90_min,
               max(st.secs_here) FILTER (WHERE NOT st.open_here) / 60 AS time_max_min,
               avg(st.settle_secs) / 60 AS settle_avg_min,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY st.settle_secs) / 60 AS settle_p50_min,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY st.settle_secs) / 60 AS settle_p90_min,
               avg(st.take_secs) / 60 AS take_avg_min
        FROM st JOIN events e ON e.id = st.event_id
        GROUP BY 1 ORDER BY 1"""),
        {"start": start, "end": end, "now": now, "resolved": list(resolved_outcomes), "area": area,
         "unit": unit_code}).mappings())
