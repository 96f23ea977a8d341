"""SQL of the escalation ladders (``escalation_ladders``: the rungs of each category, their time limits
and units) and of events' place on them (rung, due time; those overdue or waiting for a team).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, RowMapping, text

from gridmap.core.vocabulary import ACTIVE_ASSIGNMENT_STATUSES
from gridmap.storage import scopes
from gridmap.storage._filters import OPEN_STATUSES

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
        WHERE e.status IN {OPEN_STATUSES} AND e.duplicate_of IS NULL
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
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.event_id = e.id AND a.status IN {ACTIVE_ASSIGNMENT_STATUSES})
          AND EXISTS (SELECT 1 FROM event_transitions t WHERE t.event_id = e.id AND t.action = 'report'
                      AND (t.detail ->> 'auto_dispatch')::boolean)
        ORDER BY e.severity DESC, e.reported_at LIMIT :n"""), {"n": limit, "street": street}).scalars())


def overdue_count(conn: Connection, now: dt.datetime, street: str | None) -> int:
    return conn.execute(text(
        f"SELECT count(*) FROM events e WHERE e.status IN {OPEN_STATUSES} "
        f"AND e.duplicate_of IS NULL AND e.due_at < :now AND {scopes.unconfined_or(':s', scopes.events('e.', ':s'))}"),
        {"now": now, "s": street}).scalar_one()


def first_rungs(conn: Connection) -> dict[str, tuple[int, str]]:
    """Per category, the first rung's time limit (minutes) and handler: the target of the first response."""
    rows = conn.execute(text("SELECT category, time_limit_min, name FROM escalation_ladders WHERE rung = 0"))
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def rungs(conn: Connection) -> dict[tuple[str, int], tuple[int, str, bool]]:
    """(category, rung) -> (time limit in minutes, handler, auto_escalate)."""
    rows = conn.execute(text("SELECT category, rung, time_limit_min, name, auto_escalate FROM escalation_ladders"))
    return {(r[0], int(r[1])): (int(r[2]), r[3], bool(r[4])) for r in rows}
