"""SQL of the resident's QR page: ``receipts`` (an unguessable link per report, stored as its hash) and
``report_throttle`` (reports per device and per address in a fixed window; UNLOGGED, like the login throttle)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, RowMapping, text


def insert(conn: Connection, token_sha256: str, event_id: int, at: dt.datetime) -> None:
    conn.execute(text("INSERT INTO receipts (token_sha256, event_id, created_at) VALUES (:t, :e, :at)"),
                 {"t": token_sha256, "e": event_id, "at": at})


def find(conn: Connection, token_sha256: str, *, lock: bool = False) -> RowMapping | None:
    """The receipt and what the resident may see of its event: status and milestones, the place, nothing else."""
    q = """
        SELECT r.token_sha256, r.event_id, r.created_at, r.answered_at, r.fixed, e.code, e.status, e.category,
               c.name AS category_name, c.name_zh AS category_name_zh, e.reported_at, e.dispatched_at,
               e.accepted_at, e.on_site_at, e.resolved_at, e.closed_at, e.place_code, e.duplicate_of
        FROM receipts r JOIN events e ON e.id = r.event_id LEFT JOIN event_categories c ON c.code = e.category
        WHERE r.token_sha256 = :t"""
    if lock:
        q += " FOR UPDATE OF r"
    return conn.execute(text(q), {"t": token_sha256}).mappings().first()


def answer(conn: Connection, token_sha256: str, fixed: bool, at: dt.datetime) -> None:
    conn.execute(text("UPDATE receipts SET answered_at = :at, fixed = :f WHERE token_sha256 = :t"),
                 {"t": token_sha256, "f": fixed, "at": at})


def reset_answer(conn: Connection, event_id: int) -> None:
    """The event was resolved again: its receipts may be answered again."""
    conn.execute(text("UPDATE receipts SET answered_at = NULL, fixed = NULL WHERE event_id = :e"), {"e": event_id})


def count(conn: Connection, key: str, now: dt.datetime, window_s: int) -> tuple[int, dt.datetime]:
    """Count one report against ``key`` in a fixed window (a new window when the old one has passed);
    returns (reports in this window, when the window started)."""
    row = conn.execute(text("""
        INSERT INTO report_throttle AS t (key, window_start, count) VALUES (:k, :now, 1)
        ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN t.window_start < :now - make_interval(secs => :w) THEN 1 ELSE t.count + 1 END,
            window_start = CASE WHEN t.window_start < :now - make_interval(secs => :w) THEN :now
                                ELSE t.window_start END
        RETURNING count, window_start"""), {"k": key, "now": now, "w": window_s}).one()
    return int(row[0]), row[1]


def peek(conn: Connection, keys: list[str], now: dt.datetime, window_s: int) -> list[tuple[str, int, dt.datetime]]:
    """The counts in force for ``keys`` (without counting)."""
    return [(r[0], int(r[1]), r[2]) for r in conn.execute(text(
        "SELECT key, count, window_start FROM report_throttle WHERE key = ANY(:k) "
        "AND window_start >= :now - make_interval(secs => :w)"), {"k": keys, "now": now, "w": window_s})]


def purge_throttle(conn: Connection, now: dt.datetime, window_s: int) -> int:
    return conn.execute(text("DELETE FROM report_throttle WHERE window_start < :now - make_interval(secs => :w)"),
                        {"now": now, "w": window_s}).rowcount
