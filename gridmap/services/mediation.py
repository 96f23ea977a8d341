"""Mediation cases (人民调解): a dispute that reaches a mediation room gets a case, opened with the rung stint
(:mod:`gridmap.services.rungs`) or by the room by hand. A case has parties, sessions (when, where, which
mediators), an outcome (agreement, partial, failed → litigation or a department) and the agreement's text.

Parties are personal data, kept apart (``mediation_party_pii``) and protected like residents':

* the members of the room that holds the case (the mediators, who must reach the parties) read names and
  phones in clear, ID-card numbers masked;
* admins and the operators whose area holds the dispute read them masked (张**, 138****5678);
* every other reader (another unit the dispute passed through) sees the parties' sides only, never who;
* each read of personal data, masked or not, is written to the append-only ``pii_access_log`` with the
  reader, the purpose and the number of parties returned.

The agreement text is free text: it reaches readers without the right to the parties' data redacted
(:func:`gridmap.core.privacy.redact_text`, with the parties' own names blanked too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.core.levels import is_mediation
from gridmap.core.lifecycle import is_open
from gridmap.core.privacy import mask_id_card, mask_name, mask_phone, redact_text
from gridmap.core.vocabulary import CASE_OUTCOMES, PARTY_SIDES, REFERRALS
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound
from gridmap.services import scopes as scope_rules
from gridmap.services.auth import Principal
from gridmap.services.escalation import escalate_in
from gridmap.services.units import settle_here
from gridmap.storage import events as events_sql
from gridmap.storage import mediation as sql
from gridmap.storage import people as people_sql
from gridmap.storage import units as units_sql

Clock = Callable[[], dt.datetime]
PII_TABLE = "mediation_party_pii"


def _access(conn: Connection, p: Principal, case: RowMapping) -> str:
    """How ``p`` reads this case: ``clear`` (the holding room's members), ``masked`` (admins, operators of the
    dispute's area), ``none`` (another unit the dispute stood at: the case without the parties' data)."""
    if p.role == "admin":
        return "masked"
    if p.role == "operator":
        p.check_street(case["street_code"], f"case {case['code']}", case["community_code"])
        return "masked"
    if p.role == "unit":
        if p.unit == case["unit_code"]:
            return "clear"
        if p.unit is not None and units_sql.ever_at_unit(conn, case["event_id"], p.unit):
            return "none"
        raise Forbidden(f"case {case['code']} is not your unit's", field="case_id",
                        fix="read the cases of your own unit (GET /v1/mediation/cases)")
    raise Forbidden(f"role {p.role!r} does not read mediation cases", field="role",
                    fix="planners read their figures at /v1/metrics/units")


def _party_out(r: RowMapping, access: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r["id"], "side": r["side"], "kind": r["kind"]}
    if access == "clear":
        out.update(name=r["name"], phone=r["phone"], id_card=mask_id_card(r["id_card"]))
    elif access == "masked":
        out.update(name=mask_name(r["name"]), phone=mask_phone(r["phone"]), id_card=mask_id_card(r["id_card"]))
    else:
        out.update(name=None, phone=None, id_card=None)
    return out


class MediationService:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def _case(self, conn: Connection, case_id: int, *, lock: bool = False) -> RowMapping:
        c = sql.case(conn, case_id, lock=lock)
        if c is None:
            raise NotFound(f"no mediation case {case_id}", field="case_id", fix="list cases: GET /v1/mediation/cases")
        return c

    def _writer(self, conn: Connection, p: Principal, case: RowMapping) -> None:
        if p.role == "admin" or (p.role == "unit" and p.unit == case["unit_code"]):
            return
        raise Forbidden(f"only the members of {case['unit_code']} (or an admin) write case {case['code']}",
                        field="role", fix="ask the mediation room that holds the case")

    def _open_case(self, conn: Connection, p: Principal, case_id: int, fix: str) -> RowMapping:
        """The case, locked, if ``p`` writes it and it is still open (``fix``: what to do when it is closed)."""
        case = self._case(conn, case_id, lock=True)
        self._writer(conn, p, case)
        if case["status"] != "open":
            raise Conflict(f"case {case['code']} is closed ({case['outcome']})", field="case_id", fix=fix)
        return case

    def _out(self, conn: Connection, p: Principal, case: RowMapping, *, purpose: str | None) -> dict[str, Any]:
        access = _access(conn, p, case)
        parties = sql.parties(conn, case["id"], personal=access != "none")
        if access != "none" and parties:
            people_sql.log_pii_access(conn, p.username, purpose or "mediation case", PII_TABLE, len(parties),
                                      {"case_id": case["id"], "event_id": case["event_id"], "role": p.role,
                                       "access": access})
        text = case["agreement_text"]
        if access != "clear" and not p.sees_personal_data:
            known = sql.party_names(conn, [case["id"]]).get(case["id"], [])
            text = redact_text(text, known)
        return {
            "id": case["id"], "code": case["code"], "event": {"id": case["event_id"], "code": case["event_code"],
                                                              "category": case["category"],
                                                              "status": case["event_status"]},
            "unit": case["unit_code"], "unit_name": case["unit_name"], "unit_name_zh": case["unit_name_zh"],
            "opened_at": case["opened_at"], "opened_by": case["opened_by"], "status": case["status"],
            "outcome": case["outcome"], "outcome_at": case["outcome_at"], "referral": case["referral"],
            "referred_unit": case["referred_unit"], "agreement_text": text, "closed_by": case["closed_by"],
            "access": access, "parties": [_party_out(r, access) for r in parties],
            "sessions": [dict(s) for s in sql.sessions(conn, case["id"])],
        }

    # -- reading --------------------------------------------------------------------------------------------
    def get(self, session: Session, p: Principal, case_id: int, *, purpose: str | None = None) -> dict[str, Any]:
        """One case with its parties as ``p`` may see them (the read of their data is logged)."""
        with session.begin():
            conn = session.connection()
            return self._out(conn, p, self._case(conn, case_id), purpose=purpose)

    def list(self, session: Session, p: Principal, *, unit: str | None = None, status: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Cases (without parties): a unit member's unit's, an operator's area's, or all (admins)."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if p.role == "unit":
            if unit not in (None, p.unit):
                raise Forbidden(f"unit {unit} is not yours", field="unit", fix=f"list the cases of {p.unit}")
            unit = p.unit or "-"
        elif p.role == "operator":
            clause = scope_rules.event_clause(p)
            if clause is not None:
                where.append(clause[0])
                params.update(clause[1])
        elif p.role != "admin":
            raise Forbidden(f"role {p.role!r} does not read mediation cases", field="role",
                            fix="planners read their figures at /v1/metrics/units")
        if unit is not None:
            where.append("c.unit_code = :unit")
            params["unit"] = unit
        if status is not None:
            if status not in ("open", "closed"):
                raise InvalidInput(f"unknown status {status!r}", field="status", fix="use open or closed")
            where.append("c.status = :status")
            params["status"] = status
        with session.begin():
            rows = sql.cases(session.connection(), where=where, params=params, limit=limit)
        return [{"id": r["id"], "code": r["code"], "event_id": r["event_id"], "event_code": r["event_code"],
                 "category": r["category"], "unit": r["unit_code"], "status": r["status"], "outcome": r["outcome"],
                 "opened_at": r["opened_at"], "outcome_at": r["outcome_at"]} for r in rows]

    # -- writing --------------------------------------------------------------------------------------------
    def open(self, session: Session, p: Principal, event_id: int) -> dict[str, Any]:
        """Open a case for an event at a mediation room's rung (when none was opened on arrival)."""
        now = self.clock()
        with session.begin():
            conn = session.connection()
            ev = events_sql.locked_event(conn, event_id)
            stint = units_sql.open_stint(conn, event_id)
            unit = units_sql.unit(conn, stint["unit_code"]) if stint is not None and stint["unit_code"] else None
            if unit is None or not is_mediation(unit["kind"]):
                raise Conflict(f"event {ev['code']} is not at a mediation room", field="event_id",
                               fix="a case is opened where a dispute reaches a mediation room")
            if p.role != "admin" and not (p.role == "unit" and p.unit == unit["code"]):
                raise Forbidden(f"only the members of {unit['code']} open its cases", field="role",
                                fix="ask the mediation room")
            cid = sql.open_case(conn, event_id=event_id, unit_code=unit["code"], at=now, by=p.username)
            if cid is None:
                raise Conflict(f"event {ev['code']} has an open case already", field="event_id",
                               fix="GET /v1/mediation/cases?status=open")
            return self._out(conn, p, self._case(conn, cid), purpose="opening the case")

    def add_party(self, session: Session, p: Principal, case_id: int, *, side: str, name: str, kind: str = "person",
                  phone: str | None = None, id_card: str | None = None) -> dict[str, Any]:
        if side not in PARTY_SIDES:
            raise InvalidInput(f"unknown side {side!r}", field="side", fix=f"use one of {', '.join(PARTY_SIDES)}")
        with session.begin():
            conn = session.connection()
            case = self._open_case(conn, p, case_id, "parties are added to open cases")
            sql.add_party(conn, case_id=case_id, side=side, kind=kind, name=name, phone=phone, id_card=id_card)
            return self._out(conn, p, case, purpose="recording a party")

    def add_session(self, session: Session, p: Principal, case_id: int, *, held_at: dt.datetime,
                    place: str | None, mediators: Sequence[str], note: str | None) -> dict[str, Any]:
        if held_at.tzinfo is None:
            raise InvalidInput(f"held_at {held_at.isoformat()} has no time zone", field="held_at",
                               fix="send ISO 8601 with an offset")
        if not mediators:
            raise InvalidInput("a session needs its mediators", field="mediators", fix="name at least one mediator")
        with session.begin():
            conn = session.connection()
            case = self._open_case(conn, p, case_id, "sessions belong to open cases")
            sql.add_session(conn, case_id=case_id, held_at=held_at, place=place, mediators=mediators, note=note,
                            by=p.username, at=self.clock())
            events_sql.insert_transition(conn, event_id=case["event_id"], at=self.clock(), action="mediation_session",
                                         from_status=case["event_status"], to_status=case["event_status"], rung=None,
                                         actor=p.username, role=p.role, note=note,
                                         detail={"case": case["code"], "held_at": held_at.isoformat(), "place": place,
                                                 "mediators": list(mediators)})
            return self._out(conn, p, case, purpose="recording a session")

    def outcome(self, session: Session, p: Principal, case_id: int, *, outcome: str, agreement_text: str | None = None,
                referral: str | None = None, note: str | None = None) -> dict[str, Any]:
        """Close the case. ``agreement`` / ``partial``: the dispute is settled here (the event closes, resolved).
        ``failed``: ``referral`` litigation (the event closes, referred to the court, not resolved) or
        department (the event moves up its ladder to the unit above)."""
        if outcome not in CASE_OUTCOMES:
            raise InvalidInput(f"unknown outcome {outcome!r}", field="outcome", fix=f"use one of {', '.join(CASE_OUTCOMES)}")
        if outcome == "failed" and referral not in REFERRALS:
            raise InvalidInput("a failed mediation goes to litigation or a department", field="referral",
                               fix=f"give referral: one of {', '.join(REFERRALS)}")
        if outcome != "failed" and referral is not None:
            raise InvalidInput("only a failed mediation is referred", field="referral", fix="leave it out")
        if outcome in ("agreement", "partial") and not agreement_text:
            raise InvalidInput(f"an {outcome} needs the agreement's text", field="agreement_text",
                               fix="send what the parties agreed")
        now = self.clock()
        with session.begin():
            conn = session.connection()
            case = self._open_case(conn, p, case_id, "an outcome is recorded once")
            ev = events_sql.event(conn, case["event_id"], lock=True)
            referred_unit = None
            if ev is not None and is_open(ev["status"]):
                if outcome in ("agreement", "partial"):
                    settle_here(conn, ev, at=now, actor=p.username, role=p.role, outcome=outcome,
                                note=note or f"mediation {outcome} ({case['code']})")
                elif referral == "litigation":
                    settle_here(conn, ev, at=now, actor=p.username, role=p.role, outcome="litigation",
                                note=note or f"mediation failed: referred to litigation ({case['code']})",
                                left_how="referred")
                else:
                    d = escalate_in(conn, ev, at=now, actor=p.username, role=p.role, action="refer",
                                    note=note or f"mediation failed: referred to a department ({case['code']})")
                    referred_unit = d.get("unit")
            sql.close_case(conn, case_id, outcome=outcome, referral=referral, referred_unit=referred_unit,
                           agreement_text=agreement_text, at=now, by=p.username)
            return self._out(conn, p, self._case(conn, case_id), purpose="recording the outcome")
