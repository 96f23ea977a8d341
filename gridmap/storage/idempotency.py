"""SQL of ``idempotency_keys``: one row per (user, Idempotency-Key) of a phone's action or photo upload, with
a fingerprint of the request and, once answered, the answer (status and JSON body)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, RowMapping, text


def find(conn: Connection, user_id: int, key: str, *, lock: bool = False) -> RowMapping | None:
    q = ("SELECT user_id, key, fingerprint, created_at, applied_at, completed_at, status_code, response "
         "FROM idempotency_keys WHERE user_id = :u AND key = :k")
    if lock:
        q += " FOR UPDATE"
    return conn.execute(text(q), {"u": user_id, "k": key}).mappings().first()


def claim(conn: Connection, user_id: int, key: str, fingerprint: str, now: dt.datetime) -> bool:
    """Insert the key (not yet answered); False when it exists already (whoever wrote it)."""
    row = conn.execute(text(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (:u, :k, :f, :now) "
        "ON CONFLICT (user_id, key) DO NOTHING RETURNING key"),
        {"u": user_id, "k": key, "f": fingerprint, "now": now}).first()
    return row is not None


def reclaim(conn: Connection, user_id: int, key: str, now: dt.datetime) -> None:
    """Take over a claim whose request never finished (its process died before answering)."""
    conn.execute(text("UPDATE idempotency_keys SET created_at = :now WHERE user_id = :u AND key = :k"),
                 {"u": user_id, "k": key, "now": now})


def mark_applied(conn: Connection, user_id: int, key: str, now: dt.datetime) -> None:
    """In the action's own transaction: the action took effect (whatever happens to its answer)."""
    conn.execute(text("UPDATE idempotency_keys SET applied_at = :now WHERE user_id = :u AND key = :k"),
                 {"u": user_id, "k": key, "now": now})


def complete(conn: Connection, user_id: int, key: str, status_code: int, response_json: str, now: dt.datetime) -> None:
    conn.execute(text(
        "UPDATE idempotency_keys SET completed_at = :now, status_code = :s, response = CAST(:r AS jsonb) "
        "WHERE user_id = :u AND key = :k"),
        {"u": user_id, "k": key, "s": status_code, "r": response_json, "now": now})


def release(conn: Connection, user_id: int, key: str) -> None:
    """Forget a claim whose request failed without effect (an unexpected error): a retry runs it again."""
    conn.execute(text("DELETE FROM idempotency_keys WHERE user_id = :u AND key = :k AND applied_at IS NULL"),
                 {"u": user_id, "k": key})


def purge(conn: Connection, before: dt.datetime) -> int:
    return conn.execute(text("DELETE FROM idempotency_keys WHERE created_at < :t"), {"t": before}).rowcount
