"""The units behind the escalation rungs: loading them, who may see them, each unit's inbox (the events at
its rung, with the rung's clock) and what its members do with an event there.

A unit member (role ``unit``) acts on the events at their unit's rung: **take** it (it is theirs to handle),
**ask for information** (a note to whoever reported or handled it below), **settle** it (with a note or, at
a mediation room, the agreement: the event closes, resolved), **return** it to the rung below, or
**escalate** it to the rung above. An overdue event moves up by itself when its rung says so (the sweep,
:class:`gridmap.services.escalation.EscalationService`). Every action is a row of the event's audit trail
(``event_transitions``) and moves the rung stints (:mod:`gridmap.services.rungs`), which the units' live feeds
hear of (NOTIFY on commit).

Who sees an inbox: the unit's members and admins (all of it), operators (the events of their area in it).
Free text reaches unit members redacted, like every role without the right to personal data.
"""

from __future__ import annotations

import builtins
import csv
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.core.levels import AREA_ORDER, UNIT_ACTIONS, UNIT_KINDS, unit_kind_info
from gridmap.core.lifecycle import is_open
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound
from gridmap.services import rungs
from gridmap.services import scopes as scope_rules
from gridmap.services.auth import Principal
from gridmap.services.escalation import escalate_in
from gridmap.services.events import event_out
from gridmap.storage import areas as areas_sql
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import events as events_sql
from gridmap.storage import mediation as mediation_sql
from gridmap.storage import registry as registry_sql
from gridmap.storage import units as units_sql

UNIT_COLUMNS = ("code", "kind", "name", "name_zh", "area_code", "place_code")
Clock = Callable[[], dt.datetime]


# -- the units file ---------------------------------------------------------------------------------------------
def read_units(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a units CSV (code, kind, name, name_zh, area_code, place_code): known kinds, unique codes."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"{p} does not exist", field="file", fix="give the path of a units CSV (data/units.csv)")
    with p.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in UNIT_COLUMNS[:5] if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{p.name} lacks the column(s) {', '.join(missing)}", field="file",
                               fix=f"the header must be {','.join(UNIT_COLUMNS)}")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, r in enumerate(reader, start=2):
            row = {c: (r.get(c) or "").strip() or None for c in UNIT_COLUMNS}
            for c in UNIT_COLUMNS[:5]:
                if row[c] is None:
                    raise InvalidInput(f"{p.name} line {i}: {c} is empty", field="file", fix="fill it in")
            if row["kind"] not in UNIT_KINDS:
                raise InvalidInput(f"{p.name} line {i}: unknown unit kind {row['kind']!r}", field="file",
                                   fix=f"use one of {', '.join(UNIT_KINDS)}")
            if row["code"] in seen:
                raise InvalidInput(f"{p.name} line {i}: unit {row['code']} appears twice", field="file",
                                   fix="give every unit its own code")
            if UNIT_KINDS[row["kind"]].level == "place" and row["place_code"] is None:
                raise InvalidInput(f"{p.name} line {i}: a {row['kind']} serves a place", field="file",
                                   fix="give the building it serves in place_code (a B... code)")
            seen.add(str(row["code"]))
            rows.append(row)
    return rows


def load_units_in(conn: Connection, path: str | Path) -> dict[str, int]:
    """Load a units CSV on the caller's connection (all or nothing with the caller's transaction). Every area
    and place a unit serves must exist."""
    rows = read_units(path)
    for r in rows:
        if areas_sql.area_level(conn, r["area_code"]) is None:
            raise NotFound(f"unit {r['code']} serves area {r['area_code']!r}, which does not exist", field="file",
                           fix="load the registry's areas first (gridmap sample load), or fix the area code")
        if r["place_code"] is not None and registry_sql.building_location(conn, code=r["place_code"]) is None:
            raise NotFound(f"unit {r['code']} serves building {r['place_code']!r}, which does not exist",
                           field="file", fix="fix the building code")
    return units_sql.replace_units(conn, rows)


def load_units(engine: Engine, path: str | Path) -> dict[str, int]:
    """Load a units CSV (all or nothing); units no longer listed are made inactive."""
    with Session(engine) as session, session.begin():
        return load_units_in(session.connection(), path)


def _unit_out(r: RowMapping) -> dict[str, Any]:
    k = UNIT_KINDS.get(r["kind"])
    return {"code": r["code"], "kind": r["kind"], "kind_zh": k.name_zh if k else None, "name": r["name"],
            "name_zh": r["name_zh"], "area": r["area_code"], "place": r["place_code"], "active": r["active"],
            "mediation": bool(k and k.mediation)}


def _stint_out(r: RowMapping | Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    due = r["due_at"]
    left = r["left_at"]
    end = left or now
    return {"rung": r["rung"], "unit": r["unit_code"], "unit_name": r.get("unit_name"),
            "unit_name_zh": r.get("unit_name_zh"), "entered_at": r["entered_at"], "entered_how": r["entered_how"],
            "due_at": due, "taken_at": r["taken_at"], "taken_by": r["taken_by"],
            "info_requested_at": r["info_requested_at"], "left_at": left, "left_how": r["left_how"],
            "left_by": r["left_by"], "minutes": round((end - r["entered_at"]).total_seconds() / 60, 2),
            "overdue": bool(due is not None and end > due)}


class UnitService:
    """Units, their inboxes and their members' actions. One per app (it holds the clock)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # -- reading --------------------------------------------------------------------------------------------
    def _unit(self, conn: Connection, code: str) -> RowMapping:
        u = units_sql.unit(conn, code)
        if u is None:
            raise NotFound(f"no unit {code!r}", field="code", fix="list units: GET /v1/units")
        return u

    @staticmethod
    def _may_read(conn: Connection, p: Principal, u: RowMapping) -> None:
        if p.role in ("admin", "planner"):
            return
        if p.role == "unit":
            if p.unit != u["code"]:
                raise Forbidden(f"unit {u['code']} is not yours ({p.unit})", field="code",
                                fix=f"read your own unit {p.unit}")
            return
        if p.role == "operator":
            # a unit serving their area, an area inside it or above it (a district department); its inbox is
            # then filtered to their area's events
            mine = p.area is not None and (areas_sql.area_within(conn, u["area_code"], p.area)
                                           or areas_sql.area_within(conn, p.area, u["area_code"]))
            if not mine:
                raise Forbidden(f"unit {u['code']} serves {u['area_code']}, outside your area {p.area}", field="code",
                                fix="read the units of your area (GET /v1/units)")
            return
        raise Forbidden(f"role {p.role!r} does not read units", field="role",
                        fix="units are read by their members, operators, planners and admins")

    def list(self, session: Session, p: Principal, *, area: str | None = None, kind: str | None = None) -> builtins.list[dict]:
        """Units: admins and planners all (or those around ``area``); operators those serving their area, an area
        inside it or above it; unit members their own."""
        if kind is not None:
            unit_kind_info(kind)
        with session.begin():
            conn = session.connection()
            if p.role == "unit":
                return [_unit_out(self._unit(conn, p.unit or "-"))]
            if p.role == "operator":
                if area is not None:
                    scope_rules.require_area(conn, p, area)
                area = area or p.area or "-"
            elif p.role not in ("admin", "planner"):
                raise Forbidden(f"role {p.role!r} does not read units", field="role",
                                fix="units are read by their members, operators, planners and admins")
            elif area is not None and areas_sql.area_level(conn, area) is None:
                raise NotFound(f"no area {area!r}", field="area", fix="give a district, street or community code")
            return [_unit_out(r) for r in units_sql.units(conn, area=area, kind=kind)]

    def get(self, session: Session, p: Principal, code: str) -> dict:
        with session.begin():
            conn = session.connection()
            u = self._unit(conn, code)
            self._may_read(conn, p, u)
        return _unit_out(u)

    def inbox(self, session: Session, p: Principal, code: str, *, recent_h: float = 0.0, limit: int = 200) -> dict:
        """The events at the unit's rung now, oldest due first, each with its rung's clock (entered, due, how
        long, overdue, taken by whom); with ``recent_h``, also those that left it in the last hours. Operators
        see only the events of their area."""
        now = self.clock()
        with session.begin():
            conn = session.connection()
            u = self._unit(conn, code)
            self._may_read(conn, p, u)
            if p.role == "planner":
                raise Forbidden("planners read aggregates, not inboxes", field="role", fix="use /v1/metrics/units")
            since = now - dt.timedelta(hours=recent_h) if recent_h > 0 else None
            # an operator's inbox holds their area's events only, confined in SQL before the limit
            area = (p.area or "-") if p.role == "operator" else None
            rows = units_sql.inbox(conn, code, limit=limit, include_left=since is not None, since=since, area=area)
            clear = p.sees_personal_data
            names = None if clear else events_sql.reporter_names(conn, [r["id"] for r in rows])
            cases = {r["id"]: mediation_sql.open_case_of_event(conn, r["id"]) for r in rows} \
                if UNIT_KINDS.get(u["kind"]) and UNIT_KINDS[u["kind"]].mediation else {}
        items: builtins.list[dict[str, Any]] = []
        for r in rows:
            ev = event_out(r, now, clear_text=clear, names=(names[r["id"]],) if names and r["id"] in names else ())
            stint = {"rung": r["stint_rung"], "unit_code": r["stint_unit"], "entered_at": r["entered_at"],
                     "entered_how": r["entered_how"], "due_at": r["stint_due_at"], "taken_at": r["taken_at"],
                     "taken_by": r["taken_by"], "info_requested_at": r["info_requested_at"], "left_at": r["left_at"],
                     "left_how": r["left_how"], "left_by": r["left_by"]}
            clock = _stint_out(stint, now)
            clock["remaining_s"] = None if stint["due_at"] is None or stint["left_at"] is not None else \
                round((stint["due_at"] - now).total_seconds())
            case = cases.get(r["id"])
            items.append({"event": ev, "clock": clock, "case": None if case is None else
                          {"id": case["id"], "code": case["code"], "status": case["status"]}})
        open_items = [i for i in items if i["clock"]["left_at"] is None]
        return {"unit": _unit_out(u), "now": now, "open": len(open_items),
                "overdue": sum(1 for i in open_items if i["clock"]["overdue"]),
                "taken": sum(1 for i in open_items if i["clock"]["taken_at"] is not None), "events": items}

    def rungs(self, session: Session, p: Principal, event_id: int) -> builtins.list[dict]:
        """The rungs an event stood on, with each rung's unit and clock (who may read the event may read them)."""
        now = self.clock()
        with session.begin():
            conn = session.connection()
            ev = events_sql.event(conn, event_id)
            if ev is None:
                raise NotFound(f"no event {event_id}", field="event_id", fix="check the id")
            self._may_read_event(conn, p, ev)
            return [_stint_out(r, now) for r in units_sql.stints(conn, event_id)]

    @staticmethod
    def _may_read_event(conn: Connection, p: Principal, ev: RowMapping) -> None:
        if p.role == "admin":
            return
        if p.role in ("operator", "unit"):
            scope_rules.check_event(conn, p, ev)
            return
        raise Forbidden(f"role {p.role!r} does not read an event's rungs", field="role",
                        fix="operators, unit members and admins do")

    # -- acting ---------------------------------------------------------------------------------------------
    def act(self, session: Session, p: Principal, code: str, event_id: int, action: str, *,
            note: str | None = None, agreement: str | None = None) -> dict:
        """A member of unit ``code`` (or an admin) takes, asks about, settles, returns or escalates an event at
        the unit's rung. 409 when the event is not at that rung."""
        if action not in UNIT_ACTIONS:
            raise InvalidInput(f"unknown action {action!r}", field="action", fix=f"use one of {', '.join(UNIT_ACTIONS)}")
        if p.role == "unit":
            if p.unit != code:
                raise Forbidden(f"you act for unit {p.unit}, not {code}", field="code", fix=f"act for {p.unit}")
        elif p.role != "admin":
            raise Forbidden(f"role {p.role!r} does not act for units", field="role",
                            fix="the unit's members act on its inbox (operators: POST /v1/events/{id}/transitions "
                                "and /escalate)")
        if action == "ask_info" and not note:
            raise InvalidInput("asking for information needs the question", field="note", fix="say what is needed")
        if action == "settle" and not (note or agreement):
            raise InvalidInput("settling needs a note or the agreement", field="note",
                               fix="say how it was settled (or send the agreement)")
        now = self.clock()
        with session.begin():
            conn = session.connection()
            self._unit(conn, code)  # 404 for no such unit
            ev = events_sql.locked_event(conn, event_id)
            stint = units_sql.open_stint(conn, event_id, lock=True)
            if stint is None or stint["unit_code"] != code or not is_open(ev["status"]):
                where = f"at unit {stint['unit_code']}" if stint is not None and stint["unit_code"] else \
                    f"at rung {ev['escalation_rung']} ({ev['rung_name']})"
                raise Conflict(f"event {ev['code']} is not at the rung of unit {code}: it is {ev['status']}, {where}",
                               field="event_id", fix=f"act on the events of GET /v1/units/{code}/inbox")
            detail: dict[str, Any] = {"unit": code, "rung": stint["rung"]}
            case = mediation_sql.open_case_of_event(conn, event_id) if action in ("settle", "escalate") else None
            if case is not None and (action == "escalate" or not agreement):
                # a mediation room's case ends with its outcome: settling here is an agreement; partial, failed
                # (litigation, or up to a department) go through the case, which moves the event as it closes.
                # (Returning the dispute below the room leaves its case open: no outcome says "sent back" yet.)
                raise Conflict(f"event {ev['code']} has open mediation case {case['id']}: {action} here would leave it "
                               "open", field="agreement" if action == "settle" else "action",
                               fix=f"settle with the agreement (the case closes with it), or record the case's outcome: "
                                   f"POST /v1/mediation/cases/{case['id']}/outcome (agreement, partial, or failed with "
                                   "a referral)")
            if action == "take":
                if stint["taken_by"] not in (None, p.username):
                    raise Conflict(f"event {ev['code']} was taken by {stint['taken_by']}", field="event_id",
                                   fix="leave it to them, or ask them to hand it over")
                units_sql.take_stint(conn, stint["id"], at=now, by=p.username)
                self._trail(conn, ev, now, p, "take", note, detail)
            elif action == "ask_info":
                units_sql.info_requested(conn, stint["id"], now)
                self._trail(conn, ev, now, p, "ask_info", note, detail)
            elif action == "settle":
                self._settle(conn, ev, case, now, p, note, agreement)
            elif action == "return":
                found = rungs.next_rung(conn, ev, -1)
                if found is None:
                    raise Conflict(f"event {ev['code']} is on the first rung: there is none below", field="action",
                                   fix="settle or escalate it")
                lower, lower_unit = found
                due = now + dt.timedelta(minutes=lower["time_limit_min"])
                escalation_sql.set_rung(conn, ev["id"], lower["rung"], now, due)
                rungs.enter_rung(conn, ev, lower, lower_unit, at=now, entered_how="returned", left_how="returned",
                                 by=p.username, due_at=due)
                self._trail(conn, ev, now, p, "return", note,
                            {**detail, "to_rung": lower["rung"], "to_unit": lower_unit, "handler": lower["name"],
                             "due_at": due.isoformat()}, rung=lower["rung"])
            else:  # escalate
                escalate_in(conn, ev, at=now, actor=p.username, role=p.role, action="escalate", note=note)
            after = events_sql.event(conn, event_id)
            assert after is not None  # read a moment ago in this transaction; events are never deleted
            out = event_out(after, self.clock(), clear_text=p.sees_personal_data,
                            names=() if p.sees_personal_data else
                            tuple(events_sql.reporter_names(conn, [event_id]).values()))
            stints = [_stint_out(r, now) for r in units_sql.stints(conn, event_id)]
        return {"action": action, "event": out, "rungs": stints}

    @staticmethod
    def _trail(conn: Connection, ev: RowMapping, at: dt.datetime, p: Principal, action: str, note: str | None,
               detail: dict[str, Any], rung: int | None = None) -> None:
        events_sql.insert_transition(conn, event_id=ev["id"], at=at, action=action, from_status=ev["status"],
                                     to_status=ev["status"], rung=ev["escalation_rung"] if rung is None else rung,
                                     actor=p.username, role=p.role, note=note, lon=None, lat=None, detail=detail)

    @staticmethod
    def _settle(conn: Connection, ev: RowMapping, case: RowMapping | None, at: dt.datetime, p: Principal,
                note: str | None, agreement: str | None) -> None:
        """Close the event here: the stint ends settled, its open mediation case (``case``; then ``agreement`` is
        given) closes with the agreement, the team (if one still holds it) is freed, the event is resolved and
        closed now."""
        settle_here(conn, ev, at=at, actor=p.username, role=p.role, note=note or "settled (agreement recorded)",
                    outcome="agreement" if agreement else "settled")
        if case is not None and agreement is not None:
            mediation_sql.close_case(conn, case["id"], outcome="agreement", referral=None, referred_unit=None,
                                     agreement_text=agreement, at=at, by=p.username)


def settle_here(conn: Connection, ev: RowMapping, *, at: dt.datetime, actor: str, role: str | None, note: str,
                outcome: str, left_how: str = "settled") -> None:
    """Close an open event at its current rung (the unit's stint ends ``left_how``), freeing its team."""
    units_sql.close_stint(conn, ev["id"], at=at, how=left_how, by=actor)
    assignments_sql.cancel_active_assignment(conn, ev["id"], at)
    events_sql.set_actor(conn, actor=actor, role=role, action="settle" if left_how == "settled" else "refer",
                         note=note, at=at)
    units_sql.settle_event(conn, ev["id"], at, outcome)
    events_sql.close_duplicates(conn, ev["id"], at)


__all__ = ["AREA_ORDER", "UnitService", "load_units", "load_units_in", "read_units", "settle_here"]
