"""Telling people and processes: offers the notifier chases (``offer_notifications``) and the stream of
NOTIFY payloads a process LISTENs to.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Connection, RowMapping, text


# -- offers the notifier chases ----------------------------------------------------------------------------
def unanswered_offers(conn: Connection, older_than: dt.datetime, limit: int = 100) -> list[RowMapping]:
    """Offers still open, made before ``older_than``, that no notifier was asked about yet."""
    return list(conn.execute(text("""
        SELECT a.id, a.event_id, a.team_id, t.code AS team_code, a.offered_at, a.respond_by, e.code AS event_code,
               e.category, e.severity
        FROM assignments a JOIN teams t ON t.id = a.team_id JOIN events e ON e.id = a.event_id
        WHERE a.status = 'offered' AND a.offered_at < :t
          AND NOT EXISTS (SELECT 1 FROM offer_notifications n WHERE n.assignment_id = a.id)
        ORDER BY a.offered_at LIMIT :n"""), {"t": older_than, "n": limit}).mappings())


def claim_notification(conn: Connection, assignment_id: int, channel: str, at: dt.datetime) -> bool:
    """Record that this offer is being chased (one process wins: the others see the row)."""
    return conn.execute(text(
        "INSERT INTO offer_notifications (assignment_id, channel, at) VALUES (:a, :c, :at) "
        "ON CONFLICT DO NOTHING RETURNING assignment_id"), {"a": assignment_id, "c": channel, "at": at}).first() \
        is not None


def set_notification_outcome(conn: Connection, assignment_id: int, outcome: str) -> None:
    conn.execute(text("UPDATE offer_notifications SET outcome = :o WHERE assignment_id = :a"),
                 {"a": assignment_id, "o": outcome})


# -- live push ----------------------------------------------------------------------------------------------
def notifications(libpq_url: str, channel: str, stop: Any, poll_s: float = 0.5,
                  on_listen: Any = None) -> Iterator[dict]:
    """Yield the JSON payloads NOTIFYed on ``channel`` until ``stop.is_set()`` (a threading.Event).

    ``on_listen()`` is called once LISTEN is in force (nothing committed after it is missed).
    """
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {channel}")
        if on_listen is not None:
            on_listen()
        while not stop.is_set():
            for n in conn.notifies(timeout=poll_s):
                try:
                    yield json.loads(n.payload)
                except ValueError:
                    continue
                if stop.is_set():
                    return
