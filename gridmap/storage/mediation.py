"""SQL for mediation cases: the case of a dispute at a mediation room, its parties (personal data apart in
``mediation_party_pii``, read only on purpose), its sessions and its outcome.

Every function runs on the caller's SQLAlchemy connection, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, text

CASE_COLUMNS = ("c.id, c.code, c.event_id, e.code AS event_code, e.category, e.status AS event_status, "
                "e.street_code, e.community_code, c.unit_code, u.name AS unit_name, u.name_zh AS unit_name_zh, "
                "c.opened_at, c.opened_by, c.status, c.outcome, c.outcome_at, c.referral, c.referred_unit, "
                "c.agreement_text, c.closed_by")
CASE_FROM = "FROM mediation_cases c JOIN events e ON e.id = c.event_id LEFT JOIN units u ON u.code = c.unit_code"


def open_case(conn: Connection, *, event_id: int, unit_code: str, at: dt.datetime, by: str) -> int | None:
    """Open the event's case at ``unit_code``; None when the event has an open case already."""
    return conn.execute(text("""
        WITH n AS (SELECT nextval(pg_get_serial_sequence('mediation_cases', 'id')) AS id)
        INSERT INTO mediation_cases (id, code, event_id, unit_code, opened_at, opened_by, status)
        SELECT n.id, 'MC' || lpad(n.id::text, 6, '0'), :e, :u, :at, :by, 'open' FROM n
        ON CONFLICT (event_id) WHERE status = 'open' DO NOTHING RETURNING id"""),
        {"e": event_id, "u": unit_code, "at": at, "by": by}).scalar_one_or_none()


def case(conn: Connection, case_id: int, *, lock: bool = False) -> RowMapping | None:
    q = f"SELECT {CASE_COLUMNS} {CASE_FROM} WHERE c.id = :id"
    return conn.execute(text(q + (" FOR UPDATE OF c" if lock else "")), {"id": case_id}).mappings().first()


def open_case_of_event(conn: Connection, event_id: int) -> RowMapping | None:
    return conn.execute(text(f"SELECT {CASE_COLUMNS} {CASE_FROM} WHERE c.event_id = :e AND c.status = 'open'"),
                        {"e": event_id}).mappings().first()


def cases(conn: Connection, *, where: Sequence[str], params: dict, limit: int) -> list[RowMapping]:
    q = f"SELECT {CASE_COLUMNS} {CASE_FROM}"
    if where:
        q += " WHERE " + " AND ".join(f"({w})" for w in where)
    return list(conn.execute(text(q + " ORDER BY c.opened_at DESC, c.id DESC LIMIT :n"),
                             {**params, "n": limit}).mappings())


def add_party(conn: Connection, *, case_id: int, side: str, kind: str, name: str, phone: str | None,
              id_card: str | None) -> int:
    """A party and, apart, their personal data; returns the party's id."""
    pid = conn.execute(text("INSERT INTO mediation_parties (case_id, side, kind) VALUES (:c, :s, :k) RETURNING id"),
                       {"c": case_id, "s": side, "k": kind}).scalar_one()
    conn.execute(text("INSERT INTO mediation_party_pii (party_id, name, phone, id_card) VALUES (:p, :n, :ph, :id)"),
                 {"p": pid, "n": name, "ph": phone, "id": id_card})
    return int(pid)


def parties(conn: Connection, case_id: int, *, personal: bool) -> list[RowMapping]:
    """The parties of a case; with ``personal`` their name, phone and ID-card number (log that read)."""
    cols = "p.id, p.side, p.kind" + (", x.name, x.phone, x.id_card" if personal else "")
    join = " LEFT JOIN mediation_party_pii x ON x.party_id = p.id" if personal else ""
    return list(conn.execute(text(f"SELECT {cols} FROM mediation_parties p{join} WHERE p.case_id = :c ORDER BY p.id"),
                             {"c": case_id}).mappings())


def party_names(conn: Connection, case_ids: Sequence[int]) -> dict[int, list[str]]:
    """The parties' names per case: never shown, only blanked in the agreement text for readers without the
    right to see them."""
    out: dict[int, list[str]] = {}
    for cid, name in conn.execute(text(
            "SELECT p.case_id, x.name FROM mediation_parties p JOIN mediation_party_pii x ON x.party_id = p.id "
            "WHERE p.case_id = ANY(:c) ORDER BY p.id"), {"c": list(case_ids)}):
        out.setdefault(int(cid), []).append(name)
    return out


def add_session(conn: Connection, *, case_id: int, held_at: dt.datetime, place: str | None,
                mediators: Sequence[str], note: str | None, by: str, at: dt.datetime) -> int:
    return int(conn.execute(text(
        "INSERT INTO mediation_sessions (case_id, held_at, place, mediators, note, recorded_by, recorded_at) "
        "VALUES (:c, :h, :p, :m, :n, :by, :at) RETURNING id"),
        {"c": case_id, "h": held_at, "p": place, "m": list(mediators), "n": note, "by": by, "at": at}).scalar_one())


def sessions(conn: Connection, case_id: int) -> list[RowMapping]:
    return list(conn.execute(text(
        "SELECT id, held_at, place, mediators, note, recorded_by, recorded_at FROM mediation_sessions "
        "WHERE case_id = :c ORDER BY held_at, id"), {"c": case_id}).mappings())


def close_case(conn: Connection, case_id: int, *, outcome: str, referral: str | None, referred_unit: str | None,
               agreement_text: str | None, at: dt.datetime, by: str) -> None:
    conn.execute(text(
        "UPDATE mediation_cases SET status = 'closed', outcome = :o, outcome_at = :at, referral = :r, "
        "referred_unit = :ru, agreement_text = :t, closed_by = :by WHERE id = :id"),
        {"o": outcome, "at": at, "r": referral, "ru": referred_unit, "t": agreement_text, "by": by, "id": case_id})


def case_metrics(conn: Connection, *, start: dt.datetime, end: dt.datetime, where: Sequence[str],
                 params: dict) -> list[RowMapping]:
    """Per mediation unit: cases opened in [start, end), open, closed, closed by outcome (agreement, partial,
    failed; of the failed, referred to litigation or a department), and the time from opening to the outcome
    (days: mean; minutes: median and p90)."""
    q = f"""
        SELECT c.unit_code AS key, count(*) AS cases,
               count(*) FILTER (WHERE c.status = 'open') AS open,
               count(*) FILTER (WHERE c.status = 'closed') AS closed,
               count(*) FILTER (WHERE c.outcome = 'agreement') AS agreement,
               count(*) FILTER (WHERE c.outcome = 'partial') AS partial,
               count(*) FILTER (WHERE c.outcome = 'failed') AS failed,
               count(*) FILTER (WHERE c.referral = 'litigation') AS to_litigation,
               count(*) FILTER (WHERE c.referral = 'department') AS to_department,
               avg(extract(epoch FROM c.outcome_at - c.opened_at)) / 86400 AS days_avg,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.outcome_at - c.opened_at)) / 60
                 AS minutes_p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM c.outcome_at - c.opened_at)) / 60
                 AS minutes_p90
        {CASE_FROM}
        WHERE c.opened_at >= :start AND c.opened_at < :end{''.join(f' AND ({w})' for w in where)}
        GROUP BY 1 ORDER BY 1"""
    return list(conn.execute(text(q), {**params, "start": start, "end": end}).mappings())
