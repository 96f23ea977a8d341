"""The unit behind each rung of a ladder, and an event's stints on the rungs (the rung's clock).

Used inside the caller's transaction by escalation (up), the units' actions (up, down, settle) and intake
(the first rung, when it names a unit: a mall's merchants). Each move closes the event's open stint (how it
left), opens one on the new rung (its unit and due time), points ``events.unit_code`` at the unit, and opens
a mediation case when the unit is a mediation room. A database trigger ends the open stint when the event is
resolved or closed by any other path (migration 0008).

Rungs are skipped when nobody stands behind them for this event: a rung naming a unit kind that no unit
serving the event's place has (a dispute in a street shop has no mall front desk, so it goes from the
merchant straight to the consumer-rights station). A rung naming no unit (the dispatched team) is never
skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping

from gridmap.core.levels import is_mediation
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import mediation as mediation_sql
from gridmap.storage import units as units_sql


def names_unit(rung: RowMapping | Mapping[str, Any]) -> bool:
    return rung["unit_kind"] is not None or rung["unit_code"] is not None


def unit_for(conn: Connection, event_id: int, rung: RowMapping | Mapping[str, Any]) -> str | None:
    """The unit behind ``rung`` for this event (None: a team rung, or nobody of that kind serves it)."""
    if not names_unit(rung):
        return None
    return units_sql.resolve_unit(conn, event_id, kind=rung["unit_kind"], code=rung["unit_code"])


def next_rung(conn: Connection, ev: RowMapping, step: int) -> tuple[RowMapping, str | None] | None:
    """The next rung up (``step`` 1) or down (-1) from the event's that someone stands behind, and its unit;
    None at the top (or the bottom)."""
    current = ev["escalation_rung"]
    ladder = escalation_sql.ladders(conn, ev["category"])
    candidates = [r for r in ladder if r["rung"] > current] if step > 0 else \
        [r for r in reversed(ladder) if r["rung"] < current]
    for r in candidates:
        if not names_unit(r):
            return r, None
        unit = unit_for(conn, ev["id"], r)
        if unit is not None:
            return r, unit
    return None


def enter_rung(conn: Connection, ev: RowMapping, rung: RowMapping, unit: str | None, *, at: dt.datetime,
               entered_how: str, left_how: str, by: str, due_at: dt.datetime | None) -> int:
    """Record the event leaving its rung (``left_how``) and entering ``rung`` held by ``unit``; returns the new
    stint's id. (The caller moves ``events.escalation_rung`` and writes the audit row.)"""
    closed = units_sql.close_stint(conn, ev["id"], at=at, how=left_how, by=by)
    if closed is None and ev["rung_started_at"] is not None:
        # the rung it leaves had no stint yet (a team's rung, or from before stints were kept): record the stay
        units_sql.insert_stint(conn, event_id=ev["id"], rung=ev["escalation_rung"], unit_code=ev.get("unit_code"),
                               at=ev["rung_started_at"], how="reported" if ev["escalation_rung"] == 0 else "escalated",
                               due_at=ev["due_at"])
        units_sql.close_stint(conn, ev["id"], at=at, how=left_how, by=by)
    stint = units_sql.insert_stint(conn, event_id=ev["id"], rung=rung["rung"], unit_code=unit, at=at,
                                   how=entered_how, due_at=due_at)
    units_sql.set_event_unit(conn, ev["id"], unit)
    if unit is not None:
        kind = rung["unit_kind"]
        if kind is None:
            row = units_sql.unit(conn, unit)
            kind = row["kind"] if row is not None else None
        if is_mediation(kind):
            mediation_sql.open_case(conn, event_id=ev["id"], unit_code=unit, at=at, by=by)
    return stint


def enter_first_rung(conn: Connection, event_id: int, rung: RowMapping | Mapping[str, Any], *, at: dt.datetime,
                     due_at: dt.datetime | None) -> str | None:
    """At intake: when the first rung names a unit that serves the event, its stint and inbox entry."""
    unit = unit_for(conn, event_id, rung)
    if unit is None:
        return None
    units_sql.insert_stint(conn, event_id=event_id, rung=rung["rung"], unit_code=unit, at=at, how="reported",
                           due_at=due_at)
    units_sql.set_event_unit(conn, event_id, unit)
    return unit
