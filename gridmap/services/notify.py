"""Out-of-band reminders of unanswered offers (an SMS or a voice call to the team's phones).

A web app hears its offers only while it is open (no Web Push: the browsers' push services do not reach phones
in mainland China), so an offer nobody answered within ``after_s`` is handed to a :class:`Notifier` once. This
module defines the interface and the one implementation shipped: :class:`LogNotifier`, which writes the reminder
to the server's log (numbers masked) and sends nothing. A real SMS or voice gateway (a carrier's, Aliyun's,
Tencent Cloud's) implements :meth:`Notifier.offer_unanswered` the same way; the demo runs the log-only one.

Exactly one API process chases each offer: the first to insert its row in ``offer_notifications`` wins. The
offer's own time-out (the escalation sweep) still moves it to the next team; a reminder does not extend it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from gridmap.core.privacy import mask_phone
from gridmap.storage import notify as notify_sql
from gridmap.storage import teams as teams_sql

log = logging.getLogger("gridmap.notify")


@dataclass(frozen=True)
class Offer:
    assignment_id: int
    event_code: str
    category: str
    severity: int | None
    team: str
    offered_at: dt.datetime
    respond_by: dt.datetime | None


class Notifier(Protocol):
    """Sends a reminder of an unanswered offer to the team's phones; returns what happened (for the record)."""

    channel: str

    def offer_unanswered(self, offer: Offer, phones: list[str]) -> str: ...


class LogNotifier:
    """Writes the reminder to the log and sends nothing (the demo's notifier)."""

    channel = "log"

    def __init__(self) -> None:
        self.sent: list[tuple[Offer, list[str]]] = []

    def offer_unanswered(self, offer: Offer, phones: list[str]) -> str:
        masked = ", ".join(mask_phone(p) or "?" for p in phones) or "no phone on record"
        log.warning("offer %s (event %s, %s) to team %s unanswered since %s: would send an SMS/voice reminder to %s",
                    offer.assignment_id, offer.event_code, offer.category, offer.team, offer.offered_at.isoformat(),
                    masked)
        self.sent.append((offer, phones))
        return f"logged ({len(phones)} phone(s))"


class OfferChaser:
    """Finds offers unanswered for ``after_s`` and hands each to the notifier once."""

    def __init__(self, engine: Engine, notifier: Notifier, clock: Callable[[], dt.datetime], *,
                 after_s: float = 60.0) -> None:
        self.engine = engine
        self.notifier = notifier
        self.clock = clock
        self.after = dt.timedelta(seconds=after_s)

    def sweep(self) -> int:
        now = self.clock()
        done = 0
        with self.engine.begin() as conn:
            rows = notify_sql.unanswered_offers(conn, now - self.after)
        for r in rows:
            with self.engine.begin() as conn:
                if not notify_sql.claim_notification(conn, r["id"], self.notifier.channel, now):
                    continue
                phones = [m["phone"] for m in teams_sql.team_member_phones(conn, r["team_id"])]
            offer = Offer(r["id"], r["event_code"], r["category"], r["severity"], r["team_code"], r["offered_at"],
                          r["respond_by"])
            try:
                outcome = self.notifier.offer_unanswered(offer, phones)
            except Exception as exc:  # noqa: BLE001 - a failing gateway must not stop the sweep (TicketsCAD #22)
                log.exception("notifier %s failed for offer %s", self.notifier.channel, r["id"])
                outcome = f"failed: {type(exc).__name__}"
            with self.engine.begin() as conn:
                notify_sql.set_notification_outcome(conn, r["id"], outcome[:200])
            done += 1
        return done
