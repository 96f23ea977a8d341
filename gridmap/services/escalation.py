"""Tiered escalation (分级分流): a ladder of rungs per category, each with a time limit.

An event starts on rung 0 (the dispatched team). When its rung's limit passes and it is still open it is
*overdue*; the sweep moves it one rung up when the rung says ``auto_escalate``, and an operator can move it
up by hand at any time (a team hands it up from its assignment). Every move is written to the audit trail.
The ladders are data: ``data/escalation_ladders.csv`` (loaded by migration 0003; ``gridmap ladders load``).

Each rung may name the unit behind it (its ``unit`` column: a unit kind, found by where the event is, or a unit
code). Moving up skips a rung no unit of whose kind serves the event, records the stay on each rung (the
rung's clock) and puts the event in the new unit's inbox (:mod:`gridmap.services.rungs`).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.core.levels import UNIT_KINDS
from gridmap.core.lifecycle import is_open
from gridmap.errors import Conflict, GridmapError, InvalidInput, NotFound
from gridmap.services import rungs
from gridmap.services.auth import Principal
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import events as events_sql

if TYPE_CHECKING:
    from gridmap.services.dispatch import Dispatcher

LADDER_COLUMNS = ("category", "rung", "level", "name", "name_zh", "time_limit_min", "auto_escalate")
#: Optional: the unit behind the rung (a unit kind, or one unit's code).
LADDER_OPTIONAL = ("unit",)


def due_for(conn: Connection, category: str, rung_no: int, start: dt.datetime) -> dt.datetime | None:
    """When an event on ``rung_no`` of ``category``'s ladder becomes overdue (None: no ladder)."""
    r = escalation_sql.rung(conn, category, rung_no)
    return None if r is None else start + dt.timedelta(minutes=r["time_limit_min"])


def escalate_in(conn: Connection, ev: RowMapping, *, at: dt.datetime, actor: str, role: str | None, action: str,
                note: str | None, lon: float | None = None, lat: float | None = None) -> dict:
    """Move a (locked) event one rung up (past rungs nobody stands behind for it), in the caller's transaction;
    returns the new rung."""
    if not is_open(ev["status"]):
        raise Conflict(f"event {ev['code']} is {ev['status']}: only open events are escalated", field="event_id",
                       fix="reopen it first")
    found = rungs.next_rung(conn, ev, 1)
    nxt, unit = found if found is not None else (None, None)
    if nxt is None:
        top = escalation_sql.rung(conn, ev["category"], ev["escalation_rung"])
        where = f"the top rung ({top['name']})" if top else "a category without a ladder"
        raise Conflict(f"event {ev['code']} is already at {where} of the {ev['category']} ladder", field="event_id",
                       fix="settle it at this rung, or add a rung to data/escalation_ladders.csv "
                           "(gridmap ladders load)")
    due = at + dt.timedelta(minutes=nxt["time_limit_min"])
    escalation_sql.set_rung(conn, ev["id"], nxt["rung"], at, due)
    rungs.enter_rung(conn, ev, nxt, unit, at=at, entered_how="escalated", by=actor, due_at=due,
                     left_how="auto_escalated" if action == "auto_escalate" else "escalated")
    detail = {"from_rung": ev["escalation_rung"], "to_rung": nxt["rung"], "level": nxt["level"],
              "handler": nxt["name"], "handler_zh": nxt["name_zh"], "due_at": due.isoformat(),
              "was_due_at": ev["due_at"].isoformat() if ev["due_at"] else None, "unit": unit}
    events_sql.insert_transition(conn, event_id=ev["id"], at=at, action=action, from_status=ev["status"],
                                 to_status=ev["status"], rung=nxt["rung"], actor=actor, role=role, note=note, lon=lon,
                                 lat=lat, detail=detail)
    return detail


class EscalationService:
    """Manual escalation, the ladders, and the sweep (offer time-outs + automatic escalation)."""

    def __init__(self, engine: Engine, dispatcher: Dispatcher | None, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.clock = clock

    def ladders(self, session: Session, category: str | None = None) -> list[dict]:
        with session.begin():
            conn = session.connection()
            if category is not None and events_sql.category(conn, category) is None:
                raise InvalidInput(f"unknown category {category!r}", field="category",
                                   fix=f"use one of {', '.join(events_sql.category_codes(conn))}")
            return [dict(r) for r in escalation_sql.ladders(conn, category)]

    def escalate(self, session: Session, p: Principal, event_id: int, note: str | None) -> dict:
        """An operator moves an event one rung up its ladder."""
        p.require("admin", "operator", what="escalate an event")
        now = self.clock()
        with session.begin():
            conn = session.connection()
            ev = events_sql.locked_event(conn, event_id)
            p.check_street(ev["street_code"], f"event {ev['code']}", ev["community_code"])
            detail = escalate_in(conn, ev, at=now, actor=p.username, role=p.role, action="escalate", note=note)
        return detail

    def sweep(self, now: dt.datetime | None = None, limit: int = 500, *, principal: Principal | None = None) -> dict:
        """Time out unanswered offers (re-dispatching them), offer waiting events again, and escalate
        overdue events whose rung says so.

        ``principal`` is who asked: an admin sweeps every street, an operator only their own area (the offers,
        waiting events and overdue events of their district's streets, their street or their community); no
        principal is the system's own sweeper (every street)."""
        street = None
        if principal is not None:
            principal.require("admin", "operator", what="run the escalation sweep")
            if principal.role == "operator":
                street = principal.area or "-"  # (an operator without an area sweeps nothing)
        now = now or self.clock()
        timeouts: list[dict] = []
        if self.dispatcher is not None:
            for r in self.dispatcher.expire_offers(now=now, street=street):
                timeouts.append({"event_id": r.event_id, "team": r.team, "waiting": r.waiting})
        offered: list[dict] = []
        if self.dispatcher is not None:  # events left waiting when no team was free: try them again
            with Session(self.engine) as session, session.begin():
                waiting = escalation_sql.waiting_events(session.connection(), limit, street)
            for eid in waiting:
                try:
                    r = self.dispatcher.dispatch(eid, now=now)
                except GridmapError:
                    continue
                if r.assignment_id is not None:
                    offered.append({"event_id": eid, "team": r.team, "waiting": False})
        escalated = []
        with Session(self.engine) as session, session.begin():
            conn = session.connection()
            events_sql.set_actor(conn, actor="system", role=None, at=now)
            for eid in escalation_sql.overdue_to_escalate(conn, now, limit, street):
                ev = events_sql.event(conn, eid)
                assert ev is not None  # overdue_to_escalate() has just listed it; events are never deleted
                try:
                    d = escalate_in(conn, ev, at=now, actor="system", role=None, action="auto_escalate",
                                    note=f"overdue since {ev['due_at'].isoformat()}")
                except GridmapError:  # a concurrent change made it ineligible: the next sweep sees it again
                    continue
                escalated.append({"event_id": eid, "code": ev["code"], **d})
            overdue = escalation_sql.overdue_count(conn, now, street)
        return {"at": now, "timeouts": timeouts, "offered": offered, "escalated": escalated, "overdue": overdue}


def read_ladders(path: str | Path, categories: set[str]) -> list[dict]:
    """Read and check a ladders CSV: known categories, rungs 0..n without gaps, positive limits."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"{p} does not exist", field="file", fix="give the path of a ladders CSV")
    with p.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LADDER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{p.name} lacks the column(s) {', '.join(missing)}", field="file",
                               fix=f"the header must be {','.join(LADDER_COLUMNS)}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                unit = (r.get("unit") or "").strip() or None
                row: dict[str, Any] = {"category": r["category"].strip(), "rung": int(r["rung"]), "level": r["level"].strip(),
                       "name": r["name"].strip(), "name_zh": r["name_zh"].strip(),
                       "time_limit_min": int(r["time_limit_min"]),
                       "auto_escalate": r["auto_escalate"].strip().lower() in ("true", "1", "yes"),
                       # a unit kind (found by where the event is) or one unit's code
                       "unit_kind": unit if unit in UNIT_KINDS else None,
                       "unit_code": unit if unit is not None and unit not in UNIT_KINDS else None}
            except (TypeError, ValueError):
                raise InvalidInput(f"{p.name} line {i}: rung and time_limit_min must be integers", field="file",
                                   fix="fix that line") from None
            if row["category"] not in categories:
                raise InvalidInput(f"{p.name} line {i}: unknown category {row['category']!r}", field="file",
                                   fix=f"use one of {', '.join(sorted(categories))}")
            if row["time_limit_min"] <= 0:
                raise InvalidInput(f"{p.name} line {i}: time_limit_min must be positive", field="file",
                                   fix="give the rung's limit in minutes")
            rows.append(row)
    by_cat: dict[str, list[int]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r["rung"])
    for cat, numbers in by_cat.items():
        if sorted(numbers) != list(range(len(numbers))):
            raise InvalidInput(f"{p.name}: the rungs of {cat} are {sorted(numbers)}", field="file",
                               fix="number each ladder's rungs 0, 1, 2, ... without gaps or repeats")
    return rows


def load_ladders(engine: Engine, path: str | Path) -> int:
    """Replace every ladder with the CSV's (all or nothing); returns the number of rungs."""
    with Session(engine) as session, session.begin():
        conn = session.connection()
        rows = read_ladders(path, set(events_sql.category_codes(conn)))
        return escalation_sql.replace_ladders(conn, rows)
